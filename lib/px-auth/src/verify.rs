//! Password checks that cannot be turned into a denial of service.
//!
//! - Cheap tokens (fast_hash, md5-crypt) are checked inline.
//! - Costly tokens (sha-crypt, argon2) run on tokio's blocking pool, at most `slots` at once
//!   (half the CPUs, at least one), and at most one at a time per client IP: a client sending
//!   thousands of wrong passwords queues behind itself and holds one slot, so clients on other
//!   addresses keep getting theirs, and the runtime's workers never hash.
//! - A password that verified is remembered per user as a keyed SHA-256 digest (the key is
//!   random per group, never stored), so a user's next requests skip the costly check. A user
//!   whose token changes is a new object with an empty memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use px_core::Password;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::token::Cost;
use crate::user::User;

/// The password checker of one user group.
pub(crate) struct Verifier {
    key: [u8; 32],
    slots: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>,
}

impl Verifier {
    /// A checker with a fresh random key.
    pub(crate) fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Verifier {
            key: rand::random(),
            slots: Arc::new(Semaphore::new((cpus / 2).max(1))),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, user: &User, password: &Password) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(user.name.as_bytes());
        h.update([0u8]);
        h.update(password.expose());
        h.finalize().into()
    }

    fn ip_lock(&self, ip: IpAddr) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(ip).or_default())
    }

    fn release_ip(&self, ip: IpAddr, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        drop(lock);
        if map.get(&ip).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&ip);
        }
    }

    /// True when the password matches the user's token.
    pub(crate) async fn verify(&self, user: &Arc<User>, password: &Password, ip: IpAddr) -> bool {
        let digest = self.digest(user, password);
        if user.verified_before(&digest) {
            return true;
        }
        let ok = match user.token.cost() {
            Cost::Cheap => user.token.verify(password.expose()),
            Cost::Costly => {
                let lock = self.ip_lock(ip);
                let ok = {
                    let _one_per_ip = lock.lock().await;
                    match self.slots.acquire().await {
                        Ok(_permit) => {
                            let u = Arc::clone(user);
                            let pw = password.clone();
                            tokio::task::spawn_blocking(move || u.token.verify(pw.expose()))
                                .await
                                .unwrap_or(false)
                        }
                        Err(_) => false,
                    }
                };
                self.release_ip(ip, lock);
                ok
            }
        };
        if ok {
            user.remember(digest);
        }
        ok
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use px_core::UserKind;
    use px_yaml::Val;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn user(token: &str) -> Arc<User> {
        let n =
            px_yaml::load_str(&format!("name: u\ntoken: {token}\n"), Path::new("v.yaml")).unwrap();
        Arc::new(User::parse(&Val::root(&n, "u"), UserKind::Static).unwrap())
    }

    #[tokio::test]
    async fn remembers_good_passwords() {
        let u = user(
            "\"$6$rounds=20000$saltstring$isyvzeM5PcaxaYu6cDKs.zvwh4H4YIHVXJX/8fNaiAg.b.XXcVE.1qwfYNjvmYiQLCzQrj7C09jFOIJhTeOwx0\"",
        );
        let v = Verifier::new();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let pw = Password::new("Hello world!");
        let t0 = Instant::now();
        assert!(v.verify(&u, &pw, ip).await);
        let first = t0.elapsed();
        let t1 = Instant::now();
        for _ in 0..20 {
            assert!(v.verify(&u, &pw, ip).await);
        }
        assert!(
            t1.elapsed() < first,
            "remembered: {:?} vs {first:?}",
            t1.elapsed()
        );
        assert!(!v.verify(&u, &Password::new("nope"), ip).await);
        assert!(
            v.per_ip.lock().unwrap().is_empty(),
            "per-ip locks are dropped"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_costly_check_per_ip() {
        let u = user(
            "\"$6$rounds=20000$saltstring$isyvzeM5PcaxaYu6cDKs.zvwh4H4YIHVXJX/8fNaiAg.b.XXcVE.1qwfYNjvmYiQLCzQrj7C09jFOIJhTeOwx0\"",
        );
        let v = Arc::new(Verifier::new());
        let attacker: IpAddr = [127, 0, 0, 3].into();
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (v, u) = (Arc::clone(&v), Arc::clone(&u));
            tasks.push(tokio::spawn(async move {
                v.verify(&u, &Password::new(format!("guess{i}")), attacker)
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // another address gets a slot after at most one of the attacker's checks
        let t0 = Instant::now();
        let other: IpAddr = [127, 0, 0, 1].into();
        assert!(!v.verify(&u, &Password::new("x"), other).await);
        let waited = t0.elapsed();
        let t1 = Instant::now();
        for t in tasks {
            assert!(!t.await.unwrap());
        }
        let rest = t1.elapsed();
        assert!(
            waited < rest,
            "other client waited {waited:?}, attacker's queue {rest:?}"
        );
    }
}
