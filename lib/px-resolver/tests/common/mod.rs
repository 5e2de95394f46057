//! Test helpers: a dnsmasq on a loopback port, silent and closed "servers",
//! a module lookup, and building resolvers from YAML text.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use px_core::{Auditor, Escaper, Handle, ModuleLookup, Resolver, Server, UserGroup};
use px_yaml::{ConfigError, Val};

/// What the test dnsmasq answers.
pub(crate) const A_NAME: &str = "test.local";
/// The A record of [`A_NAME`].
pub(crate) const A_ADDR: &str = "127.0.0.7";
/// A name with an AAAA record.
pub(crate) const AAAA_NAME: &str = "v6.test.local";
/// The AAAA record of [`AAAA_NAME`].
pub(crate) const AAAA_ADDR: &str = "::7";
/// A name with [`BIG_COUNT`] A records: too large for UDP, so fetched over TCP.
pub(crate) const BIG_NAME: &str = "big.test";
/// How many A records [`BIG_NAME`] has (10.1.0.1 and up).
pub(crate) const BIG_COUNT: usize = 120;
/// A name dnsmasq answers NXDOMAIN for.
pub(crate) const NX_NAME: &str = "missing.nx.test";

/// A dnsmasq on 127.0.0.1, killed when dropped.
pub(crate) struct Dnsmasq {
    child: Option<Child>,
    /// Its UDP and TCP address.
    pub(crate) addr: SocketAddr,
}

fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Dnsmasq {
    /// Starts dnsmasq and waits until it accepts TCP connections.
    pub(crate) fn start() -> Dnsmasq {
        for _ in 0..5 {
            let port = free_port();
            let big = (1..=BIG_COUNT).map(|i| format!("--address=/{BIG_NAME}/10.1.0.{i}"));
            let mut child = Command::new("dnsmasq")
                .args(big)
                .args([
                    "--no-daemon",
                    &format!("--port={port}"),
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    "--address=/test.local/127.0.0.7",
                    "--address=/v6.test.local/::7",
                    "--address=/nx.test/",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq must be installed (apt-get install -y dnsmasq-base)");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                if TcpStream::connect(addr).is_ok() {
                    return Dnsmasq {
                        child: Some(child),
                        addr,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start");
    }

    /// Kills it now; its port is then closed.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A "server" that takes queries (UDP and TCP) and never answers.
pub(crate) struct Silent {
    _udp: UdpSocket,
    _tcp: TcpListener,
    /// Its address.
    pub(crate) addr: SocketAddr,
}

impl Silent {
    /// Binds a silent server on a loopback port.
    pub(crate) fn start() -> Silent {
        loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr) {
                return Silent {
                    _udp: udp,
                    _tcp: tcp,
                    addr,
                };
            }
        }
    }
}

/// A loopback address nothing listens on (queries get "port unreachable").
pub(crate) fn closed_addr() -> SocketAddr {
    let port = free_port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Resolvers by name, for `fail_over`.
#[derive(Default)]
pub(crate) struct Lookup {
    resolvers: Mutex<HashMap<String, Arc<Handle<dyn Resolver>>>>,
}

impl Lookup {
    /// Registers a resolver; returns its handle.
    pub(crate) fn add(&self, name: &str, r: Arc<dyn Resolver>) -> Arc<Handle<dyn Resolver>> {
        let h = Arc::new(Handle::new(name, r));
        self.resolvers
            .lock()
            .unwrap()
            .insert(name.to_string(), Arc::clone(&h));
        h
    }
}

impl ModuleLookup for Lookup {
    fn resolver(&self, name: &str) -> Result<Arc<Handle<dyn Resolver>>, String> {
        self.resolvers
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no resolver named `{name}`"))
    }
    fn escaper(&self, _: &str) -> Result<Arc<Handle<dyn Escaper>>, String> {
        Err("no escapers here".into())
    }
    fn user_group(&self, _: &str) -> Result<Arc<Handle<dyn UserGroup>>, String> {
        Err("no user groups here".into())
    }
    fn auditor(&self, _: &str) -> Result<Arc<Handle<dyn Auditor>>, String> {
        Err("no auditors here".into())
    }
    fn server(&self, _: &str) -> Result<Arc<Handle<dyn Server>>, String> {
        Err("no servers here".into())
    }
}

/// Builds one resolver from a YAML map with `name` and `type`, as the daemon does.
pub(crate) fn try_build(yaml: &str, lookup: &Lookup) -> Result<Arc<dyn Resolver>, ConfigError> {
    let node = px_yaml::load_str(yaml, Path::new("resolver.yaml")).unwrap();
    let mut map = Val::root(&node, "resolver").map().unwrap();
    let name = map.required("name").unwrap().as_text().unwrap();
    let ty = map.required("type").unwrap().as_text().unwrap();
    let node2 = node.clone();
    let mut map = Val::root(&node2, &format!("resolver[{name}]"))
        .map()
        .unwrap();
    map.get("name");
    map.get("type");
    let factory = px_resolver::factory(&ty).unwrap_or_else(|| panic!("no type {ty}"));
    factory(&name, map, lookup)
}

/// [`try_build`] that must succeed.
pub(crate) fn build(yaml: &str, lookup: &Lookup) -> Arc<dyn Resolver> {
    match try_build(yaml, lookup) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}
