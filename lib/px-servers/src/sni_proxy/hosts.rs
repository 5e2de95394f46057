//! `allowed_hosts` (aliases `allowed_sites`, `hosts`): which names sni_proxy serves, and where
//! each goes. g3proxy's "host matched object" of SNI host configs:
//!
//! ```yaml
//! allowed_hosts:
//!   - exact_match: [www.example.net, example.net]
//!     redirect_host: www.example.net   # connect there instead (the port is kept)
//!   - child_match: example.org         # example.org and every name under it
//!     redirect_port: 8443              # connect to that port instead
//!   - set_default: true                # every other name, unchanged
//! ```
//!
//! Each entry has match keys (`exact_match`: hosts; `child_match`: parent domains; each one value
//! or a list; `set_default: true`, or no match key at all: the default entry) and the host config
//! (`redirect_host`, `redirect_port`). An exact match wins over a child match, a longer parent
//! over a shorter one, and the default applies when nothing matches. With `allowed_hosts` set and
//! no match (and no default), the name is denied.

use std::collections::HashMap;
use std::sync::Arc;

use px_core::{Host, UpstreamAddr};
use px_yaml::{ConfigError, Val, values};

/// Where one matched name goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SniHost {
    /// Connect to this host instead.
    pub(crate) redirect_host: Option<Host>,
    /// Connect to this port instead.
    pub(crate) redirect_port: Option<u16>,
}

impl SniHost {
    /// The address to connect to for a requested one.
    pub(crate) fn redirect(&self, orig: &UpstreamAddr) -> UpstreamAddr {
        UpstreamAddr::new(
            self.redirect_host
                .clone()
                .unwrap_or_else(|| orig.host.clone()),
            self.redirect_port.unwrap_or(orig.port),
        )
    }
}

/// The parsed `allowed_hosts`.
#[derive(Debug, Default)]
pub(crate) struct AllowedHosts {
    exact: HashMap<Host, Arc<SniHost>>,
    /// Parent domains, longest first.
    child: Vec<(String, Arc<SniHost>)>,
    default: Option<Arc<SniHost>>,
}

impl AllowedHosts {
    /// Parses one entry or a list of them.
    pub(crate) fn parse(v: &Val<'_>) -> Result<AllowedHosts, ConfigError> {
        let mut out = AllowedHosts::default();
        for item in v.list() {
            let mut m = item.map()?;
            let exact = m.get("exact_match");
            let child = m.get("child_match");
            let set_default = match m.get("set_default") {
                Some(b) => b.as_bool()?,
                None => false,
            };
            let cfg = SniHost {
                redirect_host: m
                    .get("redirect_host")
                    .map(|h| values::host(&h))
                    .transpose()?,
                redirect_port: m.get("redirect_port").map(|p| p.as_int()).transpose()?,
            };
            m.finish()?;
            let cfg = Arc::new(cfg);
            let is_default = set_default || (exact.is_none() && child.is_none());
            if let Some(e) = &exact {
                for h in e.list() {
                    let host = values::host(&h)?;
                    if out.exact.insert(host, Arc::clone(&cfg)).is_some() {
                        return Err(h.err("this host is matched twice"));
                    }
                }
            }
            if let Some(c) = &child {
                for d in c.list() {
                    let text = d.as_text()?;
                    let domain = text.trim().trim_start_matches('.').trim_end_matches('.');
                    if Host::parse(domain)
                        .and_then(|h| h.domain().map(str::to_string))
                        .is_none()
                    {
                        return Err(d.err(format!("invalid domain {text:?}")));
                    }
                    let domain = domain.to_ascii_lowercase();
                    if out.child.iter().any(|(p, _)| *p == domain) {
                        return Err(d.err("this domain is matched twice"));
                    }
                    out.child.push((domain, Arc::clone(&cfg)));
                }
            }
            if is_default {
                if out.default.is_some() {
                    return Err(item.err("only one default entry is allowed"));
                }
                out.default = Some(cfg);
            }
        }
        out.child.sort_by_key(|c| std::cmp::Reverse(c.0.len()));
        Ok(out)
    }

    /// The config for a requested host, or `None` when it is not allowed.
    pub(crate) fn find(&self, host: &Host) -> Option<&Arc<SniHost>> {
        if let Some(c) = self.exact.get(host) {
            return Some(c);
        }
        if let Host::Domain(d) = host {
            for (parent, c) in &self.child {
                let under = d.len() > parent.len()
                    && d.ends_with(parent.as_str())
                    && d.as_bytes()[d.len() - parent.len() - 1] == b'.';
                if d == parent || under {
                    return Some(c);
                }
            }
        }
        self.default.as_ref()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use px_yaml::load_str;
    use std::path::Path;

    fn parse(yaml: &str) -> Result<AllowedHosts, ConfigError> {
        let n = load_str(yaml, Path::new("t.yaml")).unwrap();
        AllowedHosts::parse(&Val::root(&n, "allowed_hosts"))
    }

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn matching_order_and_redirects() {
        let h = parse(
            "- exact_match: [www.example.net, example.net]\n  redirect_host: www.example.net:443\n\
             - child_match: example.org\n- child_match: deep.example.org\n  redirect_port: 8443\n",
        );
        // g3proxy's own example writes a port in redirect_host: that is not a host
        assert!(h.is_err());
        let h = parse(
            "- exact_match: [www.example.net, example.net]\n  redirect_host: www.example.net\n\
             - child_match: example.org\n- child_match: deep.example.org\n  redirect_port: 8443\n",
        )
        .unwrap();
        let up = UpstreamAddr::new(host("example.net"), 443);
        let c = h.find(&host("example.net")).unwrap();
        assert_eq!(c.redirect(&up).to_string(), "www.example.net:443");
        assert!(
            h.find(&host("a.example.org"))
                .unwrap()
                .redirect_port
                .is_none()
        );
        assert_eq!(
            h.find(&host("x.deep.example.org")).unwrap().redirect_port,
            Some(8443)
        );
        assert!(h.find(&host("example.org")).is_some());
        assert!(h.find(&host("badexample.org")).is_none());
        assert!(h.find(&host("other.test")).is_none());
    }

    #[test]
    fn defaults() {
        let h = parse("- exact_match: a.test\n- redirect_port: 1\n").unwrap();
        assert_eq!(h.find(&host("b.test")).unwrap().redirect_port, Some(1));
        let h = parse("exact_match: a.test\nset_default: true\nredirect_port: 2\n").unwrap();
        assert_eq!(h.find(&host("a.test")).unwrap().redirect_port, Some(2));
        assert_eq!(h.find(&host("z.test")).unwrap().redirect_port, Some(2));
        assert!(parse("- {}\n- {}\n").is_err(), "two defaults");
        assert!(parse("- {exact_match: a.test, bogus: 1}\n").is_err());
    }
}
