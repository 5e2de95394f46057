//! Building modules from their documents: validate everything, resolve
//! references between modules by name, reject cycles, and only then hand the
//! finished set to the caller. Nothing runs until the whole set is good.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use px_core::{Auditor, Escaper, Handle, ModuleLookup, Resolver, Server, UserGroup};
use px_yaml::section::ModuleDoc;
use px_yaml::{ConfigError, MapReader, Val, normalize_type};

use crate::config::Kind;

/// A factory: builds one module from its map (`name` and `type` already taken).
pub type Factory<T> = fn(&str, MapReader<'_>, &dyn ModuleLookup) -> Result<Arc<T>, ConfigError>;

/// The one table from `type:` names to factories, per kind (filled in by `g3proxy/src/wiring.rs`).
pub struct Wiring {
    /// Resolver types.
    pub resolvers: Vec<(&'static [&'static str], Factory<dyn Resolver>)>,
    /// Escaper types.
    pub escapers: Vec<(&'static [&'static str], Factory<dyn Escaper>)>,
    /// User group types (the `type` key is optional for user groups).
    pub user_groups: Vec<(&'static [&'static str], Factory<dyn UserGroup>)>,
    /// Auditor types (the `type` key is optional for auditors).
    pub auditors: Vec<(&'static [&'static str], Factory<dyn Auditor>)>,
    /// Server types.
    pub servers: Vec<(&'static [&'static str], Factory<dyn Server>)>,
}

fn find<T: ?Sized>(
    table: &[(&'static [&'static str], Factory<T>)],
    ty: &str,
) -> Option<Factory<T>> {
    let want = normalize_type(ty);
    table
        .iter()
        .find(|(names, _)| names.iter().any(|n| normalize_type(n) == want))
        .map(|(_, f)| *f)
}

/// Module types g3proxy documents, so an unimplemented one says so instead of "unknown".
const G3_TYPES: &[(Kind, &[&str])] = &[
    (
        Kind::Resolver,
        &["c-ares", "hickory", "fail_over", "deny_all"],
    ),
    (
        Kind::Escaper,
        &[
            "comply_audit",
            "direct_fixed",
            "direct_float",
            "divert_tcp",
            "dummy_deny",
            "proxy_float",
            "proxy_http",
            "proxy_https",
            "proxy_socks5",
            "proxy_socks5s",
            "route_client",
            "route_failover",
            "route_geoip",
            "route_mapping",
            "route_query",
            "route_resolved",
            "route_select",
            "route_upstream",
            "trick_float",
        ],
    ),
    (Kind::UserGroup, &["basic", "facts", "ldap"]),
    (Kind::Auditor, &["default"]),
    (
        Kind::Server,
        &[
            "http_proxy",
            "http_rproxy",
            "socks_proxy",
            "tcp_stream",
            "tls_stream",
            "sni_proxy",
            "tcp_tproxy",
            "plain_tcp_port",
            "plain_tls_port",
            "native_tls_port",
            "plain_quic_port",
            "intelli_proxy",
            "dummy_close",
        ],
    ),
];

fn g3_knows(kind: Kind, ty: &str) -> bool {
    let want = normalize_type(ty);
    G3_TYPES
        .iter()
        .filter(|(k, _)| *k == kind)
        .any(|(_, names)| names.iter().any(|n| normalize_type(n) == want))
}

/// Handles built in one pass, per kind, by name.
#[derive(Default)]
pub struct BuiltSet {
    /// Resolvers.
    pub resolvers: BTreeMap<String, Arc<Handle<dyn Resolver>>>,
    /// Escapers.
    pub escapers: BTreeMap<String, Arc<Handle<dyn Escaper>>>,
    /// User groups.
    pub user_groups: BTreeMap<String, Arc<Handle<dyn UserGroup>>>,
    /// Auditors.
    pub auditors: BTreeMap<String, Arc<Handle<dyn Auditor>>>,
    /// Servers.
    pub servers: BTreeMap<String, Arc<Handle<dyn Server>>>,
    /// The document each module was built from (to compare on reload).
    pub fingerprints: BTreeMap<(Kind, String), String>,
}

/// Lookups of modules that exist outside this build (the running set, for
/// single-module reloads).
pub trait ExistingModules {
    /// A running resolver.
    fn resolver(&self, name: &str) -> Option<Arc<Handle<dyn Resolver>>>;
    /// A running escaper.
    fn escaper(&self, name: &str) -> Option<Arc<Handle<dyn Escaper>>>;
    /// A running user group.
    fn user_group(&self, name: &str) -> Option<Arc<Handle<dyn UserGroup>>>;
    /// A running auditor.
    fn auditor(&self, name: &str) -> Option<Arc<Handle<dyn Auditor>>>;
    /// A running server.
    fn server(&self, name: &str) -> Option<Arc<Handle<dyn Server>>>;
    /// The daemon's stats registry, handed to the modules being built.
    fn stats(&self) -> Option<px_core::stats::StatsRegistry> {
        None
    }
}

