//! Tests of whole groups: static, anonymous and dynamic users through the `UserGroup` trait.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use px_core::{
    AuthResult, ChallengeReason, ClientInfo, Credentials, DeniedReason, Escaper, Handle,
    ModuleLookup, Password, Resolver, Server, UserGroup, UserKind,
};
use px_yaml::Val;

struct NoModules;

impl ModuleLookup for NoModules {
    fn resolver(&self, n: &str) -> Result<Arc<Handle<dyn Resolver>>, String> {
        Err(format!("no resolver {n}"))
    }
    fn escaper(&self, n: &str) -> Result<Arc<Handle<dyn Escaper>>, String> {
        Err(format!("no escaper {n}"))
    }
    fn user_group(&self, n: &str) -> Result<Arc<Handle<dyn UserGroup>>, String> {
        Err(format!("no user group {n}"))
    }
    fn auditor(&self, n: &str) -> Result<Arc<Handle<dyn px_core::Auditor>>, String> {
        Err(format!("no auditor {n}"))
    }
    fn server(&self, n: &str) -> Result<Arc<Handle<dyn Server>>, String> {
        Err(format!("no server {n}"))
    }
}

const GUIDE_TOKEN: &str = "{salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, \
                           sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}";
const GUIDE_JSON_TOKEN: &str = r#"{"salt": "113323bdab6fd2cc", "md5": "5c81f2becadde7fa5fde9026652ccc84", "sha1": "ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96"}"#;

fn group_at(yaml: &str, file: &Path) -> Arc<dyn UserGroup> {
    let node = px_yaml::load_str(yaml, file).unwrap();
    let mut map = Val::root(&node, "user_group[g]").map().unwrap();
    map.get("name");
    crate::build_basic("g", map, &NoModules).unwrap()
}

fn group(yaml: &str) -> Arc<dyn UserGroup> {
    group_at(yaml, Path::new("g.yaml"))
}

fn client() -> ClientInfo {
    let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    ClientInfo::direct(a, "127.0.0.1:1080".parse().unwrap())
}

fn creds(u: &str, p: &str) -> Credentials {
    Credentials {
        username: u.into(),
        password: Password::new(p),
    }
}

async fn auth(g: &dyn UserGroup, u: &str, p: &str) -> AuthResult {
    g.authenticate(&creds(u, p), &client()).await
}

fn user_of(r: AuthResult) -> (String, UserKind) {
    match r {
        AuthResult::Ok(u) => (u.name.to_string(), u.kind),
        other => panic!("expected a user, got {other:?}"),
    }
}

#[tokio::test]
async fn static_users_and_challenges() {
    let g = group(&format!(
        "name: g\nstatic_users:\n  - name: root\n    token: {GUIDE_TOKEN}\n  - name: nopw\n    token: ~\n"
    ));
    assert_eq!(
        user_of(auth(&*g, "root", "toor").await),
        ("root".into(), UserKind::Static)
    );
    assert!(matches!(
        auth(&*g, "root", "wrong").await,
        AuthResult::Challenge(ChallengeReason::BadPassword)
    ));
    assert!(matches!(
        auth(&*g, "nobody", "toor").await,
        AuthResult::Challenge(ChallengeReason::UnknownUser)
    ));
    assert!(matches!(
        auth(&*g, "nopw", "").await,
        AuthResult::Challenge(ChallengeReason::BadPassword)
    ));
    assert!(matches!(
        g.anonymous(&client()),
        AuthResult::Challenge(ChallengeReason::NoCredentials)
    ));
    assert!(!g.has_anonymous());
    assert_eq!(
        g.static_users(),
        vec!["nopw".to_string(), "root".to_string()]
    );
}

