//! Reading the bytes of one head from a buffered stream, within a size limit.
//!
//! [`read_head_bytes`] pulls from an `AsyncBufRead` until the empty line that ends a head, consuming
//! exactly the head and leaving any body bytes in the reader. Empty lines before the start line are
//! skipped (RFC 9112 §2.2) but still count against the limit. Bare LF line endings are accepted as
//! httparse accepts them. The caller bounds the wait (e.g. `tokio::time::timeout`).

use bytes::BytesMut;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::error::HeadError;

/// Size and field-count limits for reading one head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head accepted, start line and final empty line included.
    pub max_size: usize,
    /// Largest number of header fields accepted.
    pub max_headers: usize,
}

impl HeadLimits {
    /// Default head size limit (64 KiB, g3proxy's `req_header_max_size` default).
    pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;
    /// Default header field count limit.
    pub const DEFAULT_MAX_HEADERS: usize = 256;
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_size: Self::DEFAULT_MAX_SIZE,
            max_headers: Self::DEFAULT_MAX_HEADERS,
        }
    }
}

/// Reads one head (through its terminating empty line) and returns its bytes.
pub async fn read_head_bytes<R>(reader: &mut R, max_size: usize) -> Result<BytesMut, HeadError>
where
    R: AsyncBufRead + Unpin + ?Sized,
{
    let mut head = BytesMut::new();
    let mut scanned = 0usize;
    let mut skipped = 0usize;
    let mut skipping = true;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Err(if head.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Truncated {
                    received: head.len(),
                }
            });
        }
        let mut lead = 0;
        if skipping {
            lead = chunk
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            skipped += lead;
            if skipped > max_size {
                return Err(HeadError::TooLarge { limit: max_size });
            }
            if lead == chunk.len() {
                reader.consume(lead);
                continue;
            }
            skipping = false;
        }
        let data = &chunk[lead..];
        let old_len = head.len();
        let room = max_size.saturating_sub(old_len + skipped);
        let take = data.len().min(room);
        head.extend_from_slice(&data[..take]);
        if let Some(end) = find_head_end(&head, &mut scanned) {
            head.truncate(end);
            reader.consume(lead + (end - old_len));
            return Ok(head);
        }
        reader.consume(lead + take);
        if take == 0 || head.len() + skipped >= max_size {
            return Err(HeadError::TooLarge { limit: max_size });
        }
    }
}

/// Finds the end of a head (just past its empty line), resuming the scan at `*scanned`.
fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    let mut pos = *scanned;
    while let Some(off) = memchr::memchr(b'\n', &buf[pos..]) {
        let nl = pos + off;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            (None, _) | (Some(b'\r'), None) => {
                *scanned = nl;
                return None;
            }
            _ => pos = nl + 1,
        }
    }
    *scanned = buf.len();
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, BufReader};

    async fn read_all(
        input: &[u8],
        cap: usize,
        max: usize,
    ) -> (Result<BytesMut, HeadError>, Vec<u8>) {
        let mut r = BufReader::with_capacity(cap, input);
        let res = read_head_bytes(&mut r, max).await;
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        (res, rest)
    }

    #[tokio::test]
    async fn stops_at_empty_line_at_any_read_size() {
        let input = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        for cap in 1..input.len() + 2 {
            let (res, rest) = read_all(input, cap, 1024).await;
            assert_eq!(
                &res.unwrap()[..],
                &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
                "cap {cap}"
            );
            assert_eq!(rest, b"BODY");
        }
    }

    #[tokio::test]
    async fn bare_lf_endings() {
        let (res, rest) = read_all(b"GET / HTTP/1.0\nA: b\n\nX", 3, 100).await;
        assert_eq!(&res.unwrap()[..], b"GET / HTTP/1.0\nA: b\n\n");
        assert_eq!(rest, b"X");
    }

    #[tokio::test]
    async fn eof_cases() {
        assert!(matches!(
            read_all(b"", 8, 100).await.0,
            Err(HeadError::Closed)
        ));
        assert!(matches!(
            read_all(b"\r\n", 8, 100).await.0,
            Err(HeadError::Closed)
        ));
        assert!(matches!(
            read_all(b"GET / HT", 8, 100).await.0,
            Err(HeadError::Truncated { received: 8 })
        ));
    }

    #[tokio::test]
    async fn limit_is_exact() {
        let input = b"GET / HTTP/1.1\r\n\r\n";
        for cap in [1, 4, 64] {
            assert!(read_all(input, cap, input.len()).await.0.is_ok());
            assert!(matches!(
                read_all(input, cap, input.len() - 1).await.0,
                Err(HeadError::TooLarge { .. })
            ));
        }
        let endless = vec![b'a'; 10_000];
        assert!(matches!(
            read_all(&endless, 512, 1000).await.0,
            Err(HeadError::TooLarge { limit: 1000 })
        ));
        let blank = vec![b'\n'; 10_000];
        assert!(matches!(
            read_all(&blank, 512, 1000).await.0,
            Err(HeadError::TooLarge { .. })
        ));
    }
}
