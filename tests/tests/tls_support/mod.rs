//! Helpers of the TLS and port-server tests (tls_servers.rs, port_servers.rs, sni_proxy.rs):
//!
//! - [`Pki`]: CAs and leaf certificates made by the `openssl` CLI at test time, in a temp dir.
//! - [`Proc`]: a long-running helper process (openssl s_server, haproxy) killed on drop.
//! - [`s_server_rev`]: `openssl s_server -rev`, a TLS echo that reverses each line.
//! - [`connect_from`]: a TCP connection from a chosen loopback source address.
//! - [`echo_via`]: one write and the echo read back through a proxy port.
// Each test file uses a different part of this module.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use px_e2e::cmd::{self, Output};
use px_e2e::net;

/// Certificates for one test, made with the openssl CLI.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str], cwd: &Path) {
    let out = cmd::run(
        Command::new("openssl").args(args).current_dir(cwd),
        Duration::from_secs(30),
    );
    assert!(out.success(), "openssl {args:?}: {}", out.describe());
}

impl Pki {
    pub(crate) fn new() -> Pki {
        Pki {
            dir: tempfile::Builder::new()
                .prefix("px-pki-")
                .tempdir()
                .unwrap(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The absolute path of a file in the PKI dir, as a string for YAML.
    pub(crate) fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// A self-signed CA: `<name>-ca.crt` / `<name>-ca.key`.
    pub(crate) fn ca(&self, name: &str) -> &Pki {
        let crt = format!("{name}-ca.crt");
        let key = format!("{name}-ca.key");
        let subj = format!("/CN={name} test CA");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &crt,
                "-subj",
                &subj,
                "-days",
                "2",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            self.dir(),
        );
        self
    }

    /// A leaf `<file>.crt` / `<file>.key` issued by CA `ca`, for these DNS names and IPs,
    /// usable as a server and a client certificate.
    pub(crate) fn leaf(&self, ca: &str, file: &str, names: &[&str]) -> &Pki {
        let sans: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        let ext = format!("{file}.ext");
        std::fs::write(
            self.dir().join(&ext),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth,clientAuth\n",
                sans.join(",")
            ),
        )
        .unwrap();
        let subj = format!("/CN={}", names.first().copied().unwrap_or(file));
        let (key, csr, crt) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.crt"),
        );
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
            ],
            self.dir(),
        );
        let ca_crt = format!("{ca}-ca.crt");
        let ca_key = format!("{ca}-ca.key");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
            self.dir(),
        );
        self
    }
}

/// A helper process, killed on drop; its output goes to a log file shown on failure.
pub(crate) struct Proc {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts `cmd` with output to a log; `cwd` is a fresh temp dir unless the command set one.
    pub(crate) fn spawn(mut cmd: Command) -> Proc {
        let dir = tempfile::Builder::new()
            .prefix("px-proc-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("out.log");
        let f = std::fs::File::create(&log).unwrap();
        let f2 = f.try_clone().unwrap();
        if cmd.get_current_dir().is_none() {
            cmd.current_dir(dir.path());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        Proc {
            child,
            log,
            _dir: dir,
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until `addr` accepts TCP connections.
    pub(crate) fn wait_addr(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "helper exited with {st} before {addr} accepted:\n{}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "helper did not accept on {addr}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- helper log ---\n{}", self.log());
        }
    }
}

/// `openssl s_server -rev` on `addr` with a server certificate; `verify_ca`: require a client
/// certificate from that CA file.
pub(crate) fn s_server_rev(
    pki: &Pki,
    addr: SocketAddr,
    cert: &str,
    verify_ca: Option<&str>,
) -> Proc {
    let mut c = Command::new("openssl");
    c.args(["s_server", "-quiet", "-rev", "-accept"])
        .arg(addr.to_string())
        .args(["-cert", &pki.path(&format!("{cert}.crt"))])
        .args(["-key", &pki.path(&format!("{cert}.key"))]);
    if let Some(ca) = verify_ca {
        c.args([
            "-Verify",
            "2",
            "-verify_return_error",
            "-CAfile",
            &pki.path(ca),
        ]);
    }
    let mut p = Proc::spawn(c);
    p.wait_addr(addr);
    p
}

/// A TCP connection to `127.0.0.1:port` from `src` (any 127.x.y.z).
pub(crate) fn connect_from(src: IpAddr, port: u16) -> TcpStream {
    let dst = net::local(port);
    let s = px_e2e::runtime()
        .block_on(async move {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(src, 0))?;
            let s = tokio::time::timeout(Duration::from_secs(5), sock.connect(dst))
                .await
                .map_err(|_| std::io::Error::other("connect timed out"))??;
            s.into_std()
        })
        .unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"));
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Writes `data` on `s`, half-closes, and reads everything back until EOF.
pub(crate) fn roundtrip(mut s: TcpStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(data)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// One echo exchange from `src` through `127.0.0.1:port`: the bytes that came back.
pub(crate) fn echo_via(src: IpAddr, port: u16, data: &[u8]) -> Vec<u8> {
    roundtrip(connect_from(src, port), data).unwrap_or_else(|e| panic!("echo via {port}: {e}"))
}

/// Like [`echo_via`], but a reset or an early close is an empty reply (a refused connection).
pub(crate) fn refused_via(src: IpAddr, port: u16, data: &[u8]) -> Vec<u8> {
    roundtrip(connect_from(src, port), data).unwrap_or_default()
}

/// Connection counts of the echoes.
pub(crate) fn counts(echoes: &[px_e2e::echo::TcpEcho]) -> Vec<usize> {
    echoes.iter().map(|e| e.connections()).collect()
}

/// Waits until the connections the daemon made for the harness's readiness probe reached the
/// upstreams, so counts taken afterwards see only the test's own connections.
pub(crate) fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// `127.0.0.N`
pub(crate) fn lo(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// Runs `openssl s_client` with `args` and `input` on stdin (then waits `linger` before closing
/// stdin, so replies can arrive).
pub(crate) fn s_client(args: &[&str], input: &[u8], linger: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::write(&inp, input).unwrap();
    let script = format!(
        "(cat {} ; sleep {}) | openssl s_client {} 2>&1",
        inp.display(),
        linger.as_secs_f64(),
        args.join(" ")
    );
    cmd::run(
        Command::new("sh").arg("-c").arg(script),
        Duration::from_secs(30),
    )
}

/// Fails with the output when `haystack` lacks `needle`.
pub(crate) fn assert_has(out: &Output, needle: &str) {
    let all = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(
        all.contains(needle),
        "expected {needle:?} in:\n{}",
        out.describe()
    );
}

/// The top of every config of these tests: log to stdout, a c-ares resolver (on `dns_port`, or
/// a port where nothing answers), and a `direct_fixed` escaper named `default` that may reach
/// all of 127.0.0.0/8.
pub(crate) fn preamble(dns_port: Option<u16>) -> String {
    format!(
        "---\nlog: stdout\n\nresolver:\n  - name: default\n    type: c-ares\n    server: 127.0.0.1:{}\n\n\
         escaper:\n  - name: default\n    type: direct_fixed\n    resolver: default\n    \
         egress_network_filter: {{default: allow, allow: 127.0.0.0/8}}\n\n",
        dns_port.unwrap_or(9)
    )
}
