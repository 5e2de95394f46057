//! Deterministic body patterns and a checksum, shared by the origin server and the tests.
//!
//! The pattern byte at offset `i` is a hash of `i`, so a body that lost, duplicated or
//! reordered any bytes is caught, and the first bad offset can be reported.

/// 16 MiB, the size of the "big body" tests.
pub const BIG: usize = 16 * 1024 * 1024;

/// The pattern byte at `offset`.
pub fn byte_at(offset: u64) -> u8 {
    let x = offset.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8 ^ (x >> 29) as u8
}

/// Fill `buf` with the pattern starting at `offset`.
pub fn fill(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte_at(offset + i as u64);
    }
}

/// `len` pattern bytes starting at offset 0.
pub fn make(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(0, &mut v);
    v
}

/// Check that `data` is exactly the pattern of length `len`: `Err` describes the first
/// difference (a wrong length or the first wrong offset).
pub fn check(data: &[u8], len: usize) -> Result<(), String> {
    for (i, b) in data.iter().enumerate() {
        if *b != byte_at(i as u64) {
            return Err(format!(
                "pattern mismatch at offset {i} of {} bytes (expected {} bytes)",
                data.len(),
                len
            ));
        }
    }
    if data.len() != len {
        return Err(format!(
            "pattern length {} but expected {len} (the bytes received are correct)",
            data.len()
        ));
    }
    Ok(())
}

/// Incremental FNV-1a 64 checksum; the origin reports it in `X-Body-Fnv1a`.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The FNV-1a 64 checksum of `data` as 16 lowercase hex digits.
pub fn fnv1a_hex(data: &[u8]) -> String {
    let mut h = Fnv1a::default();
    h.update(data);
    h.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_not_periodic_in_small_windows() {
        let v = make(1 << 16);
        assert!(check(&v, v.len()).is_ok());
        // shifting by any small amount must break it
        for shift in 1..300 {
            assert!(
                check(&v[shift..], v.len() - shift).is_err(),
                "shift {shift}"
            );
        }
        let mut w = v.clone();
        w[4000] ^= 1;
        assert!(check(&w, w.len()).unwrap_err().contains("offset 4000"));
        assert!(check(&v[..100], 101).is_err());
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv1a_hex(b"a"), "af63dc4c8601ec8c");
        let mut h = Fnv1a::default();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.hex(), fnv1a_hex(b"hello world"));
    }
}