struct Session<'a> {
    wiring: &'a Wiring,
    docs: HashMap<(Kind, String), &'a ModuleDoc>,
    existing: Option<&'a dyn ExistingModules>,
    built: RefCell<BuiltSet>,
    in_progress: RefCell<HashSet<(Kind, String)>>,
    failed: RefCell<HashSet<(Kind, String)>>,
    errors: RefCell<Vec<ConfigError>>,
}

/// Reads `name` and `type` of a module document.
fn head<'a>(
    kind: Kind,
    doc: &'a ModuleDoc,
) -> Result<(String, Option<String>, MapReader<'a>), ConfigError> {
    let root = Val::root(&doc.node, kind.section());
    let mut map = root.map()?;
    let name_val = map.required("name")?;
    let name = name_val.as_text()?;
    if name.is_empty() || name.len() > 255 {
        return Err(name_val.err("module name must be 1 to 255 characters"));
    }
    let ty = map.get("type").map(|t| t.as_text()).transpose()?;
    // re-root the map so errors inside the module read `server[http].listen`
    let root = Val::root(&doc.node, &format!("{}[{name}]", kind.section()));
    let mut map = root.map()?;
    map.get("name");
    map.get("type");
    Ok((name, ty, map))
}

/// The `name` of a module document.
pub fn module_name(kind: Kind, doc: &ModuleDoc) -> Result<String, ConfigError> {
    head(kind, doc).map(|(name, _, _)| name)
}

macro_rules! lookup_kind {
    ($fn:ident, $kind:expr, $field:ident, $t:ty, $label:expr) => {
        fn $fn(&self, name: &str) -> Result<Arc<Handle<$t>>, String> {
            let key = ($kind, name.to_string());
            if self.docs.contains_key(&key) {
                let built = self.built.borrow().$field.contains_key(name);
                if !built {
                    if self.in_progress.borrow().contains(&key) {
                        return Err(format!("dependency cycle through {} `{name}`", $label));
                    }
                    self.build_one($kind, name);
                }
                let fresh = self.built.borrow().$field.get(name).cloned();
                return match fresh {
                    // a module rebuilt by a reload keeps its running handle: the
                    // new object is stored into it when the reload commits
                    Some(h) => Ok(self.existing.and_then(|e| e.$fn(name)).unwrap_or(h)),
                    None => Err(format!("{} `{name}` has errors", $label)),
                };
            }
            if let Some(h) = self.existing.and_then(|e| e.$fn(name)) {
                return Ok(h);
            }
            Err(format!("no {} named `{name}`", $label))
        }
    };
}

impl ModuleLookup for Session<'_> {
    lookup_kind!(
        resolver,
        Kind::Resolver,
        resolvers,
        dyn Resolver,
        "resolver"
    );
    lookup_kind!(escaper, Kind::Escaper, escapers, dyn Escaper, "escaper");
    lookup_kind!(
        user_group,
        Kind::UserGroup,
        user_groups,
        dyn UserGroup,
        "user group"
    );
    lookup_kind!(auditor, Kind::Auditor, auditors, dyn Auditor, "auditor");
    lookup_kind!(server, Kind::Server, servers, dyn Server, "server");

    fn stats(&self) -> Option<px_core::stats::StatsRegistry> {
        self.existing.and_then(|e| e.stats())
    }
}

impl ExistingModules for BuiltSet {
    fn resolver(&self, name: &str) -> Option<Arc<Handle<dyn Resolver>>> {
        self.resolvers.get(name).cloned()
    }
    fn escaper(&self, name: &str) -> Option<Arc<Handle<dyn Escaper>>> {
        self.escapers.get(name).cloned()
    }
    fn user_group(&self, name: &str) -> Option<Arc<Handle<dyn UserGroup>>> {
        self.user_groups.get(name).cloned()
    }
    fn auditor(&self, name: &str) -> Option<Arc<Handle<dyn Auditor>>> {
        self.auditors.get(name).cloned()
    }
    fn server(&self, name: &str) -> Option<Arc<Handle<dyn Server>>> {
        self.servers.get(name).cloned()
    }
}

