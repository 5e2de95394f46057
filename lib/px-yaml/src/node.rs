//! The config tree: every node knows its file, line and column.
//!
//! Built from saphyr's `MarkedYamlOwned`; `<<` merge keys are applied while
//! converting (keys written in the map win over merged ones).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use crate::error::ConfigError;

/// Where a node starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file it was read from.
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// A YAML value with positions.
#[derive(Debug, Clone)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (plain or quoted).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping in document order; keys are nodes (strings in practice).
    Map(Vec<(Node, Node)>),
}

/// A YAML node: a value and where it starts.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Its position.
    pub pos: Pos,
}

impl Node {
    /// The scalar as text (strings, numbers and bools), `None` for collections and null.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A stable text rendering of the value without positions, to compare configs.
    pub fn fingerprint(&self) -> String {
        let mut out = String::new();
        self.fingerprint_into(&mut out);
        out
    }

    fn fingerprint_into(&self, out: &mut String) {
        match &self.value {
            Value::Null => out.push('~'),
            Value::Bool(b) => out.push_str(if *b { "T" } else { "F" }),
            Value::Int(i) => out.push_str(&format!("i{i}")),
            Value::Float(f) => out.push_str(&format!("f{f}")),
            Value::Str(s) => out.push_str(&format!("s{}:{s}", s.len())),
            Value::Seq(items) => {
                out.push('[');
                for i in items {
                    i.fingerprint_into(out);
                    out.push(',');
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (k, v) in entries {
                    k.fingerprint_into(out);
                    out.push('=');
                    v.fingerprint_into(out);
                    out.push(',');
                }
                out.push('}');
            }
        }
    }
}

/// Reads and parses a YAML file; an empty file is `Null`.
pub fn load_file(path: &Path) -> Result<Node, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read file: {e}")))?;
    load_str(&text, path)
}

/// Parses YAML text as if read from `file`; only the first document is used.
pub fn load_str(text: &str, file: &Path) -> Result<Node, ConfigError> {
    let file = Arc::new(file.to_path_buf());
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: e.marker().line(),
        col: e.marker().col() + 1,
        key_path: String::new(),
        message: format!("invalid YAML: {}", e.info()),
    })?;
    match docs.into_iter().next() {
        Some(doc) => convert(doc, &file),
        None => Ok(Node {
            value: Value::Null,
            pos: Pos {
                file,
                line: 1,
                col: 1,
            },
        }),
    }
}

fn convert(y: MarkedYamlOwned, file: &Arc<PathBuf>) -> Result<Node, ConfigError> {
    let pos = Pos {
        file: Arc::clone(file),
        line: y.span.start.line(),
        col: y.span.start.col() + 1,
    };
    let bad = |pos: &Pos, msg: &str| ConfigError {
        file: pos.file.to_path_buf(),
        line: pos.line,
        col: pos.col,
        key_path: String::new(),
        message: msg.to_string(),
    };
    let value = match y.data {
        YamlDataOwned::Value(s) => match s {
            ScalarOwned::Null => Value::Null,
            ScalarOwned::Boolean(b) => Value::Bool(b),
            ScalarOwned::Integer(i) => Value::Int(i),
            ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
            ScalarOwned::String(s) => Value::Str(s),
        },
        YamlDataOwned::Representation(s, _, _) => Value::Str(s),
        YamlDataOwned::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .map(|i| convert(i, file))
                .collect::<Result<_, _>>()?,
        ),
        YamlDataOwned::Mapping(map) => {
            let mut entries: Vec<(Node, Node)> = Vec::with_capacity(map.len());
            let mut merged: Vec<(Node, Node)> = Vec::new();
            for (k, v) in map {
                let k = convert(k, file)?;
                let v = convert(v, file)?;
                if matches!(&k.value, Value::Str(s) if s == "<<") {
                    let sources = match v.value {
                        Value::Map(m) => vec![m],
                        Value::Seq(items) => items
                            .into_iter()
                            .map(|i| match i.value {
                                Value::Map(m) => Ok(m),
                                _ => {
                                    Err(bad(&i.pos, "merge key `<<` takes a map or a list of maps"))
                                }
                            })
                            .collect::<Result<_, _>>()?,
                        _ => {
                            return Err(bad(
                                &v.pos,
                                "merge key `<<` takes a map or a list of maps",
                            ));
                        }
                    };
                    for m in sources {
                        merged.extend(m);
                    }
                } else {
                    entries.push((k, v));
                }
            }
            for (k, v) in merged {
                let kt = k.scalar_text();
                if !entries.iter().any(|(ek, _)| ek.scalar_text() == kt) {
                    entries.push((k, v));
                }
            }
            Value::Map(entries)
        }
        YamlDataOwned::Tagged(_, inner) => return convert(*inner, file),
        YamlDataOwned::Alias(_) => return Err(bad(&pos, "unresolved YAML alias")),
        YamlDataOwned::BadValue => return Err(bad(&pos, "invalid YAML value")),
    };
    Ok(Node { value, pos })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn positions_and_merge() {
        let text = "base: &b\n  x: 1\n  y: 2\nitem:\n  <<: *b\n  y: 3\n";
        let n = load_str(text, Path::new("t.yaml")).unwrap();
        let Value::Map(top) = &n.value else { panic!() };
        let (_, item) = &top[1];
        assert_eq!(item.pos.line, 5);
        let Value::Map(m) = &item.value else { panic!() };
        let texts: Vec<_> = m
            .iter()
            .map(|(k, v)| (k.scalar_text().unwrap(), v.scalar_text().unwrap()))
            .collect();
        assert_eq!(
            texts,
            vec![("y".into(), "3".into()), ("x".into(), "1".into())]
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let e = load_str("a: [1, 2\nb: c\n", Path::new("bad.yaml")).unwrap_err();
        assert!(e.line >= 1, "{e}");
        assert!(e.to_string().starts_with("bad.yaml:"), "{e}");
    }
}
