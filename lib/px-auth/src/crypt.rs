//! crypt(5) password hashes: `$1$` (md5-crypt), `$5$` (sha256-crypt) and `$6$` (sha512-crypt).
//!
//! [`CryptHash::parse`] splits a stored string into method, rounds, salt and the encoded hash at
//! config time; [`CryptHash::verify`] recomputes the hash of a password with the same salt and
//! rounds and compares the encodings in constant time. The algorithms follow the published
//! descriptions (Poul-Henning Kamp's md5-crypt, Ulrich Drepper's SHA-crypt); the test vectors are
//! those of the SHA-crypt specification and `openssl passwd`.
//!
//! ```text
//! $1$saltsalt$fFhQNRZ9A4AYLdo7vOe8a0
//! $5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA
//! $6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1
//! ```

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The crypt alphabet.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// SHA-crypt's default and bounds on `rounds=`.
const ROUNDS_DEFAULT: u32 = 5000;
const ROUNDS_MIN: u32 = 1000;
const ROUNDS_MAX: u32 = 999_999_999;

/// The crypt method of a hash string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// `$1$`
    Md5,
    /// `$5$`
    Sha256,
    /// `$6$`
    Sha512,
}

/// A parsed crypt(5) hash string.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CryptHash {
    method: Method,
    rounds: u32,
    salt: Vec<u8>,
    encoded: Vec<u8>,
}

impl std::fmt::Debug for CryptHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CryptHash({:?}, rounds {})", self.method, self.rounds)
    }
}

impl CryptHash {
    /// Parses `$1$salt$hash`, `$5$[rounds=N$]salt$hash` or `$6$[rounds=N$]salt$hash`.
    pub(crate) fn parse(s: &str) -> Result<CryptHash, String> {
        let (method, rest) = if let Some(r) = s.strip_prefix("$1$") {
            (Method::Md5, r)
        } else if let Some(r) = s.strip_prefix("$5$") {
            (Method::Sha256, r)
        } else if let Some(r) = s.strip_prefix("$6$") {
            (Method::Sha512, r)
        } else {
            return Err("unsupported crypt method (use $1$, $5$ or $6$)".into());
        };
        let mut rounds = ROUNDS_DEFAULT;
        let mut rest = rest;
        if method != Method::Md5
            && let Some(r) = rest.strip_prefix("rounds=")
        {
            let (n, after) = r
                .split_once('$')
                .ok_or_else(|| "missing `$` after rounds".to_string())?;
            let n: u32 = n.parse().map_err(|_| format!("invalid rounds {n:?}"))?;
            rounds = n.clamp(ROUNDS_MIN, ROUNDS_MAX);
            rest = after;
        }
        let (salt, encoded) = rest
            .rsplit_once('$')
            .ok_or_else(|| "missing `$` between salt and hash".to_string())?;
        let max_salt = if method == Method::Md5 { 8 } else { 16 };
        let salt: Vec<u8> = salt.bytes().take(max_salt).collect();
        let want_len = match method {
            Method::Md5 => 22,
            Method::Sha256 => 43,
            Method::Sha512 => 86,
        };
        if encoded.len() != want_len || !encoded.bytes().all(|b| ITOA64.contains(&b)) {
            return Err(format!(
                "the hash part must be {want_len} characters of the crypt alphabet"
            ));
        }
        Ok(CryptHash {
            method,
            rounds,
            salt,
            encoded: encoded.as_bytes().to_vec(),
        })
    }

    /// The method.
    pub(crate) fn method(&self) -> Method {
        self.method
    }

    /// True when the password hashes to the stored value (constant-time comparison).
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let computed = match self.method {
            Method::Md5 => md5_crypt(password, &self.salt),
            Method::Sha256 => {
                sha_crypt::<Sha256, 10>(password, &self.salt, self.rounds, &SHA256_ORDER)
            }
            Method::Sha512 => {
                sha_crypt::<Sha512, 21>(password, &self.salt, self.rounds, &SHA512_ORDER)
            }
        };
        computed.ct_eq(&self.encoded).into()
    }
}

/// Appends `n` crypt-alphabet characters of `v`, lowest 6 bits first.
fn to64(out: &mut Vec<u8>, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(ITOA64[(v & 0x3f) as usize]);
        v >>= 6;
    }
}

/// The md5-crypt hash part for a password and salt (at most 8 bytes).
pub(crate) fn md5_crypt(pw: &[u8], salt: &[u8]) -> Vec<u8> {
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(b"$1$");
    ctx.update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let f = |i: usize| u32::from(fin[i]);
    let mut out = Vec::with_capacity(22);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    to64(&mut out, f(11), 2);
    out
}

/// The output byte order of a SHA-crypt encoding: triples (b2, b1, b0) of 4 characters each,
/// then the last group's bytes and character count (`usize::MAX` stands for a zero byte).
type Order<const N: usize> = ([(usize, usize, usize); N], (usize, usize, usize, usize));