impl Session<'_> {
    fn build_one(&self, kind: Kind, name: &str) {
        let key = (kind, name.to_string());
        if self.failed.borrow().contains(&key) {
            return;
        }
        let Some(doc) = self.docs.get(&key).copied() else {
            return;
        };
        self.in_progress.borrow_mut().insert(key.clone());
        let result = self.build_doc(kind, doc);
        self.in_progress.borrow_mut().remove(&key);
        if let Err(e) = result {
            self.failed.borrow_mut().insert(key);
            self.errors.borrow_mut().push(e);
        }
    }

    fn build_doc(&self, kind: Kind, doc: &ModuleDoc) -> Result<(), ConfigError> {
        let (name, ty, map) = head(kind, doc)?;
        let type_err = |ty: &Option<String>| -> ConfigError {
            let module = Val::root(&doc.node, &format!("{}[{name}]", kind.section()));
            let root = module
                .map()
                .ok()
                .and_then(|mut m| m.get("type"))
                .unwrap_or(module);
            match ty {
                Some(t) if g3_knows(kind, t) => root.err(format!(
                    "{} type `{t}` is known to g3proxy but not implemented yet by this proxy",
                    kind.section()
                )),
                Some(t) => root.err(format!("unknown {} type `{t}`", kind.section())),
                None => root.err("missing required key `type`"),
            }
        };
        let fp = doc.node.fingerprint();
        let built_set = |b: &mut BuiltSet| {
            b.fingerprints.insert((kind, name.clone()), fp.clone());
        };
        match kind {
            Kind::Resolver => {
                let f = ty
                    .as_deref()
                    .and_then(|t| find(&self.wiring.resolvers, t))
                    .ok_or_else(|| type_err(&ty))?;
                let m = f(&name, map, self)?;
                let mut b = self.built.borrow_mut();
                b.resolvers
                    .insert(name.clone(), Arc::new(Handle::new(&name, m)));
                built_set(&mut b);
            }
            Kind::Escaper => {
                let f = ty
                    .as_deref()
                    .and_then(|t| find(&self.wiring.escapers, t))
                    .ok_or_else(|| type_err(&ty))?;
                let m = f(&name, map, self)?;
                let mut b = self.built.borrow_mut();
                b.escapers
                    .insert(name.clone(), Arc::new(Handle::new(&name, m)));
                built_set(&mut b);
            }
            Kind::UserGroup => {
                let t = ty.as_deref().unwrap_or("basic");
                let f = find(&self.wiring.user_groups, t).ok_or_else(|| type_err(&ty))?;
                let m = f(&name, map, self)?;
                let mut b = self.built.borrow_mut();
                b.user_groups
                    .insert(name.clone(), Arc::new(Handle::new(&name, m)));
                built_set(&mut b);
            }
            Kind::Auditor => {
                let t = ty.as_deref().unwrap_or("default");
                let f = find(&self.wiring.auditors, t).ok_or_else(|| type_err(&ty))?;
                let m = f(&name, map, self)?;
                let mut b = self.built.borrow_mut();
                b.auditors
                    .insert(name.clone(), Arc::new(Handle::new(&name, m)));
                built_set(&mut b);
            }
            Kind::Server => {
                let f = ty
                    .as_deref()
                    .and_then(|t| find(&self.wiring.servers, t))
                    .ok_or_else(|| type_err(&ty))?;
                let m = f(&name, map, self)?;
                let mut b = self.built.borrow_mut();
                b.servers
                    .insert(name.clone(), Arc::new(Handle::new(&name, m)));
                built_set(&mut b);
            }
        }
        Ok(())
    }
}

/// Builds every module of `docs`; modules not in `docs` are looked up in
/// `existing`. Returns all errors found, each with file, line and key path.
pub fn build_modules(
    wiring: &Wiring,
    docs: &[(Kind, ModuleDoc)],
    existing: Option<&dyn ExistingModules>,
) -> Result<BuiltSet, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut index: HashMap<(Kind, String), &ModuleDoc> = HashMap::new();
    let mut order = Vec::new();
    for (kind, doc) in docs {
        match head(*kind, doc) {
            Ok((name, _, _)) => {
                let key = (*kind, name.clone());
                if index.contains_key(&key) {
                    let root = Val::root(&doc.node, &format!("{}[{name}]", kind.section()));
                    errors.push(root.err(format!("duplicate {} name `{name}`", kind.section())));
                } else {
                    index.insert(key.clone(), doc);
                    order.push(key);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let session = Session {
        wiring,
        docs: index,
        existing,
        built: RefCell::new(BuiltSet::default()),
        in_progress: RefCell::new(HashSet::new()),
        failed: RefCell::new(HashSet::new()),
        errors: RefCell::new(Vec::new()),
    };
    order.sort_by_key(|(k, _)| *k);
    for (kind, name) in &order {
        let done = {
            let b = session.built.borrow();
            b.fingerprints.contains_key(&(*kind, name.clone()))
        };
        if !done {
            session.build_one(*kind, name);
        }
    }
    errors.extend(session.errors.into_inner());
    if errors.is_empty() {
        Ok(session.built.into_inner())
    } else {
        Err(errors)
    }
}
