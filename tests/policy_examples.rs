//! Runs the real `esptun check` on every example in policy/ (globbed, so a
//! new example is covered without touching this file).

use esptun::policy::config::Config;
use std::path::PathBuf;
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("policy/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_passes_check_and_names_its_connections() {
    let files = examples();
    assert!(files.len() >= 8, "expected the eight examples from issue 3, found {files:?}");
    for f in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_esptun")).arg("check").arg(f).output().expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: exit {:?}\n{stderr}", f.display(), out.status.code());
        // The examples name PSK files and variables this machine does not
        // have; `check` warns about those on stderr and about nothing else.
        let unexpected: Vec<&str> = stderr
            .lines()
            .filter(|l| !(l.starts_with("warning: connection") && l.contains(" psk (")))
            .collect();
        assert!(unexpected.is_empty(), "{}: unexpected stderr:\n{stderr}", f.display());
        assert!(stdout.contains(": OK"), "{}:\n{stdout}", f.display());
        assert!(stdout.contains("SPD (outbound, first match wins):"), "{}:\n{stdout}", f.display());
        // An example should not carry shadowed rules: they would teach a mistake.
        assert!(!stdout.contains("never matches"), "{}:\n{stdout}", f.display());

        // Independent of the report: the names as written in the file.
        let text = std::fs::read_to_string(f).expect("readable");
        let cfg = Config::from_str(&text, "x").expect("valid");
        for c in &cfg.connections {
            assert!(stdout.contains(&format!("connection \"{}\"", c.name)), "{}: {}", f.display(), c.name);
            for ch in &c.children {
                assert!(stdout.contains(&format!("child \"{}\"", ch.name)), "{}: {}", f.display(), ch.name);
            }
        }
        for sa in &cfg.static_sas {
            assert!(stdout.contains(&format!("static SA \"{}\"", sa.name)), "{}: {}", f.display(), sa.name);
        }
        // Inline key material never appears in the output.
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("key = \"") {
                let hex = v.trim_end_matches('"');
                assert!(!stdout.contains(hex), "{}: key printed", f.display());
                assert!(stdout.contains("<redacted>"), "{}", f.display());
            }
        }
    }
}

#[test]
fn examples_use_documentation_prefixes_only() {
    // Underlay 192.0.2.0/24, inner 198.51.100.0/24 and 203.0.113.0/24, IPv6
    // 2001:db8::/32, plus the "any" and "unspecified" addresses.
    for f in examples() {
        let text = std::fs::read_to_string(&f).expect("readable");
        for tok in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':')) {
            let tok = tok.trim_matches(|c| c == '.' || c == ':');
            if let Ok(ip) = tok.parse::<std::net::IpAddr>() {
                let ok = match ip {
                    std::net::IpAddr::V4(a) => {
                        let o = a.octets();
                        o == [0, 0, 0, 0]
                            || o[..3] == [192, 0, 2]
                            || o[..3] == [198, 51, 100]
                            || o[..3] == [203, 0, 113]
                    }
                    std::net::IpAddr::V6(a) => a.is_unspecified() || a.segments()[..2] == [0x2001, 0xdb8],
                };
                assert!(ok, "{}: {ip} is not a documentation address", f.display());
            }
        }
    }
}
