//! `esptun check` as a user runs it: exit codes, where output goes.

use std::io::Write;
use std::process::{Command, Output};

fn check(text: &str, name: &str) -> Output {
    check_env(text, name, Some("a shared secret"))
}

/// `esptun check` with the PSK variable `K` set to `psk` (or unset).
fn check_env(text: &str, name: &str, psk: Option<&str>) -> Output {
    let dir = std::env::temp_dir().join(format!("esptun-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::File::create(&path).and_then(|mut f| f.write_all(text.as_bytes())).expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esptun"));
    cmd.arg("check").arg(&path);
    match psk {
        Some(v) => cmd.env("K", v),
        None => cmd.env_remove("K"),
    };
    let out = cmd.output().expect("runs");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    out
}

const GOOD: &str = "[[connections]]\nname = \"c\"\nlocal = { auth = \"psk\", psk_env = \"K\" }\n\
                    remote = { auth = \"psk\" }\n[[connections.children]]\nname = \"n\"\n\
                    local_ts = [\"198.51.100.0/24\"]\nremote_ts = [\"203.0.113.0/24\"]\n";

#[test]
fn valid_file_exit_0_report_on_stdout() {
    let out = check(GOOD, "good.toml");
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("198.51.100.0/24 -> 203.0.113.0/24  => protect via child c/n"), "{s}");
    assert!(s.contains("anything else => drop"), "{s}");
    assert!(out.stderr.is_empty());
}

#[test]
fn unreadable_psk_is_a_warning_naming_its_source_not_its_value() {
    let out = check_env(GOOD, "nopsk.toml", None);
    assert_eq!(out.status.code(), Some(0), "the file itself is valid");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("warning: connection \"c\": local psk (env $K): environment variable K is not set"),
        "{e}"
    );
    let file = GOOD.replace("psk_env = \"K\"", "psk_file = \"/nonexistent/esptun.psk\"");
    let out = check_env(&file, "nofile.toml", None);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("local psk (file /nonexistent/esptun.psk): cannot read /nonexistent/esptun.psk"),
        "{e}"
    );
    // Set: no warning, and the value never appears anywhere.
    let out = check_env(GOOD, "psk.toml", Some("hunter2-secret"));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[test]
fn errors_exit_1_with_location_on_stderr() {
    let bad = GOOD.replace("name = \"n\"", "name = \"n\"\nstart_action = \"strat\"");
    let out = check(&bad, "bad.toml");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no report on failure");
    let e = String::from_utf8_lossy(&out.stderr);
    // Line 7, column 16: the opening quote of "strat".
    assert!(e.contains("bad.toml:7:16: unknown start_action \"strat\" — did you mean \"start\"?"), "{e}");
    assert!(e.contains("1 error(s)"), "{e}");
}

#[test]
fn several_semantic_errors_are_all_reported() {
    let bad = GOOD
        .replace("name = \"n\"", "name = \"n\"\nreplay_window = 7")
        .replace("203.0.113.0/24\"]", "203.0.113.9-203.0.113.1\"]");
    let out = check(&bad, "two.toml");
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("two.toml:7:17: replay_window = 7 is out of range — use 32..=8192"), "{e}");
    assert!(e.contains("two.toml:9:14: remote_ts: range `203.0.113.9-203.0.113.1` is inverted"), "{e}");
}

#[test]
fn shadowed_rule_is_warned_about_but_passes() {
    let text = format!(
        "{GOOD}[[rules]]\naction = \"bypass\"\n[[rules]]\nname = \"late\"\naction = \"drop\"\ndst = [\"203.0.113.0/24\"]\n"
    );
    let out = check(&text, "shadow.toml");
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains(
            "warning: entry 3 (rule \"late\" (line 11)) never matches: entry 1 (rule \"#1\" (line 9))"
        ),
        "{s}"
    );
}

#[test]
fn missing_file_exit_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_esptun"))
        .args(["check", "/nonexistent/esptun.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/esptun.toml:1:1: cannot read the file")
    );
}

#[test]
fn backends_subcommand_still_works() {
    let out = Command::new(env!("CARGO_BIN_EXE_esptun")).arg("backends").output().expect("runs");
    assert!(out.status.success());
    assert!(!out.stdout.is_empty());
}
