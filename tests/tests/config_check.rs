//! `g3proxy -t -c PATH`: every folder under `examples/` passes; broken configs fail with
//! an error naming the file, the line and the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use px_e2e::cmd;
use px_e2e::config::Standard;
use px_e2e::daemon::{check_config, g3proxy_bin};
use px_e2e::workspace_root;

/// Whether `text` names line `line` (`file:LINE`, `:LINE:COL`, `line LINE`).
fn mentions_line(text: &str, line: usize) -> bool {
    let n = line.to_string();
    let lower = text.to_ascii_lowercase();
    for pat in [format!(":{n}"), format!("line {n}"), format!("line: {n}")] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(&pat) {
            let end = from + i + pat.len();
            let next = lower[end..].chars().next();
            if !next.map(|c| c.is_ascii_digit()).unwrap_or(false) {
                return true;
            }
            from = end;
        }
    }
    false
}

/// 1-based line number of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in config"))
}

fn assert_rejected(path: &Path, file_name: &str, line: usize, key: &str) {
    let (status, err) = check_config(path);
    assert!(
        !status.success(),
        "g3proxy -t accepted a broken config:\n{err}"
    );
    assert!(
        err.contains(file_name),
        "the error must name the file {file_name}:\n{err}"
    );
    assert!(
        mentions_line(&err, line),
        "the error must name line {line}:\n{err}"
    );
    assert!(
        err.contains(key),
        "the error must name the key {key}:\n{err}"
    );
}

