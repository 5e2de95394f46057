//! Where dynamic users come from, and the cache of the last good set.
//!
//! - `source: {type: file, path: users.json}` (or `source: "file:///abs/users.json"`): a JSON list
//!   of users (YAML is read too), re-read every `refresh_interval` and on `reload-user-group`.
//! - `source: {type: redis, addr: 127.0.0.1:6379, key: g3proxy:users, db, username, password}`
//!   (or a URL `redis://[user:password@]host:port[/db]?key=NAME`): the key is a string holding a
//!   JSON list, or a hash of one JSON user per field. Every daemon of a fleet reads the same key.
//! - `timeout` (default 10s): bound on one fetch.
//!
//! A relative path is relative to the config file that names it. A document is parsed whole
//! with the same reader as static users: any error rejects it and the last good set stays.
//!
//! `cache: PATH` (a group key) is written with each new good document and read at start, so a
//! restart works while the source is down.

use std::path::{Path, PathBuf};
use std::time::Duration;

use px_core::UserKind;
use px_yaml::{ConfigError, Val};

use crate::redis::{self, RedisConfig};
use crate::user::User;

/// The kind of dynamic source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// A local file.
    File(PathBuf),
    /// A Redis key.
    Redis(RedisConfig),
}

/// A dynamic user source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    /// Where.
    pub(crate) kind: SourceKind,
    /// Bound on one fetch.
    pub(crate) timeout: Duration,
}

/// Resolves `p` against the folder of the config file `v` is in.
pub(crate) fn config_path(v: &Val<'_>, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    v.file()
        .parent()
        .map(|d| d.join(p))
        .unwrap_or_else(|| p.to_path_buf())
}

fn redis_url(v: &Val<'_>, url: &str) -> Result<RedisConfig, ConfigError> {
    let bad = |m: &str| v.err(format!("invalid redis URL: {m}"));
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| bad("needs redis://"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let (addr, db) = match hostpart.split_once('/') {
        Some((a, "")) => (a, 0),
        Some((a, d)) => (
            a,
            d.parse()
                .map_err(|_| bad("the database must be a number"))?,
        ),
        None => (hostpart, 0),
    };
    let (username, password) = match auth {
        Some(a) => match a.split_once(':') {
            Some(("", p)) => (None, Some(p.to_string())),
            Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
            None => (None, Some(a.to_string())),
        },
        None => (None, None),
    };
    let mut key = None;
    for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("key", k)) if !k.is_empty() => key = Some(k.to_string()),
            _ => return Err(bad(&format!("unknown parameter {kv:?}"))),
        }
    }
    Ok(RedisConfig {
        addr: with_default_port(addr),
        db,
        username,
        password,
        key: key.ok_or_else(|| bad("missing ?key=NAME"))?,
    })
}

fn with_default_port(addr: &str) -> String {
    let has_port = match addr.rsplit_once(':') {
        Some((h, p)) => !h.ends_with(':') && p.parse::<u16>().is_ok() && !addr.ends_with(']'),
        None => false,
    };
    if has_port {
        addr.to_string()
    } else {
        format!("{addr}:6379")
    }
}

impl Source {
    /// Reads `source` (a map with `type`, or a `file://` / `redis://` URL).
    pub(crate) fn parse(v: &Val<'_>) -> Result<Source, ConfigError> {
        let default_timeout = Duration::from_secs(10);
        if !v.is_map() {
            let url = v.as_str()?;
            if let Some(p) = url.strip_prefix("file://") {
                let p = p.split_once('?').map_or(p, |(a, _)| a);
                return Ok(Source {
                    kind: SourceKind::File(config_path(v, p)),
                    timeout: default_timeout,
                });
            }
            if url.starts_with("redis://") {
                return Ok(Source {
                    kind: SourceKind::Redis(redis_url(v, url)?),
                    timeout: default_timeout,
                });
            }
            return Err(v.err("a source URL is file://PATH or redis://HOST:PORT/DB?key=NAME"));
        }
        let mut m = v.map()?;
        let ty = m.required("type")?;
        let timeout = match m.get_any(&["timeout", "fetch_timeout"]) {
            Some(t) => {
                let d = px_yaml::values::duration(&t)?;
                if d.is_zero() {
                    return Err(t.err("timeout must be greater than 0"));
                }
                d
            }
            None => default_timeout,
        };
        let kind = match px_yaml::normalize_type(&ty.as_text()?).as_str() {
            "file" => {
                let p = m.required("path")?;
                if let Some(f) = m.get("format") {
                    let s = f.as_text()?;
                    if !matches!(s.to_ascii_lowercase().as_str(), "json" | "yaml" | "yml") {
                        return Err(f.err("format is json or yaml"));
                    }
                }
                SourceKind::File(config_path(&p, &p.as_text()?))
            }
            "redis" => {
                let addr = m
                    .get_any(&["addr", "address", "server"])
                    .ok_or_else(|| m.err("missing required key `addr`"))?;
                let key = m.required("key")?.as_text()?;
                if key.is_empty() {
                    return Err(v.err("key must not be empty"));
                }
                let db = match m.get_any(&["db", "database"]) {
                    Some(d) => d.as_int()?,
                    None => 0,
                };
                let username = m.get("username").map(|x| x.as_text()).transpose()?;
                let password = m.get("password").map(|x| x.as_text()).transpose()?;
                SourceKind::Redis(RedisConfig {
                    addr: with_default_port(&addr.as_text()?),
                    db,
                    username,
                    password,
                    key,
                })
            }
            "lua" | "python" | "http" => {
                return Err(ty.err(format!(
                    "source type `{}` is known to g3proxy but not implemented yet by this proxy",
                    ty.as_text()?
                )));
            }
            other => return Err(ty.err(format!("unknown source type `{other}` (file, redis)"))),
        };
        m.unimplemented(&["cache_file"])?;
        m.finish()?;
        Ok(Source { kind, timeout })
    }

