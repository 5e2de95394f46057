//! Metric names and tag keys, as g3proxy's metrics reference has them
//! (`doc/metrics.md` lists every one with its type and tags).

/// Tag: the daemon group (`-G`), on every metric.
pub const TAG_DAEMON_GROUP: &str = "daemon_group";
/// Tag: a machine-local id of the stats object, for deduplication (drop it in StatsD).
pub const TAG_STAT_ID: &str = "stat_id";
/// Tag: the server name.
pub const TAG_SERVER: &str = "server";
/// Tag: the escaper name.
pub const TAG_ESCAPER: &str = "escaper";
/// Tag: the resolver name.
pub const TAG_RESOLVER: &str = "resolver";
/// Tag: the user group name.
pub const TAG_USER_GROUP: &str = "user_group";
/// Tag: the user name.
pub const TAG_USER: &str = "user";
/// Tag: the user type (`Static`, `Dynamic`, `Anonymous`).
pub const TAG_USER_TYPE: &str = "user_type";
/// Tag: the transport of traffic metrics (`tcp`, `udp`).
pub const TAG_TRANSPORT: &str = "transport";
/// Tag: the record type of resolver queries (`A`, `AAAA`).
pub const TAG_RR_TYPE: &str = "rr_type";
/// Tag: the data path of process-wide relay and kTLS metrics.
pub const TAG_PATH: &str = "path";

/// `transport` value for streams.
pub const TRANSPORT_TCP: &str = "tcp";
/// `transport` value for datagrams.
pub const TRANSPORT_UDP: &str = "udp";

/// `path` value of `relay.path.total`: the userspace copy loop.
pub const PATH_USERSPACE: &str = "userspace";
/// `path` value of `relay.path.total`: splice(2) through a kernel pipe.
pub const PATH_SPLICE: &str = "splice";
/// `path` value of `relay.path.total`: an io_uring ring thread.
pub const PATH_IO_URING: &str = "io_uring";
/// `path` value of `ktls.connection.total`: the data phase went to kernel TLS.
pub const PATH_KTLS: &str = "ktls";
/// `path` value of `ktls.connection.total`: the connection stayed on rustls.
pub const PATH_FALLBACK: &str = "fallback";
/// `path` value of `ktls.connection.total`: moving the keys into the kernel failed.
pub const PATH_FAILED: &str = "failed";

/// Client connections a server accepted (counter).
pub const SERVER_CONNECTION_TOTAL: &str = "server.connection.total";
/// Tasks a server spawned: requests past negotiation and authentication (counter).
pub const SERVER_TASK_TOTAL: &str = "server.task.total";
/// Tasks of a server running now (gauge).
pub const SERVER_TASK_ALIVE: &str = "server.task.alive";
/// Requests refused because authentication failed (counter).
pub const SERVER_FORBIDDEN_AUTH_FAILED: &str = "server.forbidden.auth_failed";
/// Requests refused by the server's target filters (counter).
pub const SERVER_FORBIDDEN_DEST_DENIED: &str = "server.forbidden.dest_denied";
/// Bytes received from clients (counter, per transport).
pub const SERVER_TRAFFIC_IN_BYTES: &str = "server.traffic.in.bytes";
/// Bytes sent to clients (counter, per transport).
pub const SERVER_TRAFFIC_OUT_BYTES: &str = "server.traffic.out.bytes";

/// Tasks that asked this escaper for a connection or a UDP relay (counter).
pub const ESCAPER_TASK_TOTAL: &str = "escaper.task.total";
/// Connection attempts to remote (counter).
pub const ESCAPER_CONNECTION_ATTEMPT: &str = "escaper.connection.attempt";
/// Connections to remote established and handed to a task (counter).
pub const ESCAPER_CONNECTION_ESTABLISH: &str = "escaper.connection.establish";
/// Connections refused by the egress network filter (counter).
pub const ESCAPER_FORBIDDEN_IP_BLOCKED: &str = "escaper.forbidden.ip_blocked";

/// Queries to a resolver (counter, per rr_type).
pub const RESOLVER_QUERY_TOTAL: &str = "resolver.query.total";
/// Queries answered from the cache (counter, per rr_type).
pub const RESOLVER_QUERY_CACHED: &str = "resolver.query.cached";
/// Queries sent to the DNS servers by the driver (counter, per rr_type).
pub const RESOLVER_QUERY_DRIVER_TOTAL: &str = "resolver.query.driver.total";
/// Driver queries that timed out (counter, per rr_type).
pub const RESOLVER_QUERY_DRIVER_TIMEOUT: &str = "resolver.query.driver.timeout";
/// Driver queries the DNS server answered with "not found" (counter, per rr_type).
pub const RESOLVER_QUERY_SERVER_NOT_FOUND: &str = "resolver.query.server.not_found";
/// Driver queries that failed at the DNS server (counter, per rr_type).
pub const RESOLVER_QUERY_SERVER_SERV_FAIL: &str = "resolver.query.server.serv_fail";
/// Driver queries the DNS server refused (counter, per rr_type).
pub const RESOLVER_QUERY_SERVER_REFUSED: &str = "resolver.query.server.refused";
/// Capacity of the result cache (gauge).
pub const RESOLVER_MEMORY_CACHE_CAPACITY: &str = "resolver.memory.cache.capacity";
/// Records in the result cache (gauge).
pub const RESOLVER_MEMORY_CACHE_LENGTH: &str = "resolver.memory.cache.length";

/// Client connections of a user (counter).
pub const USER_CONNECTION_TOTAL: &str = "user.connection.total";
/// Requests of a user (counter).
pub const USER_REQUEST_TOTAL: &str = "user.request.total";
/// Requests of a user running now (gauge).
pub const USER_REQUEST_ALIVE: &str = "user.request.alive";
/// Bytes received from a user's clients (counter, per transport).
pub const USER_TRAFFIC_IN_BYTES: &str = "user.traffic.in.bytes";
/// Bytes sent to a user's clients (counter, per transport).
pub const USER_TRAFFIC_OUT_BYTES: &str = "user.traffic.out.bytes";

/// Relays ended in this process, per data path (counter, per path).
pub const RELAY_PATH_TOTAL: &str = "relay.path.total";
/// TLS connections in this process, per kTLS outcome (counter, per path; `ktls` builds only).
pub const KTLS_CONNECTION_TOTAL: &str = "ktls.connection.total";
