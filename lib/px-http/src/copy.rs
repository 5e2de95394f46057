//! Streaming a body from one peer to the other.
//!
//! [`copy_body`] forwards a body of a known [`BodyFraming`] from an `AsyncBufRead` to an `AsyncWrite`
//! straight out of the reader's buffer, so a read costs no allocation. Chunked bodies pass through
//! byte for byte (sizes, extensions and trailers as the sender wrote them) after each line is
//! validated and bounded; the caller's scratch vector holds one line at a time and keeps its capacity
//! between calls. The writer is flushed whenever the reader's buffer runs dry and at the end, so a
//! `BufWriter` may sit under it without holding back a slow stream.
//!
//! [`CopyError`] tells which side failed: a read error, a truncated body or a broken chunked coding
//! is the sender's fault; a write error is the receiver's.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::chunked::{
    ChunkError, MAX_CHUNK_LINE, MAX_TRAILER_SIZE, parse_chunk_size_line, validate_trailer_line,
};

/// Bounds on the lines of a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Longest chunk-size or trailer line, CRLF included.
    pub max_line: usize,
    /// Largest trailer section, final empty line included.
    pub max_trailer: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_line: MAX_CHUNK_LINE,
            max_trailer: MAX_TRAILER_SIZE,
        }
    }
}
use crate::framing::BodyFraming;

/// Why a body could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading from the sender failed.
    #[error("body read failed: {0}")]
    Read(io::Error),
    /// The sender closed before the body was complete.
    #[error("body truncated: sender closed early")]
    UnexpectedEof,
    /// The sender's chunked coding is invalid.
    #[error("invalid chunked body: {0}")]
    Chunked(#[from] ChunkError),
    /// Writing to the receiver failed.
    #[error("body write failed: {0}")]
    Write(io::Error),
}

impl CopyError {
    /// Whether the sender (read side) is at fault; otherwise the receiver (write side) is.
    pub fn is_read_side(&self) -> bool {
        !matches!(self, Self::Write(_))
    }
}

/// Flush bookkeeping: flush only when about to wait for more input.
#[derive(Default)]
struct Flow {
    unflushed: bool,
    drained: bool,
}

/// Copies one body of the given framing; returns the bytes written (chunk framing included).
///
/// `Tunnel` and `UntilClose` copy until the reader reaches end of stream. The caller bounds the time.
/// Chunked lines are bounded by [`BodyLimits::default`].
pub async fn copy_body<R, W>(
    reader: &mut R,
    writer: &mut W,
    framing: BodyFraming,
    buf: &mut Vec<u8>,
) -> Result<u64, CopyError>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    copy_body_with(reader, writer, framing, buf, &BodyLimits::default()).await
}

/// [`copy_body`] with explicit bounds on chunked lines.
pub async fn copy_body_with<R, W>(
    reader: &mut R,
    writer: &mut W,
    framing: BodyFraming,
    buf: &mut Vec<u8>,
    limits: &BodyLimits,
) -> Result<u64, CopyError>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut flow = Flow::default();
    let total = match framing {
        BodyFraming::Empty => return Ok(0),
        BodyFraming::ContentLength(n) => {
            copy_exact(reader, writer, n, &mut flow).await?;
            n
        }
        BodyFraming::UntilClose | BodyFraming::Tunnel => {
            copy_to_end(reader, writer, &mut flow).await?
        }
        BodyFraming::Chunked => copy_chunked(reader, writer, buf, &mut flow, limits).await?,
    };
    writer.flush().await.map_err(CopyError::Write)?;
    Ok(total)
}

/// Flushes if the last read emptied the reader, then waits for input.
async fn fill<'r, R, W>(
    reader: &'r mut R,
    writer: &mut W,
    flow: &mut Flow,
) -> Result<&'r [u8], CopyError>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    if flow.unflushed && flow.drained {
        writer.flush().await.map_err(CopyError::Write)?;
        flow.unflushed = false;
    }
    reader.fill_buf().await.map_err(CopyError::Read)
}

/// Copies exactly `n` bytes.
async fn copy_exact<R, W>(
    reader: &mut R,
    writer: &mut W,
    mut n: u64,
    flow: &mut Flow,
) -> Result<(), CopyError>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    while n > 0 {
        let chunk = fill(reader, writer, flow).await?;
        if chunk.is_empty() {
            return Err(CopyError::UnexpectedEof);
        }
        let avail = chunk.len();
        let take = usize::try_from(n).map_or(avail, |n| n.min(avail));
        writer
            .write_all(&chunk[..take])
            .await
            .map_err(CopyError::Write)?;
        reader.consume(take);
        flow.drained = take == avail;
        flow.unflushed = true;
        n -= take as u64;
    }
    Ok(())
}

