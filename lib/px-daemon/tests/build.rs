//! The config engine with stand-in module types: references, cycles,
//! duplicates, unknown types and keys, positions in errors.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use px_core::error::ConnectError;
use px_core::server::ClientInfo;
use px_core::value::ListenConfig;
use px_core::{
    AddrFamily, Escaper, ModuleLookup, ResolveError, Resolver, Server, TcpConnectRequest,
    UpstreamConn,
};
use px_daemon::build::Wiring;
use px_daemon::config::load_main;
use px_yaml::{ConfigError, MapReader};

struct R(String);
#[async_trait]
impl Resolver for R {
    fn name(&self) -> &str {
        &self.0
    }
    fn kind(&self) -> &'static str {
        "r"
    }
    async fn resolve_family(
        &self,
        _d: &str,
        _f: AddrFamily,
    ) -> Result<Vec<std::net::IpAddr>, ResolveError> {
        Err(ResolveError::Refused)
    }
}

struct E(String);
#[async_trait]
impl Escaper for E {
    fn name(&self) -> &str {
        &self.0
    }
    fn kind(&self) -> &'static str {
        "e"
    }
    async fn connect_tcp(&self, _r: &TcpConnectRequest) -> Result<UpstreamConn, ConnectError> {
        Err(ConnectError::Refused)
    }
}

struct S(String);
#[async_trait]
impl Server for S {
    fn name(&self) -> &str {
        &self.0
    }
    fn kind(&self) -> &'static str {
        "s"
    }
    fn listen(&self) -> Option<&ListenConfig> {
        None
    }
    async fn serve_tcp(&self, _s: tokio::net::TcpStream, _c: ClientInfo) {}
}

fn resolver(
    name: &str,
    mut m: MapReader<'_>,
    l: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    // a chain resolver: `next` names another resolver
    if let Some(n) = m.get("next") {
        l.resolver(n.as_str()?).map_err(|e| n.err(e))?;
    }
    m.finish()?;
    Ok(Arc::new(R(name.into())))
}

fn escaper(
    name: &str,
    mut m: MapReader<'_>,
    l: &dyn ModuleLookup,
) -> Result<Arc<dyn Escaper>, ConfigError> {
    let r = m.required("resolver")?;
    l.resolver(r.as_str()?).map_err(|e| r.err(e))?;
    m.finish()?;
    Ok(Arc::new(E(name.into())))
}

fn server(
    name: &str,
    mut m: MapReader<'_>,
    l: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let e = m.required("escaper")?;
    l.escaper(e.as_str()?).map_err(|x| e.err(x))?;
    m.unimplemented(&["tls_server"])?;
    m.finish()?;
    Ok(Arc::new(S(name.into())))
}

fn wiring() -> Wiring {
    Wiring {
        resolvers: vec![(&["chain"], resolver)],
        escapers: vec![(&["direct_fixed"], escaper)],
        user_groups: vec![],
        auditors: vec![],
        servers: vec![(&["http_proxy"], server)],
    }
}

fn check(files: &[(&str, &str)]) -> Result<(), Vec<ConfigError>> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let main = load_main(dir.path())?;
    px_daemon::build::build_modules(&wiring(), &main.modules, None).map(|_| ())
}

#[test]
fn good_config_in_any_order_and_split_files() {
    check(&[
        (
            "main.yml",
            "server: server.d\nescaper:\n  - name: e\n    type: DirectFixed\n    resolver: r2\nresolver: resolver.yml\n",
        ),
        ("server.d/a.yml", "- name: s\n  type: HttpProxy\n  escaper: e\n"),
        (
            "resolver.yml",
            "- name: r2\n  type: chain\n  next: r1\n- name: r1\n  type: chain\n",
        ),
    ])
    .unwrap();
}

