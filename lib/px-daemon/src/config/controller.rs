//! `controller:`: the local control socket (g3proxy's keys).
//!
//! ```yaml
//! controller:
//!   local:
//!     recv_timeout: 30    # seconds (or a duration: 30s); a client silent this long is dropped
//!     send_timeout: 1     # seconds; a client that does not read replies this long is dropped
//! ```

use std::time::Duration;

use px_yaml::{ConfigError, Val, Value, values};

/// The `controller:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// How long a control connection may stay silent (g3proxy default 30 s).
    pub recv_timeout: Duration,
    /// How long a reply may wait for the client to read it (g3proxy default 1 s).
    pub send_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            recv_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(1),
        }
    }
}

/// A timeout as g3proxy writes it (whole seconds) or as a duration string.
fn seconds(v: &Val<'_>) -> Result<Duration, ConfigError> {
    let d = match &v.node().value {
        Value::Int(_) => Duration::from_secs(v.as_u64()?),
        _ => values::duration(v)?,
    };
    if d.is_zero() {
        return Err(v.err("timeout must not be 0"));
    }
    Ok(d)
}

impl ControllerConfig {
    /// Parses `controller:` (only the `local` controller exists).
    pub fn parse(v: &Val<'_>) -> Result<Self, ConfigError> {
        let mut cfg = ControllerConfig::default();
        if v.is_null() {
            return Ok(cfg);
        }
        let mut m = v.map()?;
        if let Some(local) = m.get("local")
            && !local.is_null()
        {
            let mut lm = local.map()?;
            if let Some(x) = lm.get("recv_timeout") {
                cfg.recv_timeout = seconds(&x)?;
            }
            if let Some(x) = lm.get("send_timeout") {
                cfg.send_timeout = seconds(&x)?;
            }
            lm.finish()?;
        }
        m.finish()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<ControllerConfig, ConfigError> {
        let n = px_yaml::load_str(text, Path::new("m.yaml")).unwrap();
        ControllerConfig::parse(&Val::root(&n, "controller"))
    }

    #[test]
    fn forms() {
        let c = parse("{local: {recv_timeout: 5, send_timeout: 2s}}").unwrap();
        assert_eq!(c.recv_timeout, Duration::from_secs(5));
        assert_eq!(c.send_timeout, Duration::from_secs(2));
        assert_eq!(parse("{local: ~}").unwrap(), ControllerConfig::default());
        assert!(parse("{local: {recv_timeout: 0}}").is_err());
        let e = parse("{remote: {}}").unwrap_err();
        assert!(e.to_string().contains("remote"), "{e}");
    }
}
