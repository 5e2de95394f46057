//! Per-user target handling besides the filters: `resolve_redirection` and `explicit_sites`.
//!
//! `resolve_redirection` (the user guide's "Domain Resolution Hijacking") is a list of rules, or a
//! map `exact name: to`:
//!
//! - `exact: NAME` (or a list of names): that name only;
//! - `child: NAME` (alias `parent`): the name and every name under it;
//! - `to`: IP addresses (one or a list: the target is connected to one of them, picked with the
//!   user's resolve strategy), or a host name (resolved instead; for a `child` rule the matched
//!   suffix is replaced, so `child: example.com, to: example.net` sends `a.example.com` to
//!   `a.example.net`).
//!
//! Exact rules win over child rules; among child rules the longest parent wins.
//!
//! `explicit_sites` (the user guide's "Monitoring Specific Sites for Users") is a list of sites
//! with an `id`, one of `exact_match` (host), `child_match` (domain), `subnet_match` (network),
//! `emit_stats` and a `resolve_strategy` that overrides the user's for that site.
//!
//! ```yaml
//! resolve_redirection:
//!   - exact: t1.example.net
//!     to: 192.168.10.1
//!   - exact: t2.example.net
//!     to: t1.example.net
//!   - child: example.com
//!     to: example.net
//! explicit_sites:
//!   - id: example-net
//!     child_match: example.net
//!     emit_stats: true
//!     resolve_strategy: {query: ipv4only}
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use px_core::{Host, Redirect, ResolveStrategy};
use px_yaml::{ConfigError, Val, values};

/// Normalizes a domain for matching: lower case, no trailing dot.
fn domain(v: &Val<'_>) -> Result<String, ConfigError> {
    let s = v.as_text()?;
    let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
    match Host::parse(&s) {
        Some(Host::Domain(d)) => Ok(d),
        _ => Err(v.err(format!("invalid domain {s:?}"))),
    }
}

/// The parent of `name` that is a key of `map`, longest first (the name itself included).
fn parent_match<'m, T>(map: &'m HashMap<String, T>, name: &str) -> Option<(&'m str, &'m T)> {
    if map.is_empty() {
        return None;
    }
    let mut rest = name;
    loop {
        if let Some((k, v)) = map.get_key_value(rest) {
            return Some((k.as_str(), v));
        }
        rest = rest.split_once('.')?.1;
    }
}

/// A user's `resolve_redirection` rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redirection {
    exact: HashMap<String, Redirect>,
    child: HashMap<String, Redirect>,
}

fn target(v: &Val<'_>) -> Result<Redirect, ConfigError> {
    let items = v.list();
    if items.is_empty() {
        return Err(v.err("`to` must name a host or IP addresses"));
    }
    let mut ips = Vec::new();
    for item in &items {
        match values::host(item)? {
            Host::Ip(ip) => ips.push(ip),
            Host::Domain(d) if items.len() == 1 => return Ok(Redirect::Name(d)),
            Host::Domain(_) => return Err(item.err("a list in `to` must hold IP addresses only")),
        }
    }
    Ok(Redirect::Addrs(ips))
}

impl Redirection {
    /// Reads `resolve_redirection` (a list of rules, or a map name → to).
    pub(crate) fn parse(v: &Val<'_>) -> Result<Redirection, ConfigError> {
        let mut r = Redirection::default();
        if v.is_map() {
            let mut m = v.map()?;
            for (key, val) in m.rest() {
                let name = Host::parse(&key)
                    .and_then(|h| h.domain().map(str::to_string))
                    .ok_or_else(|| val.err(format!("invalid domain {key:?}")))?;
                r.exact.insert(name, target(&val)?);
            }
            return Ok(r);
        }
        for rule in v.seq()? {
            let mut m = rule.map()?;
            let exact = m.get("exact");
            let child = m.get_any(&["child", "parent"]);
            let to = target(&m.required("to")?)?;
            m.finish()?;
            match (exact, child) {
                (Some(e), None) => {
                    for d in e.list() {
                        r.exact.insert(domain(&d)?, to.clone());
                    }
                }
                (None, Some(c)) => {
                    for d in c.list() {
                        r.child.insert(domain(&d)?, to.clone());
                    }
                }
                _ => return Err(rule.err("a rule needs exactly one of `exact` and `child`")),
            }
        }
        Ok(r)
    }

