//! A user's password token, in every form g3proxy accepts plus argon2 PHC strings.
//!
//! - map `{salt, md5, sha1}` (g3proxy's `fast_hash`, what `scripts/passphrase_hash.py` prints):
//!   hex values; `md5` is MD5(password ‖ salt bytes), `sha1` is SHA-1(password ‖ salt bytes); at
//!   least one of them, and every one given must match. `type: fast_hash` may be written.
//! - a crypt(5) string `$1$…`, `$5$…`, `$6$…`, or the map `{type: xcrypt_hash, value: "$6$…"}`.
//! - an argon2 PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$hash` (also `argon2i`, `argon2d`), or
//!   the map `{type: argon2, value: …}`.
//! - `null`: password authentication disabled for this user (it never passes).
//!
//! Every comparison is constant-time. Tokens never appear in `Debug` output or logs.
//!
//! ```yaml
//! token: {salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}
//! token: "$6$rounds=5000$salt$..."
//! token: "$argon2id$v=19$m=19456,t=2,p=1$..."
//! ```

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use md5::Md5;
use px_yaml::{ConfigError, Val, Value};
use sha1::Sha1;
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::crypt::{CryptHash, Method};

/// A parsed password token.
#[derive(Clone)]
pub(crate) enum Token {
    /// Password authentication is disabled (`token: null`, or no token).
    Disabled,
    /// g3proxy's salted fast hash.
    FastHash {
        /// The salt bytes.
        salt: Vec<u8>,
        /// MD5(password ‖ salt).
        md5: Option<Vec<u8>>,
        /// SHA-1(password ‖ salt).
        sha1: Option<Vec<u8>>,
    },
    /// A crypt(5) string.
    Crypt(CryptHash),
    /// An argon2 PHC string.
    Argon2(Box<PasswordHash>),
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Token::Disabled => "Token(disabled)",
            Token::FastHash { .. } => "Token(fast_hash)",
            Token::Crypt(_) => "Token(crypt)",
            Token::Argon2(_) => "Token(argon2)",
        })
    }
}

/// How long a check takes: cheap ones run inline, costly ones on the blocking pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// Microseconds (fast_hash, md5-crypt).
    Cheap,
    /// Milliseconds or more (sha-crypt, argon2).
    Costly,
}

fn hex(v: &Val<'_>, what: &str) -> Result<Vec<u8>, ConfigError> {
    let s = v.as_text()?;
    let s = s.trim();
    if s.len() % 2 != 0 {
        return Err(v.err(format!(
            "{what} must be hex digits (quote it when YAML reads it as a number)"
        )));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| v.err(format!("{what} must be hex digits")))
        })
        .collect()
}

fn parse_string(v: &Val<'_>, s: &str) -> Result<Token, ConfigError> {
    if s.starts_with("$argon2") {
        let h =
            PasswordHash::new(s).map_err(|e| v.err(format!("invalid argon2 PHC string: {e}")))?;
        let alg = h.algorithm.as_str();
        if !matches!(alg, "argon2id" | "argon2i" | "argon2d") {
            return Err(v.err(format!("unsupported PHC algorithm `{alg}`")));
        }
        if h.hash.is_none() || h.salt.is_none() {
            return Err(v.err("argon2 PHC string without salt or hash"));
        }
        return Ok(Token::Argon2(Box::new(h)));
    }
    CryptHash::parse(s)
        .map(Token::Crypt)
        .map_err(|e| v.err(format!("invalid crypt(5) token: {e}")))
}

impl Token {
    /// Reads a token value (string, map or null).
    pub(crate) fn parse(v: &Val<'_>) -> Result<Token, ConfigError> {
        match &v.node().value {
            Value::Null => Ok(Token::Disabled),
            Value::Str(s) => parse_string(v, s),
            Value::Map(_) => {
                let mut m = v.map()?;
                let ty = m.get("type").map(|t| t.as_text()).transpose()?;
                let token = match ty.as_deref().map(px_yaml::normalize_type).as_deref() {
                    None | Some("fasthash") => {
                        let salt = hex(&m.required("salt")?, "salt")?;
                        let md5 = m.get("md5").map(|x| hex(&x, "md5")).transpose()?;
                        let sha1 = m.get("sha1").map(|x| hex(&x, "sha1")).transpose()?;
                        m.unimplemented(&["blake3"])?;
                        if md5.as_ref().is_some_and(|h| h.len() != 16) {
                            return Err(v.err("md5 must be 32 hex digits"));
                        }
                        if sha1.as_ref().is_some_and(|h| h.len() != 20) {
                            return Err(v.err("sha1 must be 40 hex digits"));
                        }
                        if md5.is_none() && sha1.is_none() {
                            return Err(v.err("a fast_hash token needs md5 or sha1"));
                        }
                        Token::FastHash { salt, md5, sha1 }
                    }
                    Some("xcrypthash" | "crypt" | "argon2" | "phc") => {
                        let val = m.required("value")?;
                        parse_string(&val, val.as_str()?)?
                    }
                    Some(other) => {
                        return Err(v.err(format!(
                            "unknown token type `{other}` (fast_hash, xcrypt_hash, argon2)"
                        )));
                    }
                };
                m.finish()?;
                Ok(token)
            }
            _ => Err(v.err("a token is a map, a crypt(5) or PHC string, or null")),
        }
    }

