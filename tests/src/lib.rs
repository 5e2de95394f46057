//! End-to-end test harness for the g3proxy binary.
//!
//! Real parts only: the real `g3proxy` binary started on a temporary YAML config
//! ([`daemon::Daemon`]), real target servers on loopback written with raw tokio I/O
//! ([`origin::HttpOrigin`], [`echo::TcpEcho`], [`echo::UdpEcho`]), a real DNS server
//! ([`dns::Dnsmasq`], Debian's dnsmasq), and real clients (curl and python with
//! requests + PySocks, see [`cmd`]; raw sockets for bad input, see [`net`] and [`socks`]).
//!
//! Every wait in here is bounded, so no test can hang.
//!
//! The test files under `tests/tests/` use it like this:
//!
//! ```no_run
//! use px_e2e::*;
//! let origin = origin::HttpOrigin::start();
//! let http = net::free_tcp_port();
//! let yaml = config::Standard::new().http(http).render();
//! let _daemon = daemon::Daemon::start(&yaml, &[http]);
//! let out = cmd::curl(&["-x", &format!("http://127.0.0.1:{http}"), &origin.url("/hello")]);
//! assert_eq!(out.stdout, b"hello world\n");
//! ```
// A test harness reports failures by panicking, like the tests that use it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cmd;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod echo;
pub mod net;
pub mod origin;
pub mod pattern;
pub mod socks;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The default bound for any single wait in the harness.
pub const WAIT: Duration = Duration::from_secs(10);

/// The cargo workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The one tokio runtime shared by every target server of a test binary.
///
/// Servers are spawned onto it from plain (synchronous) `#[test]` functions, so a test
/// can block on curl or on a std socket while the targets keep serving.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("px-e2e-target")
            .enable_all()
            .build()
            .expect("build the targets' tokio runtime")
    })
}

/// `http://127.0.0.1:PORT`, for curl `-x` and python `proxies`.
pub fn http_proxy_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// `127.0.0.1:PORT`
pub fn hostport(port: u16) -> String {
    format!("127.0.0.1:{port}")
}
