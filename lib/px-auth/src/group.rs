//! The `basic` user group (g3proxy's `hashed_user`): static users, an optional anonymous user,
//! and dynamic users from a source.
//!
//! Lookups go static users first, then dynamic ones; a name found in neither falls back to the
//! anonymous user when there is one. The dynamic set is one `ArcSwap`ed map, replaced whole by a
//! refresh task (every `refresh_interval`, and right away when the group is built, so
//! `reload-user-group` re-reads the source). A refreshed user whose document did not change keeps
//! its object, and with it its rate limiters and alive count. Until the first fetch after a build
//! has finished, a name not (yet) known waits for it (bounded by the source's timeout), so a
//! reload never answers 407 to a user the source has.
//!
//! ```yaml
//! user_group:
//!   - name: default
//!     static_users:
//!       - name: root
//!         token: {salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}
//!     anonymous_user: {name: guest, dst_port_filter: [80]}
//!     source: {type: redis, addr: 127.0.0.1:6379, key: g3proxy:users}
//!     cache: users.cache.json
//!     refresh_interval: 60s
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use px_core::{
    AuthDenied, AuthResult, ChallengeReason, ClientInfo, Credentials, DeniedReason, UserCtx,
    UserGroup, UserKind, UserPolicy,
};
use px_yaml::{ConfigError, MapReader};
use tokio::sync::watch;

use crate::source::{Source, config_path, parse_users, write_cache};
use crate::user::User;
use crate::verify::Verifier;

/// A name → user map.
type Users = HashMap<String, Arc<User>>;

/// The shared state of one group, also held (weakly) by its refresh task.
struct Inner {
    name: Arc<str>,
    static_users: Users,
    anonymous: Option<Arc<User>>,
    dynamic: ArcSwap<Users>,
    verifier: Verifier,
    source: Option<Source>,
    cache: Option<PathBuf>,
    /// True once the first fetch after the build has finished (well or not).
    loaded: watch::Sender<bool>,
    /// The last document accepted, to skip unchanged ones.
    last_doc: Mutex<Option<String>>,
}

/// A `basic` user group.
pub struct BasicUserGroup {
    inner: Arc<Inner>,
    /// Dropping it stops the refresh task.
    _stop: watch::Sender<()>,
}

impl Inner {
    fn lookup_now(&self, name: &str) -> Option<Arc<User>> {
        if let Some(u) = self.static_users.get(name) {
            return Some(Arc::clone(u));
        }
        self.dynamic.load().get(name).cloned()
    }

    async fn lookup(&self, name: &str) -> Option<Arc<User>> {
        if let Some(u) = self.lookup_now(name) {
            return Some(u);
        }
        let source = self.source.as_ref()?;
        let mut rx = self.loaded.subscribe();
        if *rx.borrow() {
            return None;
        }
        let _ = tokio::time::timeout(source.timeout, rx.wait_for(|done| *done)).await;
        self.lookup_now(name)
    }

    fn ctx(&self, user: &User) -> UserCtx {
        UserCtx {
            group: Arc::clone(&self.name),
            name: Arc::clone(&user.name),
            kind: user.kind,
            policy: Arc::clone(&user.rules) as Arc<dyn UserPolicy>,
        }
    }

    /// The checks after the password: blocked, expired, client address.
    fn admit(&self, user: &User, client: &ClientInfo) -> AuthResult {
        let denied = |reason, delay| {
            AuthResult::Denied(AuthDenied {
                user: user.name.to_string(),
                reason,
                delay,
            })
        };
        if let Some(d) = user.block_and_delay {
            return denied(DeniedReason::Blocked, d);
        }
        if user.is_expired(SystemTime::now()) {
            return denied(DeniedReason::Expired, Duration::ZERO);
        }
        if !user.client_allowed(client.peer_addr.ip()) {
            return denied(DeniedReason::ClientAddress, Duration::ZERO);
        }
        AuthResult::Ok(self.ctx(user))
    }

    /// Replaces the dynamic set with `users`, keeping unchanged users' objects.
    fn install(&self, users: Vec<User>) -> usize {
        let old = self.dynamic.load();
        let mut map: Users = HashMap::with_capacity(users.len());
        for u in users {
            if self.static_users.contains_key(&*u.name) {
                log::debug!(
                    "user group {}: dynamic user {} ignored, a static user has the name",
                    self.name,
                    u.name
                );
                continue;
            }
            let keep = old
                .get(&*u.name)
                .filter(|o| o.fingerprint == u.fingerprint)
                .cloned();
            map.insert(u.name.to_string(), keep.unwrap_or_else(|| Arc::new(u)));
        }
        let n = map.len();
        self.dynamic.store(Arc::new(map));
        n
    }

    /// Parses and installs a document; the previous set stays on any error.
    fn accept(&self, text: &str, origin: &str) -> Result<usize, ConfigError> {
        let users = parse_users(text, std::path::Path::new(origin))?;
        Ok(self.install(users))
    }

    async fn refresh_once(&self) {
        let Some(source) = &self.source else {
            return;
        };
        let origin = source.describe();
        match source.fetch().await {
            Err(e) => log::warn!(
                "user group {}: cannot fetch dynamic users from {origin}: {e} (keeping {} users)",
                self.name,
                self.dynamic.load().len()
            ),
            Ok(text) => {
                let same = self
                    .last_doc
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                    == Some(text.as_str());
                if !same {
                    match self.accept(&text, &origin) {
                        Ok(n) => {
                            log::info!("user group {}: {n} dynamic users from {origin}", self.name);
                            *self.last_doc.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(text.clone());
                            self.save_cache(&text).await;
                        }
                        Err(e) => log::warn!(
                            "user group {}: rejected the dynamic user document: {e} (keeping {} users)",
                            self.name,
                            self.dynamic.load().len()
                        ),
                    }
                }
            }
        }
        self.loaded.send_replace(true);
    }

