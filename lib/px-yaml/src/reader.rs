//! Reading config nodes by key path.
//!
//! [`Val`] is a node plus the key path that led to it, so every error can name
//! file, line, column and path. [`MapReader`] hands out a map's keys (in `_` or
//! `-` spelling) and, at [`MapReader::finish`], reports the keys nobody took.
//!
//! ```
//! # use px_yaml::{load_str, Val};
//! let node = load_str("listen-address: 1\n", std::path::Path::new("x.yaml")).unwrap();
//! let mut map = Val::root(&node, "server[http]").map().unwrap();
//! assert!(map.get("listen_address").is_some());
//! map.finish().unwrap();
//! ```

use std::path::Path;

use crate::error::ConfigError;
use crate::node::{Node, Value};

/// Normalizes a key: lower case, `-` as `_` (g3proxy accepts both spellings).
pub fn normalize_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

/// Normalizes a module `type:` name for matching: lower case without `_` and `-`,
/// so `HttpProxy`, `http_proxy` and `http-proxy` are one.
pub fn normalize_type(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A node reached by a key path.
#[derive(Debug, Clone)]
pub struct Val<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> Val<'a> {
    /// The root of a document (or a module), with the path prefix to report.
    pub fn root(node: &'a Node, path: &str) -> Self {
        Val {
            node,
            path: path.to_string(),
        }
    }

    /// The node itself.
    pub fn node(&self) -> &'a Node {
        self.node
    }

    /// The key path to this node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file this node is in.
    pub fn file(&self) -> &'a Path {
        self.node.pos.file.as_path()
    }

    /// An error at this node.
    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.node.pos.file.to_path_buf(),
            line: self.node.pos.line,
            col: self.node.pos.col,
            key_path: self.path.clone(),
            message: message.into(),
        }
    }

    /// A child value at a sub path (for list items: `[0]`).
    pub fn child(&self, node: &'a Node, suffix: &str) -> Val<'a> {
        let path = if suffix.starts_with('[') || self.path.is_empty() {
            format!("{}{suffix}", self.path)
        } else {
            format!("{}.{suffix}", self.path)
        };
        Val { node, path }
    }

    /// True for `~` / empty values.
    pub fn is_null(&self) -> bool {
        matches!(self.node.value, Value::Null)
    }

    /// A string value (plain or quoted).
    pub fn as_str(&self) -> Result<&'a str, ConfigError> {
        match &self.node.value {
            Value::Str(s) => Ok(s.as_str()),
            _ => Err(self.err("expected a string")),
        }
    }

    /// Any scalar as text: `80` and `"80"` both give "80".
    pub fn as_text(&self) -> Result<String, ConfigError> {
        self.node
            .scalar_text()
            .ok_or_else(|| self.err("expected a scalar value"))
    }

    /// A boolean: `true`/`false`, also `yes`/`no`, `on`/`off` and `1`/`0`.
    pub fn as_bool(&self) -> Result<bool, ConfigError> {
        match &self.node.value {
            Value::Bool(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(self.err(format!("expected a boolean, got {s:?}"))),
            },
            _ => Err(self.err("expected a boolean")),
        }
    }

    /// A non-negative integer (also written as a string).
    pub fn as_u64(&self) -> Result<u64, ConfigError> {
        match &self.node.value {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            Value::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| self.err(format!("expected a non-negative integer, got {s:?}"))),
            _ => Err(self.err("expected a non-negative integer")),
        }
    }

    /// An integer that fits `T` (u16, u32, usize, ...).
    pub fn as_int<T: TryFrom<u64>>(&self) -> Result<T, ConfigError> {
        let v = self.as_u64()?;
        T::try_from(v).map_err(|_| self.err(format!("integer {v} is out of range")))
    }

    /// A float (integers are accepted).
    pub fn as_f64(&self) -> Result<f64, ConfigError> {
        match &self.node.value {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            Value::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| self.err(format!("expected a number, got {s:?}"))),
            _ => Err(self.err("expected a number")),
        }
    }

    /// A map, to be read key by key.
    pub fn map(&self) -> Result<MapReader<'a>, ConfigError> {
        match &self.node.value {
            Value::Map(entries) => Ok(MapReader {
                val: self.clone(),
                entries,
                used: vec![false; entries.len()],
            }),
            Value::Null => Ok(MapReader {
                val: self.clone(),
                entries: &[],
                used: Vec::new(),
            }),
            _ => Err(self.err("expected a map")),
        }
    }

    /// True when the value is a map.
    pub fn is_map(&self) -> bool {
        matches!(self.node.value, Value::Map(_))
    }

    /// True when the value is a sequence.
    pub fn is_seq(&self) -> bool {
        matches!(self.node.value, Value::Seq(_))
    }

    /// A sequence's items.
    pub fn seq(&self) -> Result<Vec<Val<'a>>, ConfigError> {
        match &self.node.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, n)| self.child(n, &format!("[{i}]")))
                .collect()),
            _ => Err(self.err("expected a list")),
        }
    }

    /// g3proxy's "list" type: one value or a sequence of them.
    pub fn list(&self) -> Vec<Val<'a>> {
        match &self.node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| self.child(n, &format!("[{i}]")))
                .collect(),
            Value::Null => Vec::new(),
            _ => vec![self.clone()],
        }
    }
}

