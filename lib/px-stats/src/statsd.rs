//! The StatsD output: a thread of its own that every `emit_interval` reads the
//! registry ([`crate::collect::Collector`]) and sends the samples with cadence,
//! packed into datagrams, to a UDP address or a Unix datagram socket.
//!
//! Every metric is named `PREFIX.NAME` and tagged DogStatsD-style
//! (`|#daemon_group:G,stat_id:N,server:http`). Sending never blocks a proxy
//! task: the thread is not a runtime worker, the socket is non-blocking, and a
//! failed send is logged at most once a minute.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::collect::{Collector, Sample, SampleKind};
use crate::names::TAG_DAEMON_GROUP;
use crate::registry::StatsRegistry;
use cadence::{
    BufferedUdpMetricSink, BufferedUnixMetricSink, Counted, Gauged, Metric, MetricBuilder,
    MetricError, StatsdClient,
};

/// The default StatsD address (g3proxy's).
pub const DEFAULT_UDP_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8125);
/// The default metric prefix.
pub const DEFAULT_PREFIX: &str = "g3proxy";
/// The default emit interval.
pub const DEFAULT_EMIT_INTERVAL: Duration = Duration::from_millis(200);

/// Largest UDP datagram the sink packs metrics into (fits a 1500-byte MTU).
const UDP_PACKET_SIZE: usize = 1432;
/// Largest Unix datagram the sink packs metrics into.
const UNIX_PACKET_SIZE: usize = 4096;

/// Where metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdTarget {
    /// A StatsD server on UDP.
    Udp {
        /// Its address.
        addr: SocketAddr,
        /// The local address to send from.
        bind_ip: Option<IpAddr>,
    },
    /// A StatsD server on a Unix datagram socket.
    Unix(PathBuf),
}

impl Default for StatsdTarget {
    fn default() -> Self {
        StatsdTarget::Udp {
            addr: DEFAULT_UDP_ADDR,
            bind_ip: None,
        }
    }
}

/// The `stat:` section, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdConfig {
    /// Where metrics go.
    pub target: StatsdTarget,
    /// Prepended to every metric name, with a dot (empty: none).
    pub prefix: String,
    /// How often every object is read and sent.
    pub emit_interval: Duration,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        StatsdConfig {
            target: StatsdTarget::default(),
            prefix: DEFAULT_PREFIX.to_string(),
            emit_interval: DEFAULT_EMIT_INTERVAL,
        }
    }
}

/// Builds the cadence client for a config, tagged with the daemon group.
pub fn build_client(config: &StatsdConfig, daemon_group: &str) -> io::Result<StatsdClient> {
    let builder = match &config.target {
        StatsdTarget::Udp { addr, bind_ip } => {
            let local = match (bind_ip, addr) {
                (Some(ip), _) => SocketAddr::new(*ip, 0),
                (None, SocketAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
                (None, SocketAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
            };
            let socket = UdpSocket::bind(local)?;
            socket.set_nonblocking(true)?;
            let sink = BufferedUdpMetricSink::with_capacity(*addr, socket, UDP_PACKET_SIZE)
                .map_err(io::Error::other)?;
            StatsdClient::builder(&config.prefix, sink)
        }
        StatsdTarget::Unix(path) => {
            let socket = UnixDatagram::unbound()?;
            socket.set_nonblocking(true)?;
            let sink = BufferedUnixMetricSink::with_capacity(path, socket, UNIX_PACKET_SIZE);
            StatsdClient::builder(&config.prefix, sink)
        }
    };
    // report a failing sink once a minute, not once per metric
    let started = Instant::now();
    let last_minute = AtomicU64::new(u64::MAX);
    Ok(builder
        .with_tag(TAG_DAEMON_GROUP, daemon_group)
        .with_error_handler(move |e: MetricError| {
            let minute = started.elapsed().as_secs() / 60;
            if last_minute.swap(minute, Ordering::Relaxed) != minute {
                log::warn!("sending metrics failed: {e}");
            }
        })
        .build())
}

fn send_one<'a, T: Metric + From<String>>(mut b: MetricBuilder<'a, 'a, T>, sample: &'a Sample) {
    for (k, v) in &sample.tags {
        b = b.with_tag(k, v);
    }
    b.send();
}

/// Sends samples with a client and flushes its buffer.
pub fn send_samples(client: &StatsdClient, samples: &[Sample]) {
    for s in samples {
        match s.kind {
            SampleKind::Counter => send_one(client.count_with_tags(s.name, s.value), s),
            SampleKind::Gauge => send_one(client.gauge_with_tags(s.name, s.value), s),
        }
    }
    if let Err(e) = client.flush() {
        log::debug!("flushing metrics failed: {e}");
    }
}

/// The running emitter thread; dropping it sends one last round and stops it.
#[derive(Debug)]
pub struct StatsdEmitter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StatsdEmitter {
    /// Starts the thread (`stat-emit`); fails when the socket cannot be made.
    pub fn start(
        config: &StatsdConfig,
        registry: StatsRegistry,
        daemon_group: &str,
    ) -> io::Result<StatsdEmitter> {
        let client = build_client(config, daemon_group)?;
        let interval = config.emit_interval.max(Duration::from_millis(1));
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stat-emit".to_string())
            .spawn(move || {
                let mut collector = Collector::default();
                loop {
                    let start = Instant::now();
                    let samples = collector.collect(&registry);
                    send_samples(&client, &samples);
                    let wait = interval.saturating_sub(start.elapsed());
                    match rx.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => {
                            let samples = collector.collect(&registry);
                            send_samples(&client, &samples);
                            break;
                        }
                    }
                }
            })?;
        Ok(StatsdEmitter {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for StatsdEmitter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn recv_all(sock: &UdpSocket, want: &str) -> String {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut text = String::new();
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline && !text.contains(want) {
            if let Ok(n) = sock.recv(&mut buf) {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                text.push('\n');
            }
        }
        text
    }

    #[test]
    fn udp_lines_have_prefix_and_tags() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = StatsdConfig {
            target: StatsdTarget::Udp {
                addr: sock.local_addr().unwrap(),
                bind_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            },
            prefix: "g3proxy".into(),
            emit_interval: Duration::from_millis(20),
        };
        let registry = StatsRegistry::new();
        let server = registry.server("http");
        let _task = server.task();
        let emitter = StatsdEmitter::start(&config, registry.clone(), "grp").unwrap();
        let text = recv_all(&sock, "g3proxy.server.task.alive:1|g");
        drop(emitter);
        let line = text
            .lines()
            .find(|l| l.starts_with("g3proxy.server.task.total:1|c"))
            .unwrap_or_else(|| panic!("no task.total in {text}"));
        assert!(line.contains("daemon_group:grp"), "{line}");
        assert!(line.contains("server:http"), "{line}");
        assert!(line.contains("stat_id:"), "{line}");
        assert!(text.contains("g3proxy.server.task.alive:1|g"), "{text}");
    }

    #[test]
    fn unix_datagram_target() {
        let dir = std::env::temp_dir().join(format!("px-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("statsd.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let config = StatsdConfig {
            target: StatsdTarget::Unix(path.clone()),
            prefix: String::new(),
            emit_interval: Duration::from_millis(20),
        };
        let registry = StatsRegistry::new();
        registry.escaper("direct").add_attempt();
        let _keep = registry.escaper("direct");
        let emitter = StatsdEmitter::start(&config, registry, "").unwrap();
        let mut buf = [0u8; 8192];
        let n = sock.recv(&mut buf).unwrap();
        drop(emitter);
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(
            text.contains("escaper.connection.attempt:1|c|#daemon_group:,"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
