//! Running real client programs with a hard time limit.
//!
//! - [`run`]: any `Command`, stdout and stderr drained by threads (a 16 MiB body on
//!   stdout cannot block the child), killed when the limit passes.
//! - [`curl`]: curl with `-sS --max-time` always set.
//! - [`curl_http`]: curl writing status, headers and body apart, for checking responses.
//! - [`python`]: a python snippet run by `PX_PYTHON` (the venv that `scripts/test.sh`
//!   creates with requests and PySocks), else `<workspace>/.venv/bin/python`, else `python3`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or killed) command left.
#[derive(Debug)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// A short description for assertion messages.
    pub fn describe(&self) -> String {
        let out = self.stdout_str();
        let out: String = out.chars().take(2000).collect();
        format!(
            "status={:?} timed_out={} elapsed={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.timed_out, self.elapsed, out, self.stderr
        )
    }
}

/// Run `cmd` with stdin closed, killing it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot start {:?}: {e}", cmd.get_program()),
    };
    let mut so = child.stdout.take().expect("stdout piped");
    let mut se = child.stderr.take().expect("stderr piped");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = start + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Output {
        status,
        stdout,
        stderr,
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// Seconds curl may take for one call (`--max-time`); the process is killed 10 s later.
pub const CURL_MAX_TIME: u64 = 20;

fn curl_command() -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", &CURL_MAX_TIME.to_string()]);
    // never pick up a proxy from the environment
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        c.env_remove(v);
    }
    c
}

/// Run curl with `args` (after `-sS --max-time 20`).
pub fn curl(args: &[&str]) -> Output {
    let mut c = curl_command();
    c.args(args);
    run(&mut c, Duration::from_secs(CURL_MAX_TIME + 10))
}

/// A response as curl saw it.
#[derive(Debug)]
pub struct CurlResponse {
    /// `%{http_code}`: the last response's status, 0 if none. When a proxy refused a
    /// CONNECT (`--proxytunnel`), the proxy's status (curl's `%{http_connect}`).
    pub code: u16,
    /// `%{http_connect}`: the proxy's answer to CONNECT, 0 if none was sent.
    pub connect_code: u16,
    /// Every head curl received (`-D`), proxy CONNECT replies included.
    pub headers: String,
    pub body: Vec<u8>,
    pub out: Output,
}

impl CurlResponse {
    /// The value of `name` in the last head curl received.
    pub fn header(&self, name: &str) -> Option<String> {
        let last = self
            .headers
            .split("\r\n\r\n")
            .filter(|h| !h.trim().is_empty())
            .last()?;
        last.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn describe(&self) -> String {
        format!(
            "code={} headers:\n{}\nbody ({} bytes): {:?}\n{}",
            self.code,
            self.headers,
            self.body.len(),
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)]),
            self.out.describe()
        )
    }
}

/// Run curl on one URL, keeping status code, headers and body apart.
pub fn curl_http(args: &[&str]) -> CurlResponse {
    let dir = tempfile::tempdir().expect("tempdir");
    let hdr = dir.path().join("headers");
    let body = dir.path().join("body");
    let mut c = curl_command();
    c.arg("-D")
        .arg(&hdr)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code} %{http_connect}"])
        .args(args);
    let out = run(&mut c, Duration::from_secs(CURL_MAX_TIME + 10));
    let w = out.stdout_str();
    let mut it = w.split_whitespace().map(|v| v.parse::<u16>().unwrap_or(0));
    let mut code = it.next().unwrap_or(0);
    let connect_code = it.next().unwrap_or(0);
    if code == 0 && connect_code != 0 && connect_code / 100 != 2 {
        code = connect_code;
    }
    CurlResponse {
        code,
        connect_code,
        headers: std::fs::read_to_string(&hdr).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
        out,
    }
}

/// The python interpreter for client snippets.
pub fn python_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PX_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = crate::workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Run a python snippet (`python -c SCRIPT ARGS...`) with a time limit.
pub fn python(script: &str, args: &[String], timeout: Duration) -> Output {
    let mut c = Command::new(python_bin());
    c.arg("-c").arg(script).args(args);
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(v);
    }
    c.env("PYTHONDONTWRITEBYTECODE", "1");
    run(&mut c, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_kills_on_timeout() {
        let out = run(Command::new("sleep").arg("30"), Duration::from_millis(300));
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(5));
    }

    #[test]
    fn curl_against_origin() {
        let o = crate::origin::HttpOrigin::start();
        let r = curl_http(&[&o.url("/hello")]);
        assert_eq!(r.code, 200, "{}", r.describe());
        assert_eq!(r.body, b"hello world\n");
        assert_eq!(r.header("x-conn-id").as_deref(), Some("1"));
        let out = curl(&[&o.url("/pattern/300000")]);
        assert!(out.success(), "{}", out.describe());
        crate::pattern::check(&out.stdout, 300_000).unwrap();
    }

    #[test]
    fn python_runs() {
        let out = python(
            "import sys; print('py', sys.argv[1])",
            &["x".to_string()],
            Duration::from_secs(20),
        );
        assert!(out.success(), "{}", out.describe());
        assert_eq!(out.stdout_str().trim(), "py x");
    }
}
