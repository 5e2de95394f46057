//! A minimal Redis client (RESP2 over TCP) for the `redis` user source: AUTH, SELECT, TYPE,
//! GET and HVALS, each bounded by the source's timeout.
//!
//! The key holds the dynamic users either as a string (a JSON list of users) or as a hash (one
//! JSON user object per field, for fleets that edit users one by one with `HSET`). A missing key
//! is an empty list.

use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest bulk string accepted (a user list beyond that is refused).
const MAX_BULK: usize = 64 << 20;
/// Most array items accepted.
const MAX_ITEMS: usize = 1 << 20;

/// Where and how to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisConfig {
    /// `host:port`.
    pub(crate) addr: String,
    /// Database number (`SELECT`).
    pub(crate) db: u32,
    /// ACL user name for `AUTH`.
    pub(crate) username: Option<String>,
    /// Password for `AUTH`.
    pub(crate) password: Option<String>,
    /// The key holding the users.
    pub(crate) key: String,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis://{}/{} key {}", self.addr, self.db, self.key)
    }
}

/// One RESP2 reply.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<String, String> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read failed: {e}"))?;
    if n == 0 {
        return Err("connection closed".into());
    }
    if !line.ends_with(b"\r\n") {
        return Err("malformed reply line".into());
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| "reply line is not UTF-8".into())
}

fn read_reply<'a, R: AsyncBufRead + Unpin + Send>(
    r: &'a mut R,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, String>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 4 {
            return Err("reply nested too deep".into());
        }
        let line = read_line(r).await?;
        let (kind, rest) = line.split_at_checked(1).ok_or("empty reply line")?;
        let num = || -> Result<i64, String> {
            rest.parse::<i64>()
                .map_err(|_| format!("bad length {rest:?}"))
        };
        match kind {
            "+" => Ok(Reply::Simple(rest.to_string())),
            "-" => Ok(Reply::Error(rest.to_string())),
            ":" => Ok(Reply::Int(num()?)),
            "$" => {
                let n = num()?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let n = usize::try_from(n).map_err(|_| "bad length")?;
                if n > MAX_BULK {
                    return Err(format!("value of {n} bytes is too large"));
                }
                let mut buf = vec![0u8; n + 2];
                r.read_exact(&mut buf)
                    .await
                    .map_err(|e| format!("read failed: {e}"))?;
                buf.truncate(n);
                Ok(Reply::Bulk(Some(buf)))
            }
            "*" => {
                let n = num()?;
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let n = usize::try_from(n).map_err(|_| "bad length")?;
                if n > MAX_ITEMS {
                    return Err(format!("array of {n} items is too large"));
                }
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(read_reply(r, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            other => Err(format!("unknown reply type {other:?}")),
        }
    })
}

struct Conn {
    io: BufReader<TcpStream>,
}

impl Conn {
    async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        self.io
            .get_mut()
            .write_all(&encode(args))
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        match read_reply(&mut self.io, 0).await? {
            Reply::Error(e) => Err(format!("{} failed: {e}", String::from_utf8_lossy(args[0]))),
            r => Ok(r),
        }
    }
}

async fn fetch_inner(cfg: &RedisConfig) -> Result<String, String> {
    let stream = TcpStream::connect(&cfg.addr)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", cfg.addr))?;
    let _ = stream.set_nodelay(true);
    let mut c = Conn {
        io: BufReader::new(stream),
    };
    if let Some(pw) = &cfg.password {
        match &cfg.username {
            Some(u) => c.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()]).await?,
            None => c.call(&[b"AUTH", pw.as_bytes()]).await?,
        };
    }
    if cfg.db != 0 {
        c.call(&[b"SELECT", cfg.db.to_string().as_bytes()]).await?;
    }
    let key = cfg.key.as_bytes();
    let ty = match c.call(&[b"TYPE", key]).await? {
        Reply::Simple(t) => t,
        other => return Err(format!("unexpected TYPE reply {other:?}")),
    };
    let text = match ty.as_str() {
        "none" => "[]".to_string(),
        "string" => match c.call(&[b"GET", key]).await? {
            Reply::Bulk(Some(v)) => {
                String::from_utf8(v).map_err(|_| "the value is not UTF-8".to_string())?
            }
            Reply::Bulk(None) => "[]".to_string(),
            other => return Err(format!("unexpected GET reply {other:?}")),
        },
        "hash" => match c.call(&[b"HVALS", key]).await? {
            Reply::Array(Some(items)) => {
                let mut parts = Vec::with_capacity(items.len());
                for it in items {
                    match it {
                        Reply::Bulk(Some(v)) => parts.push(
                            String::from_utf8(v).map_err(|_| "a value is not UTF-8".to_string())?,
                        ),
                        other => return Err(format!("unexpected HVALS item {other:?}")),
                    }
                }
                format!("[{}]", parts.join(",\n"))
            }
            other => return Err(format!("unexpected HVALS reply {other:?}")),
        },
        other => {
            return Err(format!(
                "key {} is a {other}, not a string or a hash",
                cfg.key
            ));
        }
    };
    let _ = c.call(&[b"QUIT"]).await;
    Ok(text)
}

/// Reads the user document from Redis within `timeout`.
pub(crate) async fn fetch(cfg: &RedisConfig, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, fetch_inner(cfg)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from {} within {timeout:?}", cfg.addr)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, String> {
        let mut r = BufReader::new(bytes);
        read_reply(&mut r, 0).await
    }

    #[tokio::test]
    async fn resp_replies() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Simple("OK".into()));
        assert_eq!(
            parse(b"-ERR x\r\n").await.unwrap(),
            Reply::Error("ERR x".into())
        );
        assert_eq!(parse(b":42\r\n").await.unwrap(), Reply::Int(42));
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"$5\r\na\r\nbc\r\n").await.unwrap(),
            Reply::Bulk(Some(b"a\r\nbc".to_vec()))
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n:1\r\n").await.unwrap(),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Int(1)]))
        );
        assert!(parse(b"$5\r\nab").await.is_err());
        assert!(parse(b"?x\r\n").await.is_err());
        assert!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")
                .await
                .is_err()
        );
        assert!(
            parse(format!("${}\r\n", MAX_BULK + 1).as_bytes())
                .await
                .is_err()
        );
    }

    #[test]
    fn command_encoding() {
        assert_eq!(encode(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }

    #[tokio::test]
    async fn against_a_fake_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut got = Vec::new();
            // AUTH, TYPE, HVALS, QUIT
            for reply in [
                &b"+OK\r\n"[..],
                b"+hash\r\n",
                b"*2\r\n$12\r\n{\"name\":\"a\"}\r\n$12\r\n{\"name\":\"b\"}\r\n",
                b"+OK\r\n",
            ] {
                let r = read_reply(&mut s, 0).await.unwrap();
                got.push(r);
                s.get_mut().write_all(reply).await.unwrap();
            }
        });
        let cfg = RedisConfig {
            addr: addr.to_string(),
            db: 0,
            username: None,
            password: Some("pw".into()),
            key: "users".into(),
        };
        let text = fetch(&cfg, Duration::from_secs(5)).await.unwrap();
        assert_eq!(text, "[{\"name\":\"a\"},\n{\"name\":\"b\"}]");
        let dead = RedisConfig {
            addr: "127.0.0.1:9".into(),
            ..cfg
        };
        assert!(fetch(&dead, Duration::from_secs(5)).await.is_err());
    }
}