    /// True when there are no rules.
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.child.is_empty()
    }

    /// Where a domain is redirected, if a rule matches.
    pub(crate) fn lookup(&self, name: &str) -> Option<Redirect> {
        if let Some(r) = self.exact.get(name) {
            return Some(r.clone());
        }
        let (parent, to) = parent_match(&self.child, name)?;
        match to {
            Redirect::Addrs(a) => Some(Redirect::Addrs(a.clone())),
            Redirect::Name(new_parent) => {
                let prefix = &name[..name.len() - parent.len()];
                Some(Redirect::Name(format!("{prefix}{new_parent}")))
            }
        }
    }
}

/// One explicit site.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// The id (used in stats names).
    pub(crate) id: Arc<str>,
    /// `emit_stats`.
    pub(crate) emit_stats: bool,
    /// The site's resolve strategy.
    pub(crate) resolve_strategy: Option<ResolveStrategy>,
}

/// A user's `explicit_sites`, indexed for matching.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sites {
    exact: HashMap<Host, Arc<Site>>,
    child: HashMap<String, Arc<Site>>,
    subnet: Vec<(IpNet, Arc<Site>)>,
}

/// Checks that a site id is a metric node name: letters, digits, `-`, `_`, `.`, `/`.
fn site_id(v: &Val<'_>) -> Result<Arc<str>, ConfigError> {
    let s = v.as_text()?;
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(v.err(format!(
            "invalid site id {s:?} (letters, digits, `-`, `_`, `.`, `/`)"
        )));
    }
    Ok(Arc::from(s.as_str()))
}

impl Sites {
    /// Reads `explicit_sites`.
    pub(crate) fn parse(v: &Val<'_>) -> Result<Sites, ConfigError> {
        let mut sites = Sites::default();
        let mut ids = std::collections::HashSet::new();
        for item in v.seq()? {
            let mut m = item.map()?;
            let id_val = m.required("id")?;
            let id = site_id(&id_val)?;
            if !ids.insert(id.clone()) {
                return Err(id_val.err(format!("duplicate site id `{id}`")));
            }
            let exact = m.get("exact_match").map(|x| values::host(&x)).transpose()?;
            let child = m.get("child_match").map(|x| domain(&x)).transpose()?;
            let subnet = m
                .get("subnet_match")
                .map(|x| values::ip_net(&x))
                .transpose()?;
            let emit_stats = m.get("emit_stats").map(|x| x.as_bool()).transpose()?;
            let resolve_strategy = m
                .get("resolve_strategy")
                .map(|x| values::resolve_strategy(&x))
                .transpose()?;
            m.unimplemented(&[
                "duration_stats",
                "tls_client",
                "http_rsp_header_recv_timeout",
            ])?;
            m.finish()?;
            let site = Arc::new(Site {
                id,
                emit_stats: emit_stats.unwrap_or(false),
                resolve_strategy,
            });
            let mut matched = false;
            if let Some(h) = exact {
                matched = true;
                if sites.exact.insert(h.clone(), Arc::clone(&site)).is_some() {
                    return Err(item.err(format!("another site matches {h} exactly")));
                }
            }
            if let Some(d) = child {
                matched = true;
                if sites.child.insert(d.clone(), Arc::clone(&site)).is_some() {
                    return Err(item.err(format!("another site matches children of {d}")));
                }
            }
            if let Some(n) = subnet {
                matched = true;
                if sites.subnet.iter().any(|(x, _)| *x == n) {
                    return Err(item.err(format!("another site matches subnet {n}")));
                }
                sites.subnet.push((n, Arc::clone(&site)));
            }
            if !matched {
                return Err(item.err("a site needs `exact_match`, `child_match` or `subnet_match`"));
            }
        }
        Ok(sites)
    }

