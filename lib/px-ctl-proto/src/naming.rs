//! Control socket names. Several daemon groups, and an old and a new daemon of
//! one group, live side by side in one control directory:
//!
//! - `<dir>/<group>_<pid>.sock`: one daemon's own socket;
//! - `<dir>/<group>.sock`: a symlink to the socket of the group's newest
//!   daemon, replaced atomically when a new one starts; `g3proxy-ctl` without
//!   `-p` and a starting successor use it.
//!
//! An empty group name is written `_` in the link name (`_.sock`).

use std::path::{Path, PathBuf};

/// The default control directory (systemd's `RuntimeDirectory=g3proxy`).
pub const DEFAULT_CONTROL_DIR: &str = "/run/g3proxy";

/// `<dir>/<group>_<pid>.sock`
pub fn unique_socket(dir: &Path, group: &str, pid: u32) -> PathBuf {
    dir.join(format!("{group}_{pid}.sock"))
}

/// `<dir>/<group>.sock` (`_.sock` for the empty group).
pub fn group_link(dir: &Path, group: &str) -> PathBuf {
    if group.is_empty() {
        dir.join("_.sock")
    } else {
        dir.join(format!("{group}.sock"))
    }
}

/// The socket to talk to: the daemon with that pid, or the group's newest.
pub fn target_socket(dir: &Path, group: &str, pid: Option<u32>) -> PathBuf {
    match pid {
        Some(pid) => unique_socket(dir, group, pid),
        None => group_link(dir, group),
    }
}

/// Checks a group name: it becomes part of a file name.
pub fn check_group(group: &str) -> Result<(), String> {
    if group.len() > 64 {
        return Err("group name is longer than 64 characters".into());
    }
    if let Some(c) = group
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '@')) && *c != '_')
    {
        return Err(format!(
            "group name may hold only ASCII letters, digits, `-`, `_`, `.` and `@` (found {c:?})"
        ));
    }
    if group.starts_with('.') {
        return Err("group name may not start with `.`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = Path::new("/run/g3proxy");
        assert_eq!(
            unique_socket(d, "edge", 42),
            PathBuf::from("/run/g3proxy/edge_42.sock")
        );
        assert_eq!(
            group_link(d, "edge"),
            PathBuf::from("/run/g3proxy/edge.sock")
        );
        assert_eq!(group_link(d, ""), PathBuf::from("/run/g3proxy/_.sock"));
        assert_eq!(
            target_socket(d, "", Some(7)),
            PathBuf::from("/run/g3proxy/_7.sock")
        );
        assert!(check_group("edge-1.a_b@x").is_ok());
        assert!(check_group("a/b").is_err());
        assert!(check_group("..").is_err());
    }
}