    /// Which pool a check should run on.
    pub(crate) fn cost(&self) -> Cost {
        match self {
            Token::Disabled | Token::FastHash { .. } => Cost::Cheap,
            Token::Crypt(c) if c.method() == Method::Md5 => Cost::Cheap,
            Token::Crypt(_) | Token::Argon2(_) => Cost::Costly,
        }
    }

    /// True when the password matches.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            Token::Disabled => false,
            Token::FastHash { salt, md5, sha1 } => {
                let mut ok = subtle::Choice::from(1u8);
                if let Some(want) = md5 {
                    let mut h = Md5::new();
                    h.update(password);
                    h.update(salt);
                    ok &= h.finalize().as_slice().ct_eq(want);
                }
                if let Some(want) = sha1 {
                    let mut h = Sha1::new();
                    h.update(password);
                    h.update(salt);
                    ok &= h.finalize().as_slice().ct_eq(want);
                }
                ok.into()
            }
            Token::Crypt(c) => c.verify(password),
            Token::Argon2(h) => Argon2::default().verify_password(password, &**h).is_ok(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn token(yaml: &str) -> Result<Token, ConfigError> {
        let node = px_yaml::load_str(yaml, Path::new("t.yaml")).unwrap();
        Token::parse(&Val::root(&node, "token"))
    }

    /// The user guide's example user root/toor.
    const GUIDE: &str = "{salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, \
                         sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}";

    #[test]
    fn fast_hash_of_the_user_guide() {
        let t = token(GUIDE).unwrap();
        assert!(t.verify(b"toor"));
        assert!(!t.verify(b"root"));
        assert!(!t.verify(b""));
        assert_eq!(t.cost(), Cost::Cheap);
        // one hash is enough, and a wrong one fails the whole token
        let t = token("{type: fast_hash, salt: 113323bdab6fd2cc, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}").unwrap();
        assert!(t.verify(b"toor"));
        let t = token("{salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff00000000000000000000000000000000000000}").unwrap();
        assert!(!t.verify(b"toor"));
    }

    #[test]
    fn crypt_and_argon2() {
        let t = token("\"$1$saltsalt$fFhQNRZ9A4AYLdo7vOe8a0\"").unwrap();
        assert!(t.verify(b"hello") && !t.verify(b"hellO"));
        assert_eq!(t.cost(), Cost::Cheap);
        let t = token("{type: xcrypt_hash, value: \"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5\"}").unwrap();
        assert!(t.verify(b"Hello world!"));
        assert_eq!(t.cost(), Cost::Costly);
        // cheap parameters: m=64 KiB, t=1, p=1 (made with the argon2 crate, password "s3cret")
        let phc = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$OIlKV3rvUBXj2pn9CR7zjs5RwXqPrzV+C3QcgWE6YGA";
        let t = token(&format!("\"{phc}\"")).unwrap();
        assert!(t.verify(b"s3cret"), "argon2 token");
        assert!(!t.verify(b"s3cret!"));
    }

    #[test]
    fn disabled_and_bad() {
        let t = token("~").unwrap();
        assert!(!t.verify(b""));
        for bad in [
            "{salt: zz, md5: 5c81f2becadde7fa5fde9026652ccc84}",
            "{salt: 11}",
            "{salt: 11, md5: 00}",
            "{salt: 11, blake3: 00}",
            "\"$2b$10$x\"",
            "\"$argon2id$v=19$m=64\"",
            "{type: gssapi}",
            "[1]",
        ] {
            assert!(token(bad).is_err(), "{bad}");
        }
        assert!(format!("{:?}", token(GUIDE).unwrap()) == "Token(fast_hash)");
    }
}