/// Byte triples of the SHA-256-crypt encoding, then the last group's bytes.
const SHA256_ORDER: Order<10> = (
    [
        (0, 10, 20),
        (21, 1, 11),
        (12, 22, 2),
        (3, 13, 23),
        (24, 4, 14),
        (15, 25, 5),
        (6, 16, 26),
        (27, 7, 17),
        (18, 28, 8),
        (9, 19, 29),
    ],
    // (b2, b1, b0, characters): a zero byte, 31, 30 in 3 characters
    (usize::MAX, 31, 30, 3),
);

/// Byte triples of the SHA-512-crypt encoding, then the last group's bytes.
const SHA512_ORDER: Order<21> = (
    [
        (0, 21, 42),
        (22, 43, 1),
        (44, 2, 23),
        (3, 24, 45),
        (25, 46, 4),
        (47, 5, 26),
        (6, 27, 48),
        (28, 49, 7),
        (50, 8, 29),
        (9, 30, 51),
        (31, 52, 10),
        (53, 11, 32),
        (12, 33, 54),
        (34, 55, 13),
        (56, 14, 35),
        (15, 36, 57),
        (37, 58, 16),
        (59, 17, 38),
        (18, 39, 60),
        (40, 61, 19),
        (62, 20, 41),
    ],
    // only the last byte, in 2 characters
    (usize::MAX, usize::MAX, 63, 2),
);

/// Repeats `src` (one digest) cyclically into `len` bytes.
fn stretch(src: &[u8], len: usize) -> Vec<u8> {
    src.iter().copied().cycle().take(len).collect()
}

/// The SHA-crypt hash part for a password, salt (at most 16 bytes) and round count.
fn sha_crypt<D: Digest + Clone, const N: usize>(
    pw: &[u8],
    salt: &[u8],
    rounds: u32,
    order: &Order<N>,
) -> Vec<u8> {
    let hash_len = <D as Digest>::output_size();
    let mut b = D::new();
    b.update(pw);
    b.update(salt);
    b.update(pw);
    let b = b.finalize();

    let mut a = D::new();
    a.update(pw);
    a.update(salt);
    let mut left = pw.len();
    while left > hash_len {
        a.update(&b[..]);
        left -= hash_len;
    }
    a.update(&b[..left]);
    let mut n = pw.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(&b[..]);
        } else {
            a.update(pw);
        }
        n >>= 1;
    }
    let a = a.finalize();

    let mut dp = D::new();
    for _ in 0..pw.len() {
        dp.update(pw);
    }
    let p = stretch(&dp.finalize(), pw.len());

    let mut ds = D::new();
    for _ in 0..(16 + usize::from(a[0])) {
        ds.update(salt);
    }
    let s = stretch(&ds.finalize(), salt.len());

    let mut cur: Vec<u8> = a.to_vec();
    for i in 0..rounds {
        let mut c = D::new();
        if i & 1 == 1 {
            c.update(&p);
        } else {
            c.update(&cur);
        }
        if i % 3 != 0 {
            c.update(&s);
        }
        if i % 7 != 0 {
            c.update(&p);
        }
        if i & 1 == 1 {
            c.update(&cur);
        } else {
            c.update(&p);
        }
        cur = c.finalize().to_vec();
    }

    let byte = |i: usize| u32::from(cur.get(i).copied().unwrap_or(0));
    let mut out = Vec::with_capacity(86);
    for &(b2, b1, b0) in &order.0 {
        to64(&mut out, (byte(b2) << 16) | (byte(b1) << 8) | byte(b0), 4);
    }
    let (b2, b1, b0, chars) = order.1;
    let hi = if b2 == usize::MAX { 0 } else { byte(b2) << 16 };
    let mid = if b1 == usize::MAX { 0 } else { byte(b1) << 8 };
    to64(&mut out, hi | mid | byte(b0), chars);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(hash: &str, pw: &str) {
        let h = CryptHash::parse(hash).unwrap();
        assert!(h.verify(pw.as_bytes()), "{hash} should match {pw:?}");
        assert!(!h.verify(b"wrong"), "{hash} must not match `wrong`");
    }

    #[test]
    fn sha_crypt_spec_vectors() {
        check(
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
            "Hello world!",
        );
        check(
            "$5$rounds=10000$saltstringsaltstring$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
            "Hello world!",
        );
        check(
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "Hello world!",
        );
        check(
            "$6$rounds=10000$saltstringsaltstring$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
            "Hello world!",
        );
    }

    #[test]
    fn md5_crypt_vectors() {
        // openssl passwd -1 -salt saltsalt hello
        check("$1$saltsalt$fFhQNRZ9A4AYLdo7vOe8a0", "hello");
    }

    #[test]
    fn malformed() {
        for s in [
            "$2b$10$abc",
            "$1$salt",
            "$5$rounds=x$salt$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
            "$6$salt$short",
            "plain",
        ] {
            assert!(CryptHash::parse(s).is_err(), "{s}");
        }
    }
}