#[tokio::test]
async fn anonymous_expire_block_ingress() {
    let g = group(&format!(
        "name: g\nanonymous_user: {{name: guest, dst_port_filter: [80]}}\nstatic_users:\n\
         - {{name: old, token: {GUIDE_TOKEN}, expire: '2001-01-01T00:00:00Z'}}\n\
         - {{name: later, token: {GUIDE_TOKEN}, expire: '2999-01-01T00:00:00+08:00'}}\n\
         - {{name: blocked, token: {GUIDE_TOKEN}, block_and_delay: 1s}}\n\
         - {{name: lan, token: {GUIDE_TOKEN}, ingress_network_filter: {{default: forbid, allow: 10.0.0.0/8}}}}\n"
    ));
    assert!(g.has_anonymous());
    assert_eq!(
        user_of(g.anonymous(&client())),
        ("guest".into(), UserKind::Anonymous)
    );
    assert_eq!(
        user_of(auth(&*g, "stranger", "x").await).1,
        UserKind::Anonymous
    );
    match auth(&*g, "old", "toor").await {
        AuthResult::Denied(d) => assert_eq!(d.reason, DeniedReason::Expired),
        other => panic!("{other:?}"),
    }
    assert_eq!(user_of(auth(&*g, "later", "toor").await).0, "later");
    match auth(&*g, "blocked", "toor").await {
        AuthResult::Denied(d) => {
            assert_eq!(d.reason, DeniedReason::Blocked);
            assert_eq!(d.delay, Duration::from_secs(1));
        }
        other => panic!("{other:?}"),
    }
    // a blocked user with a wrong password is just a wrong password
    assert!(matches!(
        auth(&*g, "blocked", "x").await,
        AuthResult::Challenge(_)
    ));
    match auth(&*g, "lan", "toor").await {
        AuthResult::Denied(d) => assert_eq!(d.reason, DeniedReason::ClientAddress),
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_errors() {
    let bad = |yaml: &str| {
        let node = px_yaml::load_str(yaml, Path::new("g.yaml")).unwrap();
        let mut map = Val::root(&node, "user_group[g]").map().unwrap();
        map.get("name");
        crate::build_basic("g", map, &NoModules).err().unwrap()
    };
    let e = bad("name: g\nstatic_users:\n  - name: a\n  - name: a\n");
    assert!(e.message.contains("duplicate"), "{e}");
    assert_eq!(e.line, 4);
    let e = bad("name: g\nbogus: 1\n");
    assert!(e.message.contains("unknown key"), "{e}");
    let e = bad("name: g\nstatic_users:\n  - name: a\n    token: {salt: ab, md5: nothex}\n");
    assert_eq!(e.key_path, "user_group[g].static_users[0].token.md5");
    assert!(
        bad("name: g\nrefresh_interval: 0s\n")
            .message
            .contains("at least")
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn dynamic_file_refresh_reject_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    let cache = dir.path().join("cache.json");
    write(
        &users,
        &format!(r#"[{{"name": "dyn", "token": {GUIDE_JSON_TOKEN}}}]"#),
    );
    let yaml = format!(
        "name: g\nstatic_users:\n  - name: root\n    token: {GUIDE_TOKEN}\n\
         source: {{type: file, path: users.json}}\ncache: cache.json\nrefresh_interval: 200ms\n"
    );
    let cfg = dir.path().join("main.yaml");
    let g = group_at(&yaml, &cfg);
    // the first fetch is awaited by a lookup of a name not yet known
    assert_eq!(
        user_of(auth(&*g, "dyn", "toor").await),
        ("dyn".into(), UserKind::Dynamic)
    );
    assert_eq!(g.dynamic_users(), vec!["dyn".to_string()]);

    // a static name in the dynamic set is ignored; a bad document is rejected whole
    write(
        &users,
        &format!(
            r#"[{{"name": "root", "token": null}}, {{"name": "dyn2", "token": {GUIDE_JSON_TOKEN}}}]"#
        ),
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(g.dynamic_users(), vec!["dyn2".to_string()]);
    assert_eq!(user_of(auth(&*g, "root", "toor").await).1, UserKind::Static);
    write(&users, r#"[{"name": "x", "bogus": 1}]"#);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        g.dynamic_users(),
        vec!["dyn2".to_string()],
        "last good set stays"
    );
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert!(cached.contains("dyn2"), "{cached}");

    // a new group with the source gone starts from the cache
    std::fs::remove_file(&users).unwrap();
    drop(g);
    let g = group_at(&yaml, &cfg);
    assert_eq!(user_of(auth(&*g, "dyn2", "toor").await).0, "dyn2");
    assert!(matches!(
        auth(&*g, "dyn", "toor").await,
        AuthResult::Challenge(_)
    ));

    // publishing replaces the set and the cache
    g.publish_dynamic(&format!(
        r#"[{{"name": "pub", "token": {GUIDE_JSON_TOKEN}}}]"#
    ))
    .unwrap();
    assert_eq!(g.dynamic_users(), vec!["pub".to_string()]);
    assert!(g.publish_dynamic("[{]").is_err());
    assert_eq!(g.dynamic_users(), vec!["pub".to_string()]);
}

#[tokio::test]
async fn unchanged_users_keep_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("u.json");
    let doc = format!(r#"[{{"name": "a", "token": {GUIDE_JSON_TOKEN}, "request_max_alive": 1}}]"#);
    write(&users, &doc);
    let g = group_at(
        "name: g\nsource: {type: file, path: u.json}\nrefresh_interval: 100ms\n",
        &dir.path().join("main.yaml"),
    );
    let AuthResult::Ok(u) = auth(&*g, "a", "toor").await else {
        panic!("no user")
    };
    let permit = u.policy.acquire_request().unwrap();
    // the same document again (with other formatting): same object, same alive count
    write(&users, &format!("{doc}\n\n"));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let AuthResult::Ok(u2) = auth(&*g, "a", "toor").await else {
        panic!("no user")
    };
    assert!(u2.policy.acquire_request().is_err(), "still one alive");
    drop(permit);
    assert!(u2.policy.acquire_request().is_ok());
}