/// Copies until end of stream; returns the byte count.
async fn copy_to_end<R, W>(
    reader: &mut R,
    writer: &mut W,
    flow: &mut Flow,
) -> Result<u64, CopyError>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut total = 0u64;
    loop {
        let chunk = fill(reader, writer, flow).await?;
        if chunk.is_empty() {
            return Ok(total);
        }
        let n = chunk.len();
        writer.write_all(chunk).await.map_err(CopyError::Write)?;
        reader.consume(n);
        flow.drained = true;
        flow.unflushed = true;
        total += n as u64;
    }
}

/// Reads one CRLF-terminated line (CRLF kept) of at most `max` bytes into `line`.
async fn read_line<R, W>(
    reader: &mut R,
    writer: &mut W,
    flow: &mut Flow,
    line: &mut Vec<u8>,
    max: usize,
    too_long: ChunkError,
) -> Result<(), CopyError>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    line.clear();
    loop {
        let chunk = fill(reader, writer, flow).await?;
        if chunk.is_empty() {
            return Err(CopyError::UnexpectedEof);
        }
        let avail = chunk.len();
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (avail, false),
        };
        if line.len() + take > max {
            return Err(too_long.into());
        }
        line.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        flow.drained = take == avail;
        if done {
            return match line.ends_with(b"\r\n") {
                true => Ok(()),
                false => Err(ChunkError::BadLineEnding.into()),
            };
        }
    }
}

/// Writes `data` and marks the writer dirty.
async fn emit<W>(writer: &mut W, data: &[u8], flow: &mut Flow) -> Result<u64, CopyError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    writer.write_all(data).await.map_err(CopyError::Write)?;
    flow.unflushed = true;
    Ok(data.len() as u64)
}