#[test]
fn every_error_is_reported_with_position() {
    let errs = check(&[(
        "main.yaml",
        concat!(
            "resolver:\n",
            "  - name: r\n",
            "    type: chain\n",
            "escaper:\n",
            "  - name: e\n",
            "    type: direct_fixed\n",
            "    resolver: missing\n",
            "  - name: e2\n",
            "    type: direct_fixed\n",
            "    resolver: r\n",
            "server:\n",
            "  - name: s\n",
            "    type: http_proxy\n",
            "    escaper: e\n",
            "    bogus: 1\n",
            "  - name: s\n",
            "    type: http_proxy\n",
            "    escaper: e\n",
            "  - name: t\n",
            "    type: tcp_stream\n",
            "  - name: u\n",
            "    type: nonsense\n",
            "  - name: v\n",
            "    type: http_proxy\n",
            "    escaper: e2\n",
            "    tls_server: {}\n",
        ),
    )])
    .unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let all = text.join("\n");
    assert!(all.contains("main.yaml:7:15: escaper[e].resolver"), "{all}");
    assert!(all.contains("main.yaml:20:11: server[t].type"), "{all}");
    assert!(
        all.contains("escaper[e].resolver: no resolver named `missing`"),
        "{all}"
    );
    assert!(all.contains("duplicate server name `s`"), "{all}");
    assert!(
        all.contains("`tcp_stream` is known to g3proxy but not implemented yet"),
        "{all}"
    );
    assert!(all.contains("unknown server type `nonsense`"), "{all}");
    assert!(all.contains("server[v].tls_server"), "{all}");
    assert!(all.contains("not implemented yet"), "{all}");
}

#[test]
fn cycles_are_errors() {
    let errs = check(&[(
        "main.yaml",
        "resolver:\n  - {name: a, type: chain, next: b}\n  - {name: b, type: chain, next: a}\n",
    )])
    .unwrap_err();
    let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(all.join("\n").contains("dependency cycle"), "{all:?}");
}

#[test]
fn unknown_top_level_key_and_bad_yaml() {
    let errs = check(&[("main.yaml", "serverz: []\n")]).unwrap_err();
    assert!(errs[0].to_string().contains("unknown key `serverz`"));
    let errs = check(&[("main.yaml", "server: [\n")]).unwrap_err();
    assert!(errs[0].to_string().contains("invalid YAML"));
    let errs = check(&[("main.yaml", "server: nothere.yaml\n")]).unwrap_err();
    assert!(errs[0].to_string().contains("no such file"));
}

#[tokio::test]
async fn reload_swaps_in_place_and_a_failure_changes_nothing() {
    use px_daemon::app::App;
    use px_daemon::config::Kind;
    use px_daemon::reload::{reload_changed, reload_module};

    let dir = tempfile::tempdir().unwrap();
    let main_file = dir.path().join("main.yml");
    let good = "resolver:\n  - {name: r, type: chain}\nescaper:\n  - {name: e, type: direct_fixed, resolver: r}\nserver:\n  - {name: s, type: http_proxy, escaper: e}\n";
    std::fs::write(&main_file, good).unwrap();
    let main = load_main(&main_file).unwrap();
    let app = App::build(Arc::new(wiring()), &main, "t").unwrap();
    let handle = app.escapers.get("e").unwrap();
    let first = handle.get();

    // a reload stores a new object into the same handle
    let msg = reload_module(&app, Kind::Escaper, "e").await.unwrap();
    assert_eq!(msg, "escaper e reloaded");
    let second = handle.get();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(Arc::ptr_eq(&app.escapers.get("e").unwrap(), &handle));

    // a reference to a module that is not running fails, nothing changes
    std::fs::write(&main_file, good.replace("resolver: r}", "resolver: r9}")).unwrap();
    let err = reload_module(&app, Kind::Escaper, "e").await.unwrap_err();
    assert!(
        err.contains("main.yml:4:") && err.contains("no resolver named `r9`"),
        "{err}"
    );
    // so does broken YAML
    std::fs::write(&main_file, format!("{good}  - name: [x\n")).unwrap();
    let err = reload_module(&app, Kind::Escaper, "e").await.unwrap_err();
    assert!(err.contains("main.yml:"), "{err}");
    assert!(Arc::ptr_eq(&handle.get(), &second));
    let err = reload_module(&app, Kind::Escaper, "nope")
        .await
        .unwrap_err();
    assert!(err.contains("main.yml"), "{err}");

    // SIGHUP: nothing changed, then one module changed, then one removed
    std::fs::write(&main_file, good).unwrap();
    assert_eq!(reload_changed(&app).await.unwrap(), "no module changed");
    let two = good.replace(
        "server:\n",
        "  - {name: e2, type: direct_fixed, resolver: r}\nserver:\n",
    );
    std::fs::write(&main_file, &two).unwrap();
    let msg = reload_changed(&app).await.unwrap();
    assert_eq!(msg, "reloaded: escaper[e2]");
    assert!(Arc::ptr_eq(&handle.get(), &second));
    std::fs::write(&main_file, good).unwrap();
    let msg = reload_changed(&app).await.unwrap();
    assert_eq!(msg, "reloaded: removed escaper[e2]");
    assert_eq!(app.escapers.names(), vec!["e".to_string()]);
}
