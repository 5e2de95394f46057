//! The SOCKS5 UDP datagram header (RFC 1928 §7).
//!
//! Every datagram between client and server starts with `RSV(2) FRAG ATYP DST.ADDR DST.PORT`, then
//! the payload. Fragmentation is not supported: [`decode_udp_header`] returns
//! [`SocksError::Fragmented`] for FRAG ≠ 0 and the caller drops the datagram. Nothing is copied: decode
//! reports the header length (the payload is `&buf[len..]`), and encode writes into a caller buffer,
//! either at its start ([`encode_udp_header`]) or right before a payload already in place
//! ([`encode_udp_header_before`]), so a relay can receive into `buf[UDP_HEADER_MAX_LEN..]` and send
//! the header and payload as one slice.

use crate::addr::MAX_ADDR_LEN;
use crate::{SocksAddr, SocksError};

/// Longest possible header: RSV, FRAG and the longest `ATYP ADDR PORT` (a 255-byte domain).
pub const UDP_HEADER_MAX_LEN: usize = 3 + MAX_ADDR_LEN;

/// Decode a datagram's header, returning the target and the header length (payload offset).
pub fn decode_udp_header(buf: &[u8]) -> Result<(SocksAddr, usize), SocksError> {
    let head = buf.get(..3).ok_or(SocksError::Truncated)?;
    if head[2] != 0 {
        return Err(SocksError::Fragmented(head[2]));
    }
    let (addr, n) = SocksAddr::decode(&buf[3..])?;
    Ok((addr, 3 + n))
}

/// Length of the header for `target`.
pub fn udp_header_len(target: &SocksAddr) -> usize {
    3 + target.encoded_len()
}

/// Write the header for `target` at the start of `out`, returning its length.
pub fn encode_udp_header(target: &SocksAddr, out: &mut [u8]) -> Result<usize, SocksError> {
    let need = udp_header_len(target);
    if out.len() < need {
        return Err(SocksError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    out[..3].fill(0);
    let n = target.encode(&mut out[3..])?;
    Ok(3 + n)
}

/// Write the header for `target` so that it ends at `payload_start`, returning where it starts.
pub fn encode_udp_header_before(
    target: &SocksAddr,
    buf: &mut [u8],
    payload_start: usize,
) -> Result<usize, SocksError> {
    let need = udp_header_len(target);
    let have = payload_start.min(buf.len());
    let Some(start) = have.checked_sub(need) else {
        return Err(SocksError::BufferTooSmall { need, have });
    };
    encode_udp_header(target, &mut buf[start..payload_start])?;
    Ok(start)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_datagram() {
        let d = [0, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90, b'h', b'i'];
        let (a, n) = decode_udp_header(&d).unwrap();
        assert_eq!(a, SocksAddr::Ip("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(&d[n..], b"hi");
        let mut out = [0xAAu8; 16];
        assert_eq!(encode_udp_header(&a, &mut out).unwrap(), 10);
        assert_eq!(&out[..10], &d[..10]);
    }

    #[test]
    fn domain_and_ipv6_datagrams() {
        let a = SocksAddr::domain("dns.example", 53).unwrap();
        let mut out = [0u8; UDP_HEADER_MAX_LEN];
        let n = encode_udp_header(&a, &mut out).unwrap();
        assert_eq!(n, 3 + 1 + 1 + 11 + 2);
        assert_eq!(decode_udp_header(&out[..n]).unwrap(), (a, n));
        let a = SocksAddr::Ip("[fe80::1]:9".parse().unwrap());
        let n = encode_udp_header(&a, &mut out).unwrap();
        assert_eq!(n, 22);
        assert_eq!(decode_udp_header(&out[..n]).unwrap(), (a, n));
        let longest = SocksAddr::domain("d".repeat(255), 1).unwrap();
        assert_eq!(udp_header_len(&longest), UDP_HEADER_MAX_LEN);
        assert!(encode_udp_header(&longest, &mut out).is_ok());
    }

    #[test]
    fn fragments_and_truncation() {
        assert!(matches!(
            decode_udp_header(&[0, 0, 1, 1, 1, 1, 1, 1, 0, 1]),
            Err(SocksError::Fragmented(1))
        ));
        assert!(decode_udp_header(&[0, 0]).unwrap_err().is_truncated());
        assert!(decode_udp_header(&[0, 0, 0]).unwrap_err().is_truncated());
        assert!(
            decode_udp_header(&[0, 0, 0, 4, 1, 2])
                .unwrap_err()
                .is_truncated()
        );
        assert!(matches!(
            decode_udp_header(&[0, 0, 0, 9, 1, 2]),
            Err(SocksError::UnsupportedAddrType(9))
        ));
        let (_, n) = decode_udp_header(&[0, 0, 0, 1, 1, 1, 1, 1, 0, 1]).unwrap();
        assert_eq!(n, 10, "an empty payload is valid");
    }

    #[test]
    fn encode_before_payload() {
        let a = SocksAddr::Ip("10.1.2.3:4000".parse().unwrap());
        let mut buf = vec![0u8; UDP_HEADER_MAX_LEN + 4];
        buf[UDP_HEADER_MAX_LEN..].copy_from_slice(b"data");
        let start = encode_udp_header_before(&a, &mut buf, UDP_HEADER_MAX_LEN).unwrap();
        assert_eq!(start, UDP_HEADER_MAX_LEN - 10);
        let dgram = &buf[start..];
        let (got, n) = decode_udp_header(dgram).unwrap();
        assert_eq!(got, a);
        assert_eq!(&dgram[n..], b"data");
        assert!(matches!(
            encode_udp_header_before(&a, &mut buf, 9),
            Err(SocksError::BufferTooSmall { need: 10, have: 9 })
        ));
        let mut small = [0u8; 5];
        assert!(encode_udp_header(&a, &mut small).is_err());
    }
}
