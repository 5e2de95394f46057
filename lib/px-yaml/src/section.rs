//! Module sections (`server:`, `escaper:`, ...) written inline as a list, as a
//! path to a file, or as a path to a directory of files with the main file's suffix.
//!
//! ```yaml
//! server:                 # inline
//!   - name: http
//!     type: http_proxy
//! escaper: escaper.yaml   # one file holding a list (or one map)
//! resolver: resolver.d/   # every *.yaml in the directory, by name order
//! ```

use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::node::{Node, Value, load_file};
use crate::reader::Val;

/// Where a module's document came from: its own file, or inline in another.
#[derive(Debug, Clone)]
pub struct ModuleDoc {
    /// The module's YAML map.
    pub node: Node,
    /// The file that holds it.
    pub file: PathBuf,
}

/// Resolves a path written in a config file relative to that file's directory.
pub fn resolve_path(base_file: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Reads a module section: returns one document per module, in order.
/// `suffix` is the main file's extension (`yaml`, `yml`, `conf`).
pub fn read_section(v: &Val<'_>, suffix: &str) -> Result<Vec<ModuleDoc>, ConfigError> {
    match &v.node().value {
        Value::Null => Ok(Vec::new()),
        Value::Seq(_) | Value::Map(_) => docs_from_node(v.node(), v.path()),
        Value::Str(p) => {
            let path = resolve_path(v.file(), p);
            if path.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                    .map_err(|e| v.err(format!("cannot read directory {}: {e}", path.display())))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_file() && p.extension().and_then(|e| e.to_str()) == Some(suffix)
                    })
                    .collect();
                files.sort();
                let mut out = Vec::new();
                for f in files {
                    let node = load_file(&f)?;
                    out.extend(docs_from_node(&node, v.path())?);
                }
                Ok(out)
            } else if path.is_file() {
                if path.extension().and_then(|e| e.to_str()) != Some(suffix) {
                    return Err(v.err(format!(
                        "{} must have the main file's suffix `.{suffix}`",
                        path.display()
                    )));
                }
                let node = load_file(&path)?;
                docs_from_node(&node, v.path())
            } else {
                Err(v.err(format!("no such file or directory: {}", path.display())))
            }
        }
        _ => Err(v.err("expected a list of modules, a file path or a directory path")),
    }
}

fn docs_from_node(node: &Node, path: &str) -> Result<Vec<ModuleDoc>, ConfigError> {
    let val = Val::root(node, path);
    let items = match &node.value {
        Value::Null => return Ok(Vec::new()),
        Value::Map(_) => vec![val],
        Value::Seq(_) => val.seq()?,
        _ => return Err(val.err("expected a list of modules")),
    };
    items
        .into_iter()
        .map(|item| {
            if !item.is_map() {
                return Err(item.err("a module must be a map with `name` and `type`"));
            }
            Ok(ModuleDoc {
                node: item.node().clone(),
                file: item.file().to_path_buf(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::node::load_str;

    #[test]
    fn inline_file_and_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("esc.yaml"), "- name: a\n  type: x\n").unwrap();
        std::fs::create_dir(dir.path().join("srv.d")).unwrap();
        std::fs::write(dir.path().join("srv.d/1.yaml"), "name: s1\ntype: y\n").unwrap();
        std::fs::write(dir.path().join("srv.d/2.yaml"), "- name: s2\n  type: y\n").unwrap();
        std::fs::write(dir.path().join("srv.d/ignored.txt"), "junk").unwrap();
        let main = dir.path().join("main.yaml");
        let text = "escaper: esc.yaml\nserver: srv.d\nresolver:\n  - name: r\n    type: z\n";
        std::fs::write(&main, text).unwrap();
        let n = load_str(text, &main).unwrap();
        let mut m = Val::root(&n, "").map().unwrap();
        let e = read_section(&m.get("escaper").unwrap(), "yaml").unwrap();
        assert_eq!(e.len(), 1);
        assert!(e[0].file.ends_with("esc.yaml"));
        let s = read_section(&m.get("server").unwrap(), "yaml").unwrap();
        assert_eq!(s.len(), 2);
        let r = read_section(&m.get("resolver").unwrap(), "yaml").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].node.pos.line, 4);
    }
}