    /// The site a host belongs to: exact, then the longest child match, then the longest subnet.
    pub(crate) fn find(&self, host: &Host) -> Option<&Arc<Site>> {
        if let Some(s) = self.exact.get(host) {
            return Some(s);
        }
        match host {
            Host::Domain(d) => parent_match(&self.child, d).map(|(_, s)| s),
            Host::Ip(ip) => {
                let ip: IpAddr = ip.to_canonical();
                self.subnet
                    .iter()
                    .filter(|(n, _)| n.contains(&ip))
                    .max_by_key(|(n, _)| n.prefix_len())
                    .map(|(_, s)| s)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn node(yaml: &str) -> px_yaml::Node {
        px_yaml::load_str(yaml, Path::new("r.yaml")).unwrap()
    }

    #[test]
    fn redirection_of_the_user_guide() {
        let n = node(
            "- exact: t1.example.net\n  to: 192.168.10.1\n- exact: t2.example.net\n  to: t1.example.net\n\
             - child: example.com\n  to: example.net\n- parent: multi.test\n  to: [10.0.0.1, 10.0.0.2]\n",
        );
        let r = Redirection::parse(&Val::root(&n, "r")).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            r.lookup("t1.example.net"),
            Some(Redirect::Addrs(vec![ip("192.168.10.1")]))
        );
        assert_eq!(
            r.lookup("t2.example.net"),
            Some(Redirect::Name("t1.example.net".into()))
        );
        assert_eq!(
            r.lookup("a.b.example.com"),
            Some(Redirect::Name("a.b.example.net".into()))
        );
        assert_eq!(
            r.lookup("example.com"),
            Some(Redirect::Name("example.net".into()))
        );
        assert_eq!(r.lookup("xexample.com"), None);
        assert_eq!(
            r.lookup("x.multi.test"),
            Some(Redirect::Addrs(vec![ip("10.0.0.1"), ip("10.0.0.2")]))
        );
        assert_eq!(r.lookup("other.net"), None);
        let n = node("{a.test: 127.0.0.1, b.test: c.test}");
        let r = Redirection::parse(&Val::root(&n, "r")).unwrap();
        assert_eq!(
            r.lookup("a.test"),
            Some(Redirect::Addrs(vec![ip("127.0.0.1")]))
        );
        assert_eq!(r.lookup("b.test"), Some(Redirect::Name("c.test".into())));
        for bad in [
            "- exact: a.test\n",
            "- exact: a.test\n  child: b.test\n  to: 1.2.3.4\n",
            "- exact: a.test\n  to: [1.2.3.4, b.test]\n",
            "- child: a.test\n  to: x\n  bogus: 1\n",
        ] {
            assert!(
                Redirection::parse(&Val::root(&node(bad), "r")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sites() {
        let n = node(
            "- id: example-net\n  child_match: example.net\n  emit_stats: true\n  resolve_strategy: {query: ipv4only}\n\
             - id: one\n  exact_match: www.example.net\n- id: lan\n  subnet_match: 10.0.0.0/8\n\
             - id: lan2\n  subnet_match: 10.1.0.0/16\n",
        );
        let s = Sites::parse(&Val::root(&n, "s")).unwrap();
        let d = |x: &str| Host::Domain(x.into());
        let id = |h: Host| s.find(&h).map(|s| s.id.to_string());
        assert_eq!(id(d("a.example.net")).as_deref(), Some("example-net"));
        assert_eq!(id(d("example.net")).as_deref(), Some("example-net"));
        assert_eq!(id(d("www.example.net")).as_deref(), Some("one"));
        assert_eq!(
            id(Host::Ip("10.1.2.3".parse().unwrap())).as_deref(),
            Some("lan2")
        );
        assert_eq!(
            id(Host::Ip("10.2.2.3".parse().unwrap())).as_deref(),
            Some("lan")
        );
        assert_eq!(id(d("example.org")), None);
        let site = s.find(&d("x.example.net")).unwrap();
        assert!(site.emit_stats);
        assert_eq!(
            site.resolve_strategy.map(|r| r.query),
            Some(px_core::QueryStrategy::Ipv4Only)
        );
        for bad in [
            "- id: a\n",
            "- id: a\n  child_match: x.test\n- id: a\n  child_match: y.test\n",
            "- id: 'bad id'\n  child_match: x.test\n",
            "- id: a\n  child_match: x.test\n  tls_client: {}\n",
        ] {
            assert!(Sites::parse(&Val::root(&node(bad), "s")).is_err(), "{bad}");
        }
    }
}
