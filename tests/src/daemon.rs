//! The real `g3proxy` binary as a child process.
//!
//! [`Daemon::start`] writes the YAML into a fresh temp dir, runs
//! `g3proxy -c <dir>/g3proxy.yaml -G <unique group>` with stdout and stderr going to files
//! in that dir, and waits (bounded) until the given TCP ports accept. On drop it sends
//! SIGTERM, then SIGKILL if the process is still there after 3 s; when the test is
//! failing it prints the daemon's logs so the failure can be understood.
//!
//! The binary is `$PX_G3PROXY_BIN`, else `<workspace>/target/debug/g3proxy`. A missing
//! binary fails the test with a message saying how to build it; it never skips.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::WAIT;

/// Path to the g3proxy binary under test; panics with a clear message when missing.
pub fn g3proxy_bin() -> PathBuf {
    let p = match std::env::var_os("PX_G3PROXY_BIN").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => crate::workspace_root().join("target/debug/g3proxy"),
    };
    if !p.is_file() {
        panic!(
            "the g3proxy binary is missing at {}: build it with `cargo build --workspace --bins` \
             (scripts/test.sh does) or point PX_G3PROXY_BIN at it",
            p.display()
        );
    }
    p
}

/// Replace every `@NAME@` in `template` with its value; panics if a placeholder is left.
pub fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    if let Some(start) = s.find('@') {
        let rest = &s[start + 1..];
        if let Some(end) = rest.find('@') {
            let name = &rest[..end];
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            {
                panic!("placeholder @{name}@ left unfilled in config:\n{s}");
            }
        }
    }
    s
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn unique_group() -> String {
    format!(
        "px-e2e-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, sig: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is
    // that of our own child, which is not reaped before we stop signalling it.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Signals by name, for [`Daemon::signal`].
pub fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "KILL" => libc::SIGKILL,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        other => panic!("unknown signal {other}"),
    }
}

/// A running g3proxy.
pub struct Daemon {
    child: Option<Child>,
    exit: Option<ExitStatus>,
    dir: TempDir,
    config: PathBuf,
    group: String,
}

impl Daemon {
    /// Start on `yaml` (written to `g3proxy.yaml`), wait until every port in `ports`
    /// accepts TCP connections. Panics with the daemon's logs if it does not come up.
    pub fn start(yaml: &str, ports: &[u16]) -> Daemon {
        Self::start_files(&[("g3proxy.yaml", yaml)], "g3proxy.yaml", ports)
    }

    /// Start on several files (paths relative to the temp dir, folders created as
    /// needed); `main` is the one given to `-c` (a file, or a folder).
    pub fn start_files(files: &[(&str, &str)], main: &str, ports: &[u16]) -> Daemon {
        match Self::try_start_files(files, main, ports) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Daemon::start_files`], but an error (with the logs) instead of a panic.
    pub fn try_start_files(
        files: &[(&str, &str)],
        main: &str,
        ports: &[u16],
    ) -> Result<Daemon, String> {
        let bin = g3proxy_bin();
        let dir = tempfile::Builder::new()
            .prefix("px-e2e-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        for (name, text) in files {
            let p = dir.path().join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("mkdir: {e}"))?;
            }
            std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
        }
        let config = dir.path().join(main);
        let group = unique_group();
        let out = File::create(dir.path().join("stdout.log")).map_err(|e| e.to_string())?;
        let err = File::create(dir.path().join("stderr.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("-G")
            .arg(&group)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut d = Daemon {
            child: Some(child),
            exit: None,
            dir,
            config,
            group,
        };
        let deadline = Instant::now() + WAIT;
        for &port in ports {
            loop {
                if let Some(st) = d.try_exit() {
                    return Err(format!(
                        "g3proxy exited with {st} before port {port} accepted\n{}",
                        d.describe()
                    ));
                }
                if crate::net::port_accepts(port) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "g3proxy did not accept on 127.0.0.1:{port} within {WAIT:?}\n{}",
                        d.describe()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(d)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Send a signal by name (`"TERM"`, `"INT"`, `"HUP"`, `"KILL"`...).
    pub fn signal(&mut self, name: &str) {
        if self.try_exit().is_some() {
            panic!(
                "cannot send SIG{name}: g3proxy already exited\n{}",
                self.describe()
            );
        }
        send_signal(self.pid(), signal_number(name));
    }

    /// The exit status if the process has exited (it is reaped once).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            self.exit = Some(st);
        }
        self.exit
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// stdout and stderr together.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Config and logs, for failure messages.
    pub fn describe(&self) -> String {
        let cfg = if self.config.is_dir() {
            let mut all = String::new();
            let mut stack = vec![self.config.clone()];
            while let Some(dir) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&dir)
                    .map(|r| r.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                entries.sort();
                for p in entries {
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                        all.push_str(&format!(
                            "# {}\n{}\n",
                            p.display(),
                            std::fs::read_to_string(&p).unwrap_or_default()
                        ));
                    }
                }
            }
            all
        } else {
            std::fs::read_to_string(&self.config).unwrap_or_default()
        };
        let tail = |s: String| -> String {
            let lines: Vec<&str> = s.lines().collect();
            let from = lines.len().saturating_sub(60);
            lines[from..].join("\n")
        };
        format!(
            "--- g3proxy config ({}) ---\n{}\n--- g3proxy stdout (tail) ---\n{}\n--- g3proxy stderr (tail) ---\n{}",
            self.config.display(),
            cfg,
            tail(self.stdout()),
            tail(self.stderr())
        )
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.try_exit() {
            return Some(st);
        }
        send_signal(self.pid(), libc::SIGTERM);
        if let Some(st) = self.wait_exit(grace) {
            return Some(st);
        }
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
        self.wait_exit(Duration::from_secs(5))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.stop(Duration::from_secs(3));
        if panicking {
            eprintln!("{}", self.describe());
        }
    }
}

/// Run `g3proxy -t -c PATH`: the exit status and stderr (stdout appended after it).
pub fn check_config(path: &Path) -> (ExitStatus, String) {
    let bin = g3proxy_bin();
    let out = crate::cmd::run(
        Command::new(&bin).arg("-t").arg("-c").arg(path),
        Duration::from_secs(30),
    );
    let Some(status) = out.status else {
        panic!(
            "g3proxy -t -c {} did not finish: {}",
            path.display(),
            out.describe()
        );
    };
    if out.timed_out {
        panic!(
            "g3proxy -t -c {} timed out: {}",
            path.display(),
            out.describe()
        );
    }
    let mut text = out.stderr.clone();
    if !out.stdout.is_empty() {
        text.push_str(&out.stdout_str());
    }
    (status, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_and_checks() {
        let s = fill(
            "a: @X@\nb: @Y_2@\nmail: a@b",
            &[("X", "1".into()), ("Y_2", "two".into())],
        );
        assert_eq!(s, "a: 1\nb: two\nmail: a@b");
    }

    #[test]
    #[should_panic(expected = "left unfilled")]
    fn fill_panics_on_leftover() {
        fill("a: @X@", &[]);
    }

    #[test]
    fn signals_by_name() {
        assert_eq!(signal_number("TERM"), libc::SIGTERM);
        assert_eq!(signal_number("SIGINT"), libc::SIGINT);
    }
}
