//! The drift check between the schema and the committed generated code.
//!
//! `src/generated/STAMP` holds one line per file, `path hash` (FNV-1a 64 of
//! the bytes), for every `schema/*.capnp` and `src/generated/*.rs`, in path
//! order. `scripts/capnp-regen.sh` writes it right after regenerating; the
//! crate's test recomputes it, so editing the schema without regenerating, or
//! editing the generated code by hand, fails the tests.

use std::io;
use std::path::Path;

/// FNV-1a 64 of `data`, as 16 hex digits.
pub fn fnv1a(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn files(dir: &Path, ext: &str) -> io::Result<Vec<std::path::PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    Ok(v)
}

/// The stamp of the crate at `crate_dir` as it is on disk now.
pub fn compute(crate_dir: &Path) -> io::Result<String> {
    let mut out = String::new();
    for (sub, ext) in [("schema", "capnp"), ("src/generated", "rs")] {
        for p in files(&crate_dir.join(sub), ext)? {
            let data = std::fs::read(&p)?;
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            out.push_str(&format!("{sub}/{name} {}\n", fnv1a(&data)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    fn crate_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn generated_code_matches_schema() {
        let dir = crate_dir();
        let want = std::fs::read_to_string(dir.join("src/generated/STAMP")).unwrap();
        let have = compute(&dir).unwrap();
        assert_eq!(
            have, want,
            "schema/*.capnp or src/generated/ changed without regeneration: run scripts/capnp-regen.sh"
        );
    }

    /// Where the compiler and plugin are installed (by scripts/capnp-regen.sh),
    /// regenerate into a temp dir and compare byte for byte.
    #[test]
    fn regeneration_is_identical_when_the_compiler_is_here() {
        let dir = crate_dir();
        let plugin = dir.join("../../target/capnpc-tools/bin");
        let has_capnp = Command::new("capnp").arg("--version").output().is_ok();
        if !has_capnp || !plugin.join("capnpc-rust").exists() {
            eprintln!("capnp or capnpc-rust not installed: the STAMP check alone applies");
            return;
        }
        let out = tempfile::tempdir().unwrap();
        let path = format!(
            "{}:{}",
            plugin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("capnp");
        cmd.env("PATH", path)
            .arg("compile")
            .arg(format!("-orust:{}", out.path().display()))
            .arg(format!("--src-prefix={}", dir.join("schema").display()));
        for f in files(&dir.join("schema"), "capnp").unwrap() {
            cmd.arg(f);
        }
        let st = cmd.status().unwrap();
        assert!(st.success(), "capnp compile failed");
        for f in files(out.path(), "rs").unwrap() {
            let name = f.file_name().unwrap();
            let fresh = std::fs::read(&f).unwrap();
            let committed = std::fs::read(dir.join("src/generated").join(name)).unwrap();
            if fresh != committed {
                panic!(
                    "src/generated/{} differs from a fresh generation: run scripts/capnp-regen.sh",
                    name.to_string_lossy()
                );
            }
        }
    }
}
