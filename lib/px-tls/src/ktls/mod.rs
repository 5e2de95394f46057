//! The data path of TLS connections over TCP: after the rustls handshake, the
//! kernel (kTLS, feature `ktls`) or rustls.
//!
//! [`accept`] (a [`TlsServer`] on an accepted socket: `tls_stream`,
//! `plain_tls_port`) and [`connect`] (a [`TlsClient`] on a connected socket:
//! `tls_client` towards an upstream) return a [`TlsTcpStream`]. Built with the
//! `ktls` feature, the handshake stays in rustls; then, where the kernel takes
//! it, the record keys move into the socket (`TCP_ULP` "tls", `TLS_TX`,
//! `TLS_RX`) and reads and writes are plain socket calls the kernel encrypts
//! and decrypts. Where it does not (no `CONFIG_TLS`, a cipher suite the kernel
//! lacks, a socket that refuses the ULP), the connection stays on rustls: the
//! choice is made per connection, before any key leaves rustls, so falling
//! back loses nothing. See `offload` (with the feature) for the steps.
//!
//! Every connection is counted by the path it took ([`totals`]: `ktls`,
//! `fallback`, `failed` for a set-up that broke after the keys left rustls),
//! and logged at debug level with its reason and the running totals; the
//! probe's verdict is logged once at info level. Without the feature these
//! functions are the plain rustls handshakes and count nothing.
//!
//! Environment: `PX_TLS_NO_KTLS` keeps every connection on rustls;
//! `PX_TLS_KTLS_NO_PROBE` skips the process-wide probe and tries every
//! connection (to test the per-connection fallback on a kernel without kTLS).
//!
//! ```no_run
//! # async fn demo(server: &px_tls::TlsServer, tcp: tokio::net::TcpStream) -> std::io::Result<()> {
//! let tls = px_tls::ktls::accept(server, tcp).await?;
//! log::debug!("TLS data path: {:?} ({:?})", tls.path(), tls.fallback_reason());
//! # Ok(()) }
//! ```

#[cfg(feature = "ktls")]
mod offload;
mod stream;
#[cfg(feature = "ktls")]
mod sys;

use std::io;
#[cfg(feature = "ktls")]
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

pub use stream::TlsTcpStream;

use crate::{TlsClient, TlsServer};

/// Which path carries a TLS connection's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPath {
    /// Kernel TLS.
    Kernel,
    /// rustls in userspace.
    Rustls,
}

/// Connections per data path in this process (counted with the `ktls` feature only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KtlsTotals {
    /// Data phases handed to the kernel.
    pub ktls: u64,
    /// Connections kept on rustls (kTLS unavailable, or refused for them).
    pub fallback: u64,
    /// Connections lost while moving their keys into the kernel.
    pub failed: u64,
}

#[cfg(feature = "ktls")]
static TOTALS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// How many connections took each path so far in this process.
pub fn totals() -> KtlsTotals {
    #[cfg(feature = "ktls")]
    {
        KtlsTotals {
            ktls: TOTALS[0].load(Ordering::Relaxed),
            fallback: TOTALS[1].load(Ordering::Relaxed),
            failed: TOTALS[2].load(Ordering::Relaxed),
        }
    }
    #[cfg(not(feature = "ktls"))]
    {
        KtlsTotals::default()
    }
}

/// True when built with the `ktls` feature and the kernel takes kTLS
/// (probed once per process).
pub fn available() -> bool {
    #[cfg(feature = "ktls")]
    {
        offload::available()
    }
    #[cfg(not(feature = "ktls"))]
    {
        false
    }
}

#[cfg(feature = "ktls")]
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Kernel,
    Fallback,
    Failed,
}

/// Counts a connection's path and logs it with the totals.
#[cfg(feature = "ktls")]
fn count(outcome: Outcome, peer: Option<std::net::SocketAddr>, reason: &str) {
    let i = match outcome {
        Outcome::Kernel => 0,
        Outcome::Fallback => 1,
        Outcome::Failed => 2,
    };
    TOTALS[i].fetch_add(1, Ordering::Relaxed);
    let t = totals();
    let totals = format!(
        "ktls {} fallback {} failed {}",
        t.ktls, t.fallback, t.failed
    );
    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
    match outcome {
        Outcome::Kernel => log::debug!("TLS data path with {peer}: ktls [{totals}]"),
        Outcome::Fallback => {
            log::debug!("TLS data path with {peer}: rustls (kTLS fallback: {reason}) [{totals}]")
        }
        Outcome::Failed => {
            log::info!("TLS data path with {peer}: kTLS set-up failed: {reason} [{totals}]")
        }
    }
}

/// Runs the server handshake on an accepted socket, then hands the data phase
/// to the kernel where it can (see the module doc).
pub async fn accept(server: &TlsServer, tcp: TcpStream) -> io::Result<TlsTcpStream> {
    #[cfg(feature = "ktls")]
    {
        offload::accept(server, tcp).await
    }
    #[cfg(not(feature = "ktls"))]
    {
        let tls = server.accept(tcp).await?;
        Ok(TlsTcpStream {
            inner: stream::Inner::Rustls(tokio_rustls::TlsStream::Server(tls)),
            fallback: None,
        })
    }
}

/// Runs the client handshake on a connected socket, verifying the server as
/// `name`, then hands the data phase to the kernel where it can.
pub async fn connect(
    client: &TlsClient,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> io::Result<TlsTcpStream> {
    #[cfg(feature = "ktls")]
    {
        offload::connect(client, name, tcp).await
    }
    #[cfg(not(feature = "ktls"))]
    {
        let tls = client.connect(name, tcp).await?;
        Ok(TlsTcpStream {
            inner: stream::Inner::Rustls(tokio_rustls::TlsStream::Client(tls)),
            fallback: None,
        })
    }
}
