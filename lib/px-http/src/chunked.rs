//! The chunked transfer coding (RFC 9112 §7.1): line validation and encoding.
//!
//! A proxy passes chunked bodies through unchanged (see [`crate::copy_body`]) but must check them, or a
//! peer could smuggle a second message inside the first. [`parse_chunk_size_line`] accepts a
//! hexadecimal size that fits 64 bits (leading zeros allowed), optional whitespace, and chunk
//! extensions made of visible characters; [`validate_trailer_line`] checks a trailer field line.
//! Lines are bounded by [`MAX_CHUNK_LINE`] and the trailer section by [`MAX_TRAILER_SIZE`] unless the
//! caller passes other [`crate::BodyLimits`]. Only CRLF
//! line endings are accepted inside a chunked body.
//!
//! [`encode_chunk`] and [`encode_last_chunk`] produce a chunked body for a proxy that makes one up.

/// Longest chunk-size or trailer line accepted by default, CRLF included (g3proxy's
/// `body_line_max_length` default).
pub const MAX_CHUNK_LINE: usize = 8192;
/// Largest trailer section accepted, final empty line included.
pub const MAX_TRAILER_SIZE: usize = 64 * 1024;

/// A violation of the chunked coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk-size or trailer line is longer than the line limit.
    #[error("chunk-size or trailer line too long")]
    LineTooLong,
    /// The chunk size is missing or not hexadecimal.
    #[error("invalid chunk size")]
    InvalidSize,
    /// The chunk size does not fit 64 bits.
    #[error("chunk size too large")]
    SizeOverflow,
    /// A chunk extension holds a control character.
    #[error("invalid chunk extension")]
    InvalidExtension,
    /// A line does not end with CRLF.
    #[error("line not ended by CRLF")]
    BadLineEnding,
    /// Chunk data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingDataCrlf,
    /// The trailer section is larger than its limit.
    #[error("trailer section too large")]
    TrailerTooLarge,
    /// A trailer line is not a valid field line.
    #[error("invalid trailer field")]
    InvalidTrailer,
}

/// Parses a chunk-size line without its CRLF and returns the chunk size.
pub fn parse_chunk_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError::InvalidSize);
    }
    let (hex, rest) = line.split_at(digits);
    let significant = hex.iter().skip_while(|b| **b == b'0').count();
    if significant > 16 {
        return Err(ChunkError::SizeOverflow);
    }
    let size = hex
        .iter()
        .fold(0u64, |acc, b| (acc << 4) | u64::from(hex_value(*b)));
    let rest = crate::headers::trim_ows(rest);
    match rest.split_first() {
        None => Ok(size),
        Some((b';', ext)) if ext.iter().all(|b| is_field_char(*b)) => Ok(size),
        Some((b';', _)) => Err(ChunkError::InvalidExtension),
        Some(_) => Err(ChunkError::InvalidSize),
    }
}

/// Checks one trailer field line (without its CRLF): a token, a colon, a value without controls.
pub fn validate_trailer_line(line: &[u8]) -> Result<(), ChunkError> {
    let colon = memchr::memchr(b':', line).ok_or(ChunkError::InvalidTrailer)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty()
        || !name.iter().all(|b| is_tchar(*b))
        || !value.iter().all(|b| is_field_char(*b))
    {
        return Err(ChunkError::InvalidTrailer);
    }
    Ok(())
}

/// Appends one chunk holding `data` (nothing for empty data, which would end the body).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and an empty trailer section.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// The value of one hexadecimal digit (0 for anything else; callers pass hex digits).
fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Visible characters, space, tab and obs-text: what a field value or chunk extension may hold.
fn is_field_char(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_chunk_size_line(b"0"), Ok(0));
        assert_eq!(parse_chunk_size_line(b"1aF"), Ok(0x1af));
        assert_eq!(parse_chunk_size_line(b"000000000000000000001"), Ok(1));
        assert_eq!(parse_chunk_size_line(b"ffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(
            parse_chunk_size_line(b"10000000000000000"),
            Err(ChunkError::SizeOverflow)
        );
        assert_eq!(parse_chunk_size_line(b"5 ; name=\"v\"; x"), Ok(5));
        assert_eq!(parse_chunk_size_line(b"5\t"), Ok(5));
        assert_eq!(parse_chunk_size_line(b""), Err(ChunkError::InvalidSize));
        assert_eq!(parse_chunk_size_line(b"-5"), Err(ChunkError::InvalidSize));
        assert_eq!(parse_chunk_size_line(b"0x5"), Err(ChunkError::InvalidSize));
        assert_eq!(parse_chunk_size_line(b"5 6"), Err(ChunkError::InvalidSize));
        assert_eq!(
            parse_chunk_size_line(b"5;a\rb"),
            Err(ChunkError::InvalidExtension)
        );
        assert_eq!(
            parse_chunk_size_line(b"5;\0"),
            Err(ChunkError::InvalidExtension)
        );
    }

    #[test]
    fn trailers() {
        assert_eq!(validate_trailer_line(b"X-Sum: abc"), Ok(()));
        assert_eq!(validate_trailer_line(b"X-Empty:"), Ok(()));
        assert_eq!(
            validate_trailer_line(b"no colon"),
            Err(ChunkError::InvalidTrailer)
        );
        assert_eq!(
            validate_trailer_line(b": v"),
            Err(ChunkError::InvalidTrailer)
        );
        assert_eq!(
            validate_trailer_line(b"A B: v"),
            Err(ChunkError::InvalidTrailer)
        );
        assert_eq!(
            validate_trailer_line(b"A: v\rw"),
            Err(ChunkError::InvalidTrailer)
        );
    }

    #[test]
    fn encode() {
        let mut out = Vec::new();
        encode_chunk(b"hello world, this is 26 b.", &mut out);
        encode_chunk(b"", &mut out);
        encode_last_chunk(&mut out);
        assert_eq!(out, b"1a\r\nhello world, this is 26 b.\r\n0\r\n\r\n");
    }
}
