//! `g3proxy-ctl`: drives a running g3proxy over its control socket
//! (Cap'n Proto RPC, schema in `lib/px-ctl-proto/schema/control.capnp`).
//!
//! ```text
//! g3proxy-ctl -G edge list server
//! g3proxy-ctl -G edge -p 4242 reload-escaper default
//! g3proxy-ctl -G edge escaper float publish '{"ipv4": "192.0.2.7"}'
//! g3proxy-ctl --completion bash > /etc/bash_completion.d/g3proxy-ctl
//! ```
//!
//! Every error prints one clear message on stderr and exits non-zero:
//! 1 when the daemon refused or failed the operation, 2 for usage errors,
//! 3 when the daemon could not be reached. One module per RPC area:
//! [`proc`] (the process and its module lists and reloads), [`escaper`],
//! [`resolver`], [`user_group`].

mod escaper;
mod proc;
mod resolver;
mod user_group;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use px_ctl_proto::naming;
use px_ctl_proto::rpc::{Connection, CtlError};

/// Command line, as g3proxy-ctl has it.
#[derive(Parser, Debug)]
#[command(
    name = "g3proxy-ctl",
    version,
    about = "control a running g3proxy daemon",
    arg_required_else_help = true
)]
struct Cli {
    /// Daemon group name (g3proxy's `-G`).
    #[arg(short = 'G', long = "daemon-group", default_value = "", global = true)]
    group: String,
    /// Daemon pid (default: the group's current daemon).
    #[arg(short = 'p', long = "pid", global = true)]
    pid: Option<u32>,
    /// Directory holding the control sockets.
    #[arg(long = "control-dir", default_value = naming::DEFAULT_CONTROL_DIR, global = true)]
    control_dir: PathBuf,
    /// Seconds to wait for the daemon to answer.
    #[arg(long = "timeout", default_value_t = 30, global = true)]
    timeout: u64,
    /// Print a shell completion script and exit.
    #[arg(long = "completion", value_name = "SHELL", exclusive = true)]
    completion: Option<clap_complete::Shell>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Module kinds for `list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// servers
    Server,
    /// escapers
    Escaper,
    /// resolvers
    Resolver,
    /// user groups
    UserGroup,
    /// auditors
    Auditor,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Print the daemon's version.
    Version,
    /// Print the daemon's pid, group, whether it is offline, and its running tasks.
    Status,
    /// Take the daemon offline: stop accepting (or hand the listeners to a
    /// new daemon of the group), let running tasks end, exit.
    Offline,
    /// List the modules of a kind.
    List {
        /// server, escaper, resolver, user-group or auditor
        kind: Kind,
    },
    /// Reload one server from the config files.
    ReloadServer {
        /// Server name.
        name: String,
    },
    /// Reload one escaper from the config files.
    ReloadEscaper {
        /// Escaper name.
        name: String,
    },
    /// Reload one resolver from the config files.
    ReloadResolver {
        /// Resolver name.
        name: String,
    },
    /// Reload one user group from the config files.
    ReloadUserGroup {
        /// User group name.
        name: String,
    },
    /// Reload one auditor from the config files.
    ReloadAuditor {
        /// Auditor name.
        name: String,
    },
    /// Operate on one escaper.
    Escaper {
        /// Escaper name.
        name: String,
        #[command(subcommand)]
        op: escaper::Op,
    },
    /// Operate on one resolver.
    Resolver {
        /// Resolver name.
        name: String,
        #[command(subcommand)]
        op: resolver::Op,
    },
    /// Operate on one user group.
    UserGroup {
        /// User group name.
        name: String,
        #[command(subcommand)]
        op: user_group::Op,
    },
}

/// How a run failed.
pub(crate) enum Failure {
    /// The daemon could not be reached, or the RPC broke.
    Unreachable(String),
    /// The daemon answered with an error.
    Refused(String),
}

impl From<CtlError> for Failure {
    fn from(e: CtlError) -> Self {
        Failure::Unreachable(e.0)
    }
}

impl From<capnp::NotInSchema> for Failure {
    fn from(e: capnp::NotInSchema) -> Self {
        Failure::Unreachable(CtlError::from(e).0)
    }
}

impl From<capnp::Error> for Failure {
    fn from(e: capnp::Error) -> Self {
        Failure::Unreachable(CtlError::from(e).0)
    }
}

/// Turns an operation's result into output or a refusal.
pub(crate) fn operation(r: Result<String, String>) -> Result<(), Failure> {
    match r {
        Ok(s) => {
            if !s.is_empty() {
                println!("{s}");
            }
            Ok(())
        }
        Err(e) => Err(Failure::Refused(e)),
    }
}

async fn run(cli: Cli, command: Command) -> Result<(), Failure> {
    let path = naming::target_socket(&cli.control_dir, &cli.group, cli.pid);
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let conn: Connection = px_ctl_proto::rpc::connect(&path, timeout).await?;
    let client = conn.client.clone();
    let work = async move {
        match command {
            Command::Version => proc::version(&client).await,
            Command::Status => proc::status(&client).await,
            Command::Offline => proc::offline(&client).await,
            Command::List { kind } => proc::list(&client, kind).await,
            Command::ReloadServer { name } => proc::reload(&client, Kind::Server, &name).await,
            Command::ReloadEscaper { name } => proc::reload(&client, Kind::Escaper, &name).await,
            Command::ReloadResolver { name } => proc::reload(&client, Kind::Resolver, &name).await,
            Command::ReloadUserGroup { name } => {
                proc::reload(&client, Kind::UserGroup, &name).await
            }
            Command::ReloadAuditor { name } => proc::reload(&client, Kind::Auditor, &name).await,
            Command::Escaper { name, op } => escaper::run(&client, &name, op).await,
            Command::Resolver { name, op } => resolver::run(&client, &name, op).await,
            Command::UserGroup { name, op } => user_group::run(&client, &name, op).await,
        }
    };
    let r = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Unreachable(format!(
            "no answer from {} within {}s",
            path.display(),
            timeout.as_secs()
        ))),
    };
    drop(conn);
    r
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(shell) = cli.completion {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "g3proxy-ctl", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command.take() else {
        eprintln!("error: a subcommand is required (see --help)");
        return ExitCode::from(2);
    };
    if let Err(e) = naming::check_group(&cli.group) {
        eprintln!("error: -G {:?}: {e}", cli.group);
        return ExitCode::from(2);
    }
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
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, run(cli, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