    async fn save_cache(&self, text: &str) {
        if let Some(path) = &self.cache
            && let Err(e) = write_cache(path, text).await
        {
            log::warn!(
                "user group {}: cannot write cache {}: {e}",
                self.name,
                path.display()
            );
        }
    }

    /// Reads the cache file at build time, if there is one.
    fn load_cache(&self) {
        let Some(path) = &self.cache else {
            return;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                log::warn!(
                    "user group {}: cannot read cache {}: {e}",
                    self.name,
                    path.display()
                );
                return;
            }
        };
        match self.accept(&text, &path.display().to_string()) {
            Ok(n) => {
                log::info!(
                    "user group {}: {n} dynamic users from cache {}",
                    self.name,
                    path.display()
                );
                *self.last_doc.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
            }
            Err(e) => log::warn!("user group {}: ignoring a bad cache: {e}", self.name),
        }
    }
}

async fn refresh_loop(inner: Weak<Inner>, mut stop: watch::Receiver<()>, every: Duration) {
    loop {
        let Some(group) = inner.upgrade() else {
            return;
        };
        group.refresh_once().await;
        drop(group);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Builds a `basic` user group from its map (`name` and `type` already taken).
pub fn build_basic(
    name: &str,
    mut map: MapReader<'_>,
    _lookup: &dyn px_core::ModuleLookup,
) -> Result<Arc<dyn UserGroup>, ConfigError> {
    let mut static_users: Users = HashMap::new();
    if let Some(v) = map.get("static_users") {
        for item in v.list() {
            let u = User::parse(&item, UserKind::Static)?;
            if static_users.contains_key(&*u.name) {
                return Err(item.err(format!("duplicate user `{}`", u.name)));
            }
            static_users.insert(u.name.to_string(), Arc::new(u));
        }
    }
    let anonymous = map
        .get("anonymous_user")
        .map(|v| User::parse(&v, UserKind::Anonymous).map(Arc::new))
        .transpose()?;
    let source = map.get("source").map(|v| Source::parse(&v)).transpose()?;
    let cache = match map.get("cache") {
        Some(v) => Some(config_path(&v, &v.as_text()?)),
        None => None,
    };
    let refresh_interval = match map.get("refresh_interval") {
        Some(v) => {
            let d = px_yaml::values::duration(&v)?;
            if d < Duration::from_millis(100) {
                return Err(v.err("refresh_interval must be at least 100ms"));
            }
            d
        }
        None => Duration::from_secs(60),
    };
    map.finish()?;
    let (loaded, _) = watch::channel(source.is_none());
    let inner = Arc::new(Inner {
        name: Arc::from(name),
        static_users,
        anonymous,
        dynamic: ArcSwap::from_pointee(HashMap::new()),
        verifier: Verifier::new(),
        source,
        cache,
        loaded,
        last_doc: Mutex::new(None),
    });
    inner.load_cache();
    let (stop, stop_rx) = watch::channel(());
    if inner.source.is_some() {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(refresh_loop(
                    Arc::downgrade(&inner),
                    stop_rx,
                    refresh_interval,
                ));
            }
            Err(_) => log::warn!("user group {name}: no runtime, dynamic users are not fetched"),
        }
    }
    Ok(Arc::new(BasicUserGroup { inner, _stop: stop }))
}

#[async_trait]
impl UserGroup for BasicUserGroup {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn authenticate(&self, creds: &Credentials, client: &ClientInfo) -> AuthResult {
        let g = &self.inner;
        let Some(user) = g.lookup(&creds.username).await else {
            return match &g.anonymous {
                Some(a) => g.admit(a, client),
                None => AuthResult::Challenge(ChallengeReason::UnknownUser),
            };
        };
        if !g
            .verifier
            .verify(&user, &creds.password, client.peer_addr.ip())
            .await
        {
            return AuthResult::Challenge(ChallengeReason::BadPassword);
        }
        g.admit(&user, client)
    }

    fn anonymous(&self, client: &ClientInfo) -> AuthResult {
        match &self.inner.anonymous {
            Some(a) => self.inner.admit(a, client),
            None => AuthResult::Challenge(ChallengeReason::NoCredentials),
        }
    }

    fn has_anonymous(&self) -> bool {
        self.inner.anonymous.is_some()
    }

    fn publish_dynamic(&self, json: &str) -> Result<(), String> {
        let n = self
            .inner
            .accept(json, "published users")
            .map_err(|e| e.to_string())?;
        log::info!(
            "user group {}: {n} dynamic users published",
            self.inner.name
        );
        *self
            .inner
            .last_doc
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(json.to_string());
        if let (Some(path), Ok(rt)) = (&self.inner.cache, tokio::runtime::Handle::try_current()) {
            let (path, text, name) = (path.clone(), json.to_string(), Arc::clone(&self.inner.name));
            rt.spawn(async move {
                if let Err(e) = write_cache(&path, &text).await {
                    log::warn!(
                        "user group {name}: cannot write cache {}: {e}",
                        path.display()
                    );
                }
            });
        }
        Ok(())
    }

    fn static_users(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.static_users.keys().cloned().collect();
        v.sort();
        v
    }

    fn dynamic_users(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.dynamic.load().keys().cloned().collect();
        v.sort();
        v
    }
}