/// A map being read: keys are taken one by one; the rest are errors at `finish`.
#[derive(Debug)]
pub struct MapReader<'a> {
    val: Val<'a>,
    entries: &'a [(Node, Node)],
    used: Vec<bool>,
}

impl<'a> MapReader<'a> {
    /// The map as a value (its path and position).
    pub fn val(&self) -> &Val<'a> {
        &self.val
    }

    /// An error at the map itself.
    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        self.val.err(message)
    }

    /// Takes a key (matched in `_` or `-` spelling, any case).
    pub fn get(&mut self, key: &str) -> Option<Val<'a>> {
        let want = normalize_key(key);
        let mut found = None;
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if k.scalar_text().map(|t| normalize_key(&t)) == Some(want.clone()) {
                self.used[i] = true;
                found = Some(self.val.child(v, &want));
            }
        }
        found
    }

    /// Takes the first present key of several aliases (`upload`, `north`, ...).
    pub fn get_any(&mut self, keys: &[&str]) -> Option<Val<'a>> {
        let mut found = None;
        for k in keys {
            if let Some(v) = self.get(k)
                && found.is_none()
            {
                found = Some(v);
            }
        }
        found
    }

    /// Takes a key that must be present.
    pub fn required(&mut self, key: &str) -> Result<Val<'a>, ConfigError> {
        self.get(key)
            .ok_or_else(|| self.err(format!("missing required key `{key}`")))
    }

    /// True when the key is present (does not take it).
    pub fn has(&self, key: &str) -> bool {
        let want = normalize_key(key);
        self.entries
            .iter()
            .any(|(k, _)| k.scalar_text().map(|t| normalize_key(&t)) == Some(want.clone()))
    }

    /// Errors when any of these keys is present: g3proxy knows them, this project
    /// does not implement them yet. Never silently ignored.
    pub fn unimplemented(&mut self, keys: &[&str]) -> Result<(), ConfigError> {
        for key in keys {
            if let Some(v) = self.get(key) {
                return Err(v.err(format!(
                    "key `{key}` is known to g3proxy but not implemented yet by this proxy"
                )));
            }
        }
        Ok(())
    }

    /// All entries not yet taken, with their key text (for maps with free keys).
    pub fn rest(&mut self) -> Vec<(String, Val<'a>)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                let key = k.scalar_text().unwrap_or_default();
                out.push((key.clone(), self.val.child(v, &key)));
            }
        }
        out
    }

    /// Ends reading: the first key nobody took is an "unknown key" error.
    pub fn finish(self) -> Result<(), ConfigError> {
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                let key = k.scalar_text().unwrap_or_else(|| "?".to_string());
                return Err(self
                    .val
                    .child(k, &normalize_key(&key))
                    .err(format!("unknown key `{key}`")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::node::load_str;

    #[test]
    fn unknown_key_is_reported_with_position() {
        let n = load_str("a: 1\nbogus-key: 2\n", Path::new("m.yaml")).unwrap();
        let mut m = Val::root(&n, "server[x]").map().unwrap();
        assert_eq!(m.get("a").unwrap().as_u64().unwrap(), 1);
        let e = m.finish().unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.key_path, "server[x].bogus_key");
        assert!(e.message.contains("unknown key"));
    }

    #[test]
    fn dash_and_underscore() {
        let n = load_str("user-group: a\n", Path::new("m.yaml")).unwrap();
        let mut m = Val::root(&n, "").map().unwrap();
        assert_eq!(m.get("user_group").unwrap().as_str().unwrap(), "a");
        m.finish().unwrap();
        assert_eq!(normalize_type("HttpProxy"), normalize_type("http_proxy"));
        assert_eq!(normalize_type("c-ares"), "cares");
    }
}
