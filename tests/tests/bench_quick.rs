//! The benchmark's quick mode runs: `scripts/bench.sh --quick --peers none` against
//! the g3proxy under test, and every scenario yields a number for the direct path and
//! for this project (unless the project reports the scenario's server type as not
//! implemented yet). Only that it runs and measures is checked, never the numbers.
//!
//! bench.sh installs what quick mode needs (wrk, nginx) with apt when missing and
//! builds its std-only load tool (scripts/bench/loadgen) into target/bench/loadgen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use px_e2e::{cmd, daemon, workspace_root};

/// Every scenario of scripts/bench/bench.py, in its order.
const SCENARIOS: &[&str] = &[
    "http_forward",
    "connect_bulk",
    "connect_rate",
    "socks5_bulk",
    "socks5_rate",
    "tcp_stream_bulk",
    "tls_stream_handshake",
    "tls_stream_bulk",
    "idle_connect_10k",
];

/// Scenarios without a direct path (nothing to hold tunnels open without a proxy).
const NO_DIRECT: &[&str] = &["idle_connect_10k"];

#[test]
fn bench_quick_measures_every_scenario() {
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("result.json");
    let bin = daemon::g3proxy_bin();
    let mut c = Command::new("bash");
    c.arg(root.join("scripts/bench.sh"))
        .args(["--quick", "--peers", "none", "--json"])
        .arg(&json)
        .arg("--bin")
        .arg(&bin)
        .current_dir(&root);
    let out = cmd::run(&mut c, Duration::from_secs(85));
    assert!(
        out.success(),
        "scripts/bench.sh --quick failed:\n{}",
        out.describe()
    );

    let tsv = std::fs::read_to_string(dir.path().join("result.tsv"))
        .unwrap_or_else(|e| panic!("no result.tsv ({e}):\n{}", out.describe()));
    let md = std::fs::read_to_string(dir.path().join("result.md")).unwrap_or_default();
    assert!(
        json.is_file(),
        "no JSON written at {}:\n{}",
        json.display(),
        out.describe()
    );

    let cell = |scenario: &str, subject: &str| -> (String, String) {
        tsv.lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f.len() == 4 && f[0] == scenario && f[1] == subject)
            .map(|f| (f[2].to_string(), f[3].to_string()))
            .unwrap_or_else(|| panic!("no {scenario}/{subject} cell in:\n{tsv}\n{md}"))
    };
    let number = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0);

    let mut measured = 0;
    for &sc in SCENARIOS {
        let (status, value) = cell(sc, "direct");
        if NO_DIRECT.contains(&sc) {
            assert_eq!(status, "not_applicable", "{sc}/direct:\n{tsv}");
        } else {
            assert_eq!(status, "ok", "{sc}/direct did not measure:\n{tsv}\n{md}");
            assert!(
                number(&value).is_some(),
                "{sc}/direct gave no number: {value:?}\n{tsv}"
            );
        }
        let (status, value) = cell(sc, "project");
        match status.as_str() {
            "ok" => {
                assert!(
                    number(&value).is_some(),
                    "{sc}/project gave no number: {value:?}\n{tsv}"
                );
                measured += 1;
            }
            "not_implemented" => {}
            other => panic!("{sc}/project: {other}\n{tsv}\n{md}\n{}", out.describe()),
        }
    }
    // the forward proxy and SOCKS servers exist, so at least those were measured
    for sc in [
        "http_forward",
        "connect_bulk",
        "connect_rate",
        "socks5_bulk",
        "socks5_rate",
    ] {
        assert_eq!(cell(sc, "project").0, "ok", "{sc}/project:\n{tsv}\n{md}");
    }
    assert!(measured >= 5);
    assert!(md.contains("| scenario |"), "no Markdown table:\n{md}");
}
