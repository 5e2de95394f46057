//! `deny_all` (also `denyall`): a resolver that refuses every name.
//!
//! Every query fails with `ResolveError::Refused`, which escapers report as a
//! policy refusal (HTTP 403, SOCKS5 reply 0x02). Useful to forbid names on an
//! escaper that must only ever connect to IP literals.
//!
//! Keys: none besides `name` and `type`.
//!
//! ```yaml
//! resolver:
//!   - name: nothing
//!     type: deny_all
//! ```

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use px_core::{AddrFamily, ModuleLookup, ResolveError, Resolver};
use px_yaml::{ConfigError, MapReader};

/// The `deny_all` resolver.
#[derive(Debug)]
pub struct DenyAll {
    name: String,
}

impl DenyAll {
    /// A `deny_all` resolver named `name`.
    pub fn new(name: &str) -> Self {
        DenyAll {
            name: name.to_string(),
        }
    }
}

#[async_trait]
impl Resolver for DenyAll {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "deny_all"
    }

    async fn resolve_family(
        &self,
        _domain: &str,
        _family: AddrFamily,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        Err(ResolveError::Refused)
    }
}

/// Builds a `deny_all` resolver; any key besides `name` and `type` is an error.
pub fn build(
    name: &str,
    map: MapReader<'_>,
    _lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    map.finish()?;
    Ok(Arc::new(DenyAll::new(name)))
}