    /// A name for logs and error positions.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            SourceKind::File(p) => p.display().to_string(),
            SourceKind::Redis(r) => format!("{r:?}"),
        }
    }

    /// Fetches the document text.
    pub(crate) async fn fetch(&self) -> Result<String, String> {
        match &self.kind {
            SourceKind::File(p) => {
                match tokio::time::timeout(self.timeout, tokio::fs::read_to_string(p)).await {
                    Ok(Ok(t)) => Ok(t),
                    Ok(Err(e)) => Err(format!("cannot read {}: {e}", p.display())),
                    Err(_) => Err(format!("reading {} timed out", p.display())),
                }
            }
            SourceKind::Redis(r) => redis::fetch(r, self.timeout).await,
        }
    }
}

/// Parses a dynamic user document: a list of users, all valid, names unique.
pub(crate) fn parse_users(text: &str, origin: &Path) -> Result<Vec<User>, ConfigError> {
    let node = px_yaml::load_str(text, origin)?;
    let root = Val::root(&node, "users");
    if root.is_null() {
        return Ok(Vec::new());
    }
    let mut users: Vec<User> = Vec::new();
    for item in root.seq()? {
        let u = User::parse(&item, UserKind::Dynamic)?;
        if users.iter().any(|x| x.name == u.name) {
            return Err(item.err(format!("duplicate user `{}`", u.name)));
        }
        users.push(u);
    }
    Ok(users)
}

/// Writes the cache file atomically (a temp file renamed over it).
pub(crate) async fn write_cache(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, text).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn source(yaml: &str) -> Result<Source, ConfigError> {
        let n = px_yaml::load_str(yaml, Path::new("/etc/g3proxy/main.yaml")).unwrap();
        Source::parse(&Val::root(&n, "source"))
    }

    #[test]
    fn forms() {
        let s = source("{type: file, path: users.json}").unwrap();
        assert_eq!(s.kind, SourceKind::File("/etc/g3proxy/users.json".into()));
        let s = source("\"file:///var/users.json\"").unwrap();
        assert_eq!(s.kind, SourceKind::File("/var/users.json".into()));
        let s = source("{type: redis, addr: 127.0.0.1, key: u, db: 2, password: p, timeout: 2s}")
            .unwrap();
        let SourceKind::Redis(r) = &s.kind else {
            panic!()
        };
        assert_eq!(
            (r.addr.as_str(), r.db, r.key.as_str()),
            ("127.0.0.1:6379", 2, "u")
        );
        assert_eq!(s.timeout, Duration::from_secs(2));
        let s = source("\"redis://alice:pw@10.0.0.1:6380/3?key=users\"").unwrap();
        let SourceKind::Redis(r) = &s.kind else {
            panic!()
        };
        assert_eq!(r.addr, "10.0.0.1:6380");
        assert_eq!(
            (r.db, r.username.as_deref(), r.password.as_deref()),
            (3, Some("alice"), Some("pw"))
        );
        assert!(!format!("{s:?}").contains("pw"), "no password in Debug");
        for bad in [
            "{type: file}",
            "{type: lua, script: a.lua}",
            "{type: redis, addr: x}",
            "{type: redis, addr: x, key: k, bogus: 1}",
            "\"redis://h:1/x?key=k\"",
            "\"redis://h:1\"",
            "\"ftp://x\"",
        ] {
            assert!(source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documents() {
        let p = Path::new("users.json");
        let users = parse_users(
            r#"[{"name": "a", "token": {"salt": "01", "md5": "e8cf2eb2b2d6ad5d15ce5e5a1e8b8ec3"}},
                {"name": "b", "token": null, "request_max_alive": 3}]"#,
            p,
        );
        let users = users.unwrap();
        assert_eq!(users.len(), 2);
        assert!(parse_users("", p).unwrap().is_empty());
        let e = parse_users(r#"[{"name": "a"}, {"name": "a"}]"#, p)
            .err()
            .unwrap();
        assert!(e.message.contains("duplicate"), "{e}");
        let e = parse_users(r#"[{"name": "a"}, {"name": "b", "bogus": 1}]"#, p)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("users.json:1:"), "{e}");
        assert!(parse_users("[{\"name\": ", p).is_err());
        assert!(parse_users("{\"name\": \"a\"}", p).is_err());
    }
}
