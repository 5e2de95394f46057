//! `g3proxy-ctl`: drives a running g3proxy over its control socket.
//!
//! The Cap'n Proto control protocol is not wired yet: every subcommand parses,
//! then reports that clearly and exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line, as g3proxy-ctl has it.
#[derive(Parser, Debug)]
#[command(
    name = "g3proxy-ctl",
    version,
    about = "control a running g3proxy daemon"
)]
struct Cli {
    /// Daemon group name.
    #[arg(short = 'G', long = "daemon-group", default_value = "")]
    group: String,
    /// Daemon pid (default: the group's current daemon).
    #[arg(short = 'p', long = "pid")]
    pid: Option<u32>,
    /// Directory holding the control sockets.
    #[arg(long = "control-dir", default_value = "/run/g3proxy")]
    control_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Print the daemon's version.
    Version,
    /// Take the daemon offline.
    Offline,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.control_dir.join(format!(
        "{}_{}.sock",
        cli.group,
        cli.pid.map(|p| p.to_string()).unwrap_or_default()
    ));
    eprintln!(
        "error: {:?}: the control protocol is not implemented yet (socket {})",
        cli.command,
        socket.display()
    );
    ExitCode::FAILURE
}
