//! [`TlsTcpStream`]: a TLS connection over a TCP socket, its data phase in
//! rustls or (feature `ktls`) in the kernel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::TlsPath;

/// One side of the TLS data path.
pub(super) enum Inner {
    /// rustls over the socket.
    Rustls(tokio_rustls::TlsStream<TcpStream>),
    /// rustls over the socket behind ktls's record-boundary reader (a
    /// connection whose kTLS set-up failed after a handshake made for it).
    #[cfg(feature = "ktls")]
    Corked(tokio_rustls::TlsStream<ktls::CorkStream<TcpStream>>),
    /// The kernel encrypts and decrypts (kTLS); ktls's stream handles the
    /// records that are not application data (alerts, tickets).
    #[cfg(feature = "ktls")]
    Kernel(ktls::KtlsStream<TcpStream>),
}

/// A TLS connection over TCP after its handshake, from
/// [`super::accept`] or [`super::connect`]: `AsyncRead + AsyncWrite`, whichever
/// path carries the data.
pub struct TlsTcpStream {
    pub(super) inner: Inner,
    pub(super) fallback: Option<String>,
}

impl std::fmt::Debug for TlsTcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTcpStream")
            .field("path", &self.path())
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl TlsTcpStream {
    /// Which path carries the data.
    pub fn path(&self) -> TlsPath {
        match &self.inner {
            Inner::Rustls(_) => TlsPath::Rustls,
            #[cfg(feature = "ktls")]
            Inner::Corked(_) => TlsPath::Rustls,
            #[cfg(feature = "ktls")]
            Inner::Kernel(_) => TlsPath::Kernel,
        }
    }

    /// Why this connection is on rustls although the build has kTLS; `None`
    /// on the kernel path and in builds without the `ktls` feature.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Rustls(s) => s.get_ref().0,
            #[cfg(feature = "ktls")]
            Inner::Corked(s) => &s.get_ref().0.io,
            #[cfg(feature = "ktls")]
            Inner::Kernel(s) => s.get_ref(),
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.get_mut().inner {
            Inner::Rustls($s) => $e,
            #[cfg(feature = "ktls")]
            Inner::Corked($s) => $e,
            #[cfg(feature = "ktls")]
            Inner::Kernel($s) => $e,
        }
    };
}

impl AsyncRead for TlsTcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for TlsTcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Rustls(s) => s.is_write_vectored(),
            #[cfg(feature = "ktls")]
            Inner::Corked(s) => s.is_write_vectored(),
            #[cfg(feature = "ktls")]
            Inner::Kernel(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
