//! Error replies a proxy makes up, and closing a client connection without losing them.
//!
//! [`status_for_connect_error`] maps an escaper's failure to the status the client sees: 403 when a
//! filter refused the target, 504 when connecting or resolving timed out, 502 otherwise. After an
//! error reply the connection closes "lingering" (as Apache does): our side is shut down first and
//! what the client still sends is read and dropped for a bounded time, so the kernel does not
//! answer unread bytes with a reset that could destroy the reply before the client reads it.

use std::time::Duration;

use px_core::ConnectError;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// How long a lingering close keeps reading.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much a lingering close reads at most.
const LINGER_BYTES: usize = 1 << 20;
/// How long writing an error reply may take.
const REPLY_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The reason phrase of the statuses this server makes up.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// The status for a failed upstream connect.
pub(crate) fn status_for_connect_error(e: &ConnectError) -> u16 {
    if e.is_forbidden() {
        403
    } else if e.is_timeout() {
        504
    } else {
        502
    }
}

/// Sends a short text reply with `Connection: close`, then closes lingering.
pub(crate) async fn fail_and_close<IO>(io: &mut IO, status: u16, text: &str)
where
    IO: AsyncBufRead + AsyncWrite + Unpin,
{
    let msg = px_http::simple_response(status, reason(status), text, false);
    let sent = tokio::time::timeout(REPLY_WRITE_TIMEOUT, async {
        io.write_all(&msg).await?;
        io.flush().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        linger_close(io).await;
    }
}

/// Shuts our side down, then drains the client for a bounded time and size.
pub(crate) async fn linger_close<IO>(io: &mut IO)
where
    IO: AsyncBufRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(LINGER_TIME, async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut total = 0usize;
        while total < LINGER_BYTES {
            let n = match io.fill_buf().await {
                Ok(b) if !b.is_empty() => b.len(),
                _ => return,
            };
            io.consume(n);
            total += n;
        }
    })
    .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use px_core::ResolveError;
    use tokio::io::{AsyncReadExt, BufReader};

    #[test]
    fn connect_error_statuses() {
        assert_eq!(status_for_connect_error(&ConnectError::Refused), 502);
        assert_eq!(status_for_connect_error(&ConnectError::TimedOut), 504);
        assert_eq!(
            status_for_connect_error(&ConnectError::Resolve(ResolveError::Timeout)),
            504
        );
        assert_eq!(
            status_for_connect_error(&ConnectError::ForbiddenIp("127.0.0.1".parse().unwrap())),
            403
        );
        assert_eq!(
            status_for_connect_error(&ConnectError::Resolve(ResolveError::NotFound("x".into()))),
            502
        );
    }

    #[tokio::test]
    async fn reply_then_drain() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(async move {
            let mut io = BufReader::new(a);
            fail_and_close(&mut io, 400, "bad").await;
        });
        b.write_all(b"junk that was never read").await.unwrap();
        let mut got = String::new();
        b.read_to_string(&mut got).await.unwrap();
        assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(got.ends_with("\r\n\r\nbad\n"));
        drop(b);
        task.await.unwrap();
    }
}
