//! [`NativeTlsStream`]: an OpenSSL TLS session over any tokio stream, in safe code.
//!
//! OpenSSL reads from and writes to an in-memory transport ([`MemIo`]); this wrapper moves the
//! bytes between that transport and the real stream whenever OpenSSL asks for more input or
//! has output pending. No raw pointers cross into OpenSSL's callbacks.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use openssl::ssl::{ErrorCode, Ssl, SslRef, SslStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket for OpenSSL, and bytes OpenSSL wrote for the socket.
#[derive(Debug, Default)]
pub struct MemIo {
    rx: Vec<u8>,
    rx_pos: usize,
    rx_eof: bool,
    tx: Vec<u8>,
}

impl Read for MemIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = &self.rx[self.rx_pos..];
        if avail.is_empty() {
            if self.rx_eof {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.rx_pos += n;
        if self.rx_pos == self.rx.len() {
            self.rx.clear();
            self.rx_pos = 0;
        }
        Ok(n)
    }
}

impl Write for MemIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How much is read from the socket at once.
const READ_CHUNK: usize = 16 * 1024;

/// An OpenSSL session over a tokio stream.
pub struct NativeTlsStream<S> {
    tls: SslStream<MemIo>,
    io: S,
}

impl<S> std::fmt::Debug for NativeTlsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeTlsStream")
            .field("version", &self.tls.ssl().version_str())
            .finish()
    }
}

fn ssl_err(e: openssl::ssl::Error) -> io::Error {
    match e.into_io_error() {
        Ok(e) => e,
        Err(e) => io::Error::other(e.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> NativeTlsStream<S> {
    /// Wraps `io` for the session `ssl` (not yet handshaken).
    pub fn new(ssl: Ssl, io: S) -> io::Result<Self> {
        let tls = SslStream::new(ssl, MemIo::default()).map_err(io::Error::other)?;
        Ok(NativeTlsStream { tls, io })
    }

    /// The session, for its negotiated version, ALPN, peer certificate...
    pub fn ssl(&self) -> &SslRef {
        self.tls.ssl()
    }

    /// Writes out what OpenSSL has produced.
    fn poll_flush_tx(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let tx = &mut self.tls.get_mut().tx;
            if tx.is_empty() {
                return Pin::new(&mut self.io).poll_flush(cx);
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, tx))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            tx.drain(..n);
        }
    }

    /// Reads more from the socket for OpenSSL.
    fn poll_fill_rx(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let mem = self.tls.get_mut();
        if buf.filled().is_empty() {
            mem.rx_eof = true;
        } else {
            mem.rx.extend_from_slice(buf.filled());
        }
        Poll::Ready(Ok(()))
    }

    /// Drives the handshake (server side when `server`) until it ends.
    fn poll_handshake(&mut self, cx: &mut Context<'_>, server: bool) -> Poll<io::Result<()>> {
        loop {
            let step = if server {
                self.tls.accept()
            } else {
                self.tls.connect()
            };
            match step {
                Ok(()) => return self.poll_flush_tx(cx),
                Err(e) if e.code() == ErrorCode::WANT_READ => {
                    ready!(self.poll_flush_tx(cx))?;
                    if self.tls.get_mut().rx_eof {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "peer closed during the TLS handshake",
                        )));
                    }
                    ready!(self.poll_fill_rx(cx))?;
                }
                Err(e) if e.code() == ErrorCode::WANT_WRITE => {
                    ready!(self.poll_flush_tx(cx))?;
                }
                Err(e) => {
                    // send the alert OpenSSL queued, if the socket takes it now
                    let _ = self.poll_flush_tx(cx);
                    return Poll::Ready(Err(ssl_err(e)));
                }
            }
        }
    }

    /// Runs the server handshake.
    pub async fn accept(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_handshake(cx, true)).await
    }

    /// Runs the client handshake (the `Ssl` must be set up as a client).
    pub async fn connect(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_handshake(cx, false)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for NativeTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.tls.ssl_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => return Poll::Ready(Ok(())),
                Err(e) if e.code() == ErrorCode::WANT_READ => {
                    ready!(this.poll_flush_tx(cx))?;
                    if this.tls.get_mut().rx_eof {
                        // the peer closed without close_notify: an end of stream all the same
                        return Poll::Ready(Ok(()));
                    }
                    ready!(this.poll_fill_rx(cx))?;
                }
                Err(e) if e.code() == ErrorCode::WANT_WRITE => {
                    ready!(this.poll_flush_tx(cx))?;
                }
                Err(e) if e.code() == ErrorCode::SYSCALL && this.tls.get_mut().rx_eof => {
                    return Poll::Ready(Ok(()));
                }
                Err(e) => return Poll::Ready(Err(ssl_err(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for NativeTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // what was written before goes out first: the buffer never grows past one write
        ready!(this.poll_flush_tx(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match this.tls.ssl_write(buf) {
            Ok(n) => {
                // start sending now; what is left goes with the next write, flush or read
                let _ = this.poll_flush_tx(cx);
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(ssl_err(e))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_tx(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // queue close_notify once; a failure only means the session is already gone
        if !this
            .tls
            .get_shutdown()
            .contains(openssl::ssl::ShutdownState::SENT)
        {
            let _ = this.tls.shutdown();
        }
        ready!(this.poll_flush_tx(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