#[test]
fn every_example_folder_passes_the_check() {
    let examples = workspace_root().join("examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&examples)
        .unwrap_or_else(|e| panic!("{}: {e}", examples.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no example folders under {}",
        examples.display()
    );
    let mut failures = Vec::new();
    for d in &dirs {
        let (status, err) = check_config(d);
        if !status.success() {
            failures.push(format!("{}: {status}\n{err}", d.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "examples rejected by g3proxy -t:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_good_config_passes_as_file_and_as_folder() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = Standard::new().http(18080).socks(11080).render();
    let file = dir.path().join("g3proxy.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (status, err) = check_config(&file);
    assert!(status.success(), "{err}\n{yaml}");

    let folder = dir.path().join("conf");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("main.yaml"), &yaml).unwrap();
    let (status, err) = check_config(&folder);
    assert!(status.success(), "-c DIR with main.yaml: {err}");
}

#[test]
fn unknown_key_is_reported_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = Standard::new()
        .http(18080)
        .http_key("no_such_key_for_px: 1")
        .render();
    let line = line_of(&yaml, "no_such_key_for_px");
    let file = dir.path().join("broken-unknown.yaml");
    std::fs::write(&file, &yaml).unwrap();
    assert_rejected(&file, "broken-unknown.yaml", line, "no_such_key_for_px");
}

#[test]
fn bad_value_is_reported_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = Standard::new()
        .http(18080)
        .http_key("req_header_recv_timeout: not-a-duration")
        .render();
    let line = line_of(&yaml, "not-a-duration");
    let file = dir.path().join("broken-value.yaml");
    std::fs::write(&file, &yaml).unwrap();
    assert_rejected(&file, "broken-value.yaml", line, "req_header_recv_timeout");
}

#[test]
fn error_in_an_included_folder_names_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = "---\nlog: stdout\nresolver:\n  - name: default\n    type: c-ares\n    server: 127.0.0.1:9\n\
                escaper:\n  - name: default\n    type: direct_fixed\n    resolver: default\n\
                server: server.d/\n";
    std::fs::write(dir.path().join("main.yaml"), main).unwrap();
    std::fs::create_dir(dir.path().join("server.d")).unwrap();
    let server = "name: http\ntype: http_proxy\nescaper: default\nlisten: 127.0.0.1:18080\nbogus_server_key: true\n";
    std::fs::write(dir.path().join("server.d/http.yaml"), server).unwrap();
    assert_rejected(dir.path(), "http.yaml", 5, "bogus_server_key");

    // the same folder without the error passes
    let good = "name: http\ntype: http_proxy\nescaper: default\nlisten: 127.0.0.1:18080\n";
    std::fs::write(dir.path().join("server.d/http.yaml"), good).unwrap();
    let (status, err) = check_config(dir.path());
    assert!(status.success(), "{err}");
}

#[test]
fn reference_to_a_missing_module_fails() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = Standard::new().http(18080).render().replace(
        "    escaper: default\n    listen",
        "    escaper: no_such_escaper\n    listen",
    );
    assert!(yaml.contains("no_such_escaper"));
    let file = dir.path().join("broken-ref.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (status, err) = check_config(&file);
    assert!(
        !status.success(),
        "a server naming a missing escaper passed -t"
    );
    assert!(
        err.contains("no_such_escaper"),
        "the error must name the missing escaper:\n{err}"
    );
}

#[test]
fn version_flag() {
    let out = cmd::run(
        std::process::Command::new(g3proxy_bin()).arg("-V"),
        Duration::from_secs(10),
    );
    assert!(out.success(), "{}", out.describe());
    assert!(!out.stdout_str().trim().is_empty() || !out.stderr.trim().is_empty());
}

#[test]
fn mentions_line_helper() {
    assert!(mentions_line("a.yaml:12:5: bad", 12));
    assert!(!mentions_line("a.yaml:123:5: bad", 12));
    assert!(mentions_line("at line 7, key x", 7));
}

#[test]
fn g3proxy_spellings_and_layouts_pass_the_check() {
    let dir = tempfile::tempdir().unwrap();
    // dashes for underscores, listen as a map, durations, sizes and speed limits in both
    // the guide's and g3proxy's own spellings, a section in its own file
    let main = "---\nlog: stderr\nruntime:\n  thread_number: 1\n\
                resolver:\n  - name: default\n    type: c-ares\n    server: 127.0.0.1:9 127.0.0.2:9\n\
                \x20 - name: hk\n    type: hickory\n    server: [127.0.0.1]\n    server_port: 9\n\
                \x20 - name: both\n    type: fail_over\n    primary: default\n    standby: hk\n\
                \x20 - name: none\n    type: deny_all\n\
                escaper: escaper.yaml\n\
                server:\n  - name: http\n    type: http_proxy\n    escaper: default\n\
                \x20   listen:\n      address: 127.0.0.1:18080\n\
                \x20   req-header-max-size: 64K\n    req_header_recv_timeout: 1m\n\
                \x20   tcp_sock_speed_limit: 10M/s\n\
                \x20 - name: socks\n    type: socks_proxy\n    escaper: default\n    listen: 127.0.0.1:11080\n\
                \x20   use-udp-associate: true\n    udp_socket_buffer: 512K\n    negotiation_timeout: 4\n\
                \x20   tcp_sock_speed_limit: 80M\n";
    let escaper = "- name: default\n  type: direct_fixed\n  resolver: both\n  resolve_strategy: IPv4Only\n\
                   \x20 egress_net_filter:\n    default: forbid\n    allow: [127.0.0.1, 10.0.0.0/8]\n\
                   \x20 tcp_sock_speed_limit: 1MB\n  udp_sock_speed_limit: 10M/s\n";
    std::fs::write(dir.path().join("g3proxy.yaml"), main).unwrap();
    std::fs::write(dir.path().join("escaper.yaml"), escaper).unwrap();
    let (status, err) = check_config(dir.path());
    assert!(
        status.success(),
        "{err}\n--- g3proxy.yaml ---\n{main}\n--- escaper.yaml ---\n{escaper}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = Standard::new()
        .http(18080)
        .socks(11080)
        .http_key("first_bad_key_px: 1")
        .socks_key("second_bad_key_px: 2")
        .render();
    let file = dir.path().join("two-errors.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (status, err) = check_config(&file);
    assert!(!status.success());
    for (key, line) in [
        ("first_bad_key_px", line_of(&yaml, "first_bad_key_px")),
        ("second_bad_key_px", line_of(&yaml, "second_bad_key_px")),
    ] {
        assert!(err.contains(key), "missing {key}:\n{err}");
        assert!(
            mentions_line(&err, line),
            "missing line {line} for {key}:\n{err}"
        );
    }
}
