//! User groups: who may use a proxy server, and what each user may do.
//!
//! One type today, `basic` (alias `hashed_user`, g3proxy's user group with hashed password
//! tokens), built by [`build_basic`] and wired in `g3proxy/src/wiring.rs`. A server with
//! `user_group: NAME` authenticates every task through the [`px_core::UserGroup`] trait and
//! applies the [`px_core::UserPolicy`] of the user it gets.
//!
//! - [`group`]: the group: static users, anonymous user, dynamic users with refresh and cache.
//! - `user`: one user's keys (token, expire, block_and_delay, rules, limits).
//! - `token`: password tokens (fast_hash, crypt(5) `$1$`/`$5$`/`$6$`, argon2 PHC), checked in
//!   constant time; `crypt`: the crypt(5) algorithms.
//! - `verify`: password checks off the runtime's workers, one costly check per client IP at a
//!   time, good passwords remembered as keyed digests.
//! - `rules`: `resolve_redirection` and `explicit_sites`; `limit`: rate limits and alive counts.
//! - `source`, `redis`: dynamic user sources (file, Redis) and the cache file.
//!
//! Every key is described in `doc/config/user_group.md`.
//!
//! ```yaml
//! user_group:
//!   - name: default
//!     static_users:
//!       - name: root
//!         # password: toor
//!         token: {salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}
//!         dst_port_filter: [80, 443]
//!     source: {type: file, path: dynamic_users.json}
//! ```

mod crypt;
pub mod group;
mod limit;
mod redis;
mod rules;
mod source;
mod time;
mod token;
mod user;
mod verify;

#[cfg(test)]
mod tests;

pub use group::{BasicUserGroup, build_basic};