/// Passes a chunked body through, validating it; returns the bytes written.
async fn copy_chunked<R, W>(
    reader: &mut R,
    writer: &mut W,
    line: &mut Vec<u8>,
    flow: &mut Flow,
    limits: &BodyLimits,
) -> Result<u64, CopyError>
where
    R: AsyncBufRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut total = 0u64;
    loop {
        read_line(
            reader,
            writer,
            flow,
            line,
            limits.max_line,
            ChunkError::LineTooLong,
        )
        .await?;
        let size = parse_chunk_size_line(&line[..line.len() - 2])?;
        total += emit(writer, line, flow).await?;
        if size == 0 {
            break;
        }
        copy_exact(reader, writer, size, flow).await?;
        total += size;
        read_line(reader, writer, flow, line, 2, ChunkError::MissingDataCrlf).await?;
        total += emit(writer, b"\r\n", flow).await?;
    }
    let mut budget = limits.max_trailer;
    loop {
        let (max, too_long) = if budget < limits.max_line {
            (budget, ChunkError::TrailerTooLarge)
        } else {
            (limits.max_line, ChunkError::LineTooLong)
        };
        read_line(reader, writer, flow, line, max, too_long).await?;
        budget -= line.len();
        if line.len() > 2 {
            validate_trailer_line(&line[..line.len() - 2])?;
        }
        total += emit(writer, line, flow).await?;
        if line.len() == 2 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn run(
        input: &[u8],
        framing: BodyFraming,
        cap: usize,
    ) -> (Result<u64, CopyError>, Vec<u8>, Vec<u8>) {
        let mut r = BufReader::with_capacity(cap, input);
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let res = copy_body(&mut r, &mut out, framing, &mut scratch).await;
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut rest)
            .await
            .unwrap();
        (res, out, rest)
    }

    #[tokio::test]
    async fn content_length() {
        for cap in [1, 3, 1024] {
            let (res, out, rest) = run(b"hello world", BodyFraming::ContentLength(5), cap).await;
            assert_eq!(
                (res.unwrap(), &out[..], &rest[..]),
                (5, &b"hello"[..], &b" world"[..])
            );
        }
        let (res, _, _) = run(b"hi", BodyFraming::ContentLength(5), 8).await;
        assert!(matches!(res, Err(CopyError::UnexpectedEof)));
        let (res, out, _) = run(b"abc", BodyFraming::Empty, 8).await;
        assert_eq!((res.unwrap(), out.len()), (0, 0));
    }

    #[tokio::test]
    async fn until_close() {
        let (res, out, _) = run(b"everything", BodyFraming::UntilClose, 3).await;
        assert_eq!((res.unwrap(), &out[..]), (10, &b"everything"[..]));
    }

    #[tokio::test]
    async fn chunked_pass_through() {
        let body = b"5;ext=1\r\nhello\r\n000006 \r\n world\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        for cap in [1, 2, 7, 4096] {
            let (res, out, rest) = run(body, BodyFraming::Chunked, cap).await;
            assert_eq!(res.unwrap(), body.len() as u64 - 4);
            assert_eq!(&out[..], &body[..body.len() - 4]);
            assert_eq!(rest, b"NEXT");
        }
    }

    #[tokio::test]
    async fn chunked_errors() {
        type Check = fn(&CopyError) -> bool;
        let cases: [(&[u8], Check); 8] = [
            (b"5\r\nhelloXX0\r\n\r\n", |e| {
                matches!(e, CopyError::Chunked(ChunkError::MissingDataCrlf))
            }),
            (b"5\nhello\r\n0\r\n\r\n", |e| {
                matches!(e, CopyError::Chunked(ChunkError::BadLineEnding))
            }),
            (b"g\r\n", |e| {
                matches!(e, CopyError::Chunked(ChunkError::InvalidSize))
            }),
            (b"5\r\nhel", |e| matches!(e, CopyError::UnexpectedEof)),
            (b"0\r\nbad trailer\r\n\r\n", |e| {
                matches!(e, CopyError::Chunked(ChunkError::InvalidTrailer))
            }),
            (b"0\r\nA: b\n\r\n", |e| {
                matches!(e, CopyError::Chunked(ChunkError::BadLineEnding))
            }),
            (b"1\r\na\r\n", |e| matches!(e, CopyError::UnexpectedEof)),
            (b"", |e| matches!(e, CopyError::UnexpectedEof)),
        ];
        for (input, check) in cases {
            let (res, _, _) = run(input, BodyFraming::Chunked, 3).await;
            let err = res.unwrap_err();
            assert!(check(&err), "{:?}: {err:?}", String::from_utf8_lossy(input));
            assert!(err.is_read_side());
        }
        let long = vec![b'0'; MAX_CHUNK_LINE + 1];
        let small = BodyLimits {
            max_line: 8,
            max_trailer: 12,
        };
        let mut out = Vec::new();
        let mut r = BufReader::new(&b"1;abcdefgh\r\nx\r\n0\r\n\r\n"[..]);
        let res = copy_body_with(
            &mut r,
            &mut out,
            BodyFraming::Chunked,
            &mut Vec::new(),
            &small,
        )
        .await;
        assert!(matches!(
            res,
            Err(CopyError::Chunked(ChunkError::LineTooLong))
        ));
        let mut r = BufReader::new(&b"0\r\nA: 1\r\nB: 2\r\n\r\n"[..]);
        let res = copy_body_with(
            &mut r,
            &mut out,
            BodyFraming::Chunked,
            &mut Vec::new(),
            &small,
        )
        .await;
        assert!(matches!(
            res,
            Err(CopyError::Chunked(ChunkError::TrailerTooLarge))
        ));
        let (res, _, _) = run(&long, BodyFraming::Chunked, 512).await;
        assert!(matches!(
            res,
            Err(CopyError::Chunked(ChunkError::LineTooLong))
        ));
        let mut big_trailer = b"0\r\n".to_vec();
        for _ in 0..MAX_TRAILER_SIZE / 10 {
            big_trailer.extend_from_slice(b"X-A: 1234\r\n");
        }
        let (res, _, _) = run(&big_trailer, BodyFraming::Chunked, 512).await;
        assert!(matches!(
            res,
            Err(CopyError::Chunked(ChunkError::TrailerTooLarge))
        ));
    }

    #[tokio::test]
    async fn write_errors_are_write_side() {
        struct Broken;
        impl AsyncWrite for Broken {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &[u8],
            ) -> std::task::Poll<io::Result<usize>> {
                std::task::Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
        let mut r = BufReader::new(&b"abc"[..]);
        let err = copy_body(
            &mut r,
            &mut Broken,
            BodyFraming::ContentLength(3),
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(!err.is_read_side());
    }
}
