//! `g3proxy`: the daemon. Command line, config load, runtime start; the
//! module types are wired in [`wiring`], the control socket's RPCs in
//! [`control`].
//!
//! Start-up with a running daemon of the same group (a hot upgrade): the new
//! process asks the old one, over the group's control socket, for the
//! listening sockets of the addresses it listens on, accepts on them, binds
//! the others, publishes its own control socket, then tells the old one to
//! go offline (see `doc/hot-upgrade.md`).

mod control;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use log::{error, info, warn};
use px_ctl_proto::{handover, naming};
use px_daemon::app::{App, check_config};
use px_daemon::config::{RuntimeConfig, load_main};
use px_daemon::control::ControlServer;
use px_daemon::listen::Inherited;

// mimalloc is built with `no_thp`: without it, its arenas are advised into transparent huge
// pages and an idle daemon holds ~9 MiB more RSS in 2 MiB pages it barely uses
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
    /// Directory for the control socket (`<group>_<pid>.sock`, and the
    /// `<group>.sock` link to the group's newest daemon).
    #[arg(
        long = "control-dir",
        value_name = "DIR",
        default_value = naming::DEFAULT_CONTROL_DIR
    )]
    control_dir: PathBuf,
    /// Log to systemd-journald (g3proxy's `-s`); the `log:` section still wins
    /// when it names a driver.
    #[arg(short = 's', long = "systemd")]
    systemd: bool,
}

/// How long the old daemon may take to answer a hand-over request.
const HANDOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes the listening sockets of the group's running daemon, if any.
async fn take_listeners(app: &App, dir: &std::path::Path) -> Option<handover::Taken> {
    let keys = app.listen_keys();
    if keys.is_empty() {
        return None;
    }
    let link = naming::group_link(dir, &app.group);
    let r =
        tokio::task::spawn_blocking(move || handover::take(&link, &keys, HANDOVER_TIMEOUT)).await;
    match r {
        Ok(Ok(Some(t))) => {
            info!(
                "taking over {} listening sockets from the running daemon of the group",
                t.listeners.len()
            );
            Some(t)
        }
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            warn!("no listener hand-over from the running daemon: {e}");
            None
        }
        Err(e) => {
            warn!("no listener hand-over: {e}");
            None
        }
    }
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
        builder.max_io_events_per_tick(n);
    }
    builder.build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(config) = cli.config.clone() else {
        eprintln!("error: no config given; use -c PATH");
        return ExitCode::from(2);
    };
    if let Err(e) = naming::check_group(&cli.group) {
        eprintln!("error: -G {:?}: {e}", cli.group);
        return ExitCode::from(2);
    }
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
    let driver = if cli.systemd && !main_cfg.log.explicit {
        px_daemon::config::LogDriver::Journal
    } else {
        main_cfg.log.driver
    };
    px_daemon::logger::init(driver, px_daemon::logger::level_for(cli.verbose), "g3proxy");
    let rt = match build_runtime(&main_cfg.runtime) {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = rt.block_on(async {
        let app = match App::build(Arc::clone(&wiring), &main_cfg, &cli.group) {
            Ok(app) => app,
            Err(errors) => {
                print_errors(&errors);
                anyhow::bail!("config has errors");
            }
        };
        let mut taken = take_listeners(&app, &cli.control_dir).await;
        let inherited = taken
            .as_mut()
            .map(|t| Inherited::new(std::mem::take(&mut t.listeners)));
        app.start_listeners(inherited.as_ref())
            .map_err(|e| anyhow::anyhow!("cannot listen: {e}"))?;
        if let Some(n) = inherited.as_ref().map(Inherited::unused).filter(|n| *n > 0) {
            info!("{n} sockets of the previous daemon are not in this config: closed");
        }
        drop(inherited);
        let bootstrap = control::bootstrap(Arc::clone(&app), tokio::runtime::Handle::current());
        let control = match ControlServer::start(Arc::clone(&app), &cli.control_dir, bootstrap) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(
                    "no control socket in {}: {e} (g3proxy-ctl and hot upgrades will not reach this daemon)",
                    cli.control_dir.display()
                );
                None
            }
        };
        if let Some(t) = taken {
            match tokio::task::spawn_blocking(move || t.finish()).await {
                Ok(Ok(())) => info!("the previous daemon goes offline"),
                Ok(Err(e)) => warn!("the previous daemon did not confirm going offline: {e}"),
                Err(e) => warn!("hand-over: {e}"),
            }
        }
        info!(
            "g3proxy {} started (group {:?}, config {})",
            env!("CARGO_PKG_VERSION"),
            cli.group,
            main_cfg.file.display()
        );
        let workers = Arc::clone(&app.workers);
        px_daemon::lifecycle::run_until_quit(app).await?;
        drop(control);
        // every task has ended (or the quit was forced): stop the worker runtimes
        let _ = tokio::task::spawn_blocking(move || {
            workers.shutdown(std::time::Duration::from_secs(2));
        })
        .await;
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
