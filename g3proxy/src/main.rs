//! `g3proxy`: the daemon. Command line, config load, runtime start; the
//! module types are wired in [`wiring`].

mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use log::{error, info};
use px_daemon::app::{App, check_config};
use px_daemon::config::{RuntimeConfig, load_main};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line, as g3proxy has it.
#[derive(Parser, Debug)]
#[command(
    name = "g3proxy",
    version,
    about = "modular proxy daemon (g3proxy-compatible config)"
)]
struct Cli {
    /// Config file, or a directory holding main.yaml, main.yml or g3proxy.yaml.
    #[arg(short = 'c', long = "config-file", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Check the config, print every error, and exit (non-zero on any error).
    #[arg(short = 't', long = "test-config")]
    test_config: bool,
    /// Daemon group name, used for the control socket and logs.
    #[arg(
        short = 'G',
        long = "group-name",
        value_name = "NAME",
        default_value = ""
    )]
    group: String,
    /// Print more logs (repeat for more).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
    /// Directory for the control socket.
    #[arg(
        long = "control-dir",
        value_name = "DIR",
        default_value = "/run/g3proxy"
    )]
    control_dir: PathBuf,
}

fn print_errors(errors: &[px_yaml::ConfigError]) {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!(
        "{} config error{} found",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
}

fn build_runtime(cfg: &RuntimeConfig) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match cfg.thread_number {
        Some(0) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().thread_name(cfg.thread_name.clone());
    if let Some(s) = cfg.thread_stack_size {
        builder.thread_stack_size(s);
    }
    if let Some(n) = cfg.max_io_events_per_tick {
        builder.event_interval(n as u32);
    }
    builder.build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(config) = cli.config.clone() else {
        eprintln!("error: no config given; use -c PATH");
        return ExitCode::from(2);
    };
    let wiring = Arc::new(wiring::wiring());

    if cli.test_config {
        // factories may spawn resolver tasks: give them a runtime even for a check
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        let result = rt.block_on(async { check_config(&wiring, &config) });
        return match result {
            Ok(main) => {
                println!("config {} is ok", main.file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                print_errors(&errors);
                ExitCode::FAILURE
            }
        };
    }

    let main_cfg = match load_main(&config) {
        Ok(m) => m,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    px_daemon::logger::init(
        main_cfg.log.driver,
        px_daemon::logger::level_for(cli.verbose),
        "g3proxy",
    );
    let rt = match build_runtime(&main_cfg.runtime) {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = &cli.control_dir;
    let result: anyhow::Result<()> = rt.block_on(async {
        let app = match App::build(Arc::clone(&wiring), &main_cfg, &cli.group) {
            Ok(app) => app,
            Err(errors) => {
                print_errors(&errors);
                anyhow::bail!("config has errors");
            }
        };
        app.start_listeners()
            .map_err(|e| anyhow::anyhow!("cannot listen: {e}"))?;
        info!(
            "g3proxy {} started (group {:?}, config {})",
            env!("CARGO_PKG_VERSION"),
            cli.group,
            main_cfg.file.display()
        );
        px_daemon::lifecycle::run_until_quit(app, &main_cfg.runtime).await?;
        Ok(())
    });
    // do not wait for blocked resolver threads at exit
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
