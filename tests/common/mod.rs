//! Helpers shared by integration tests: skipping with a reason (or failing
//! under `ESPTUN_STRICT=1`, which `scripts/test` sets after installing the
//! test tools) and finding external tools.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::Command;

pub use esptun::dataplane::netns::{root_tests_enabled, strict};

/// Prints `skipped: <why>` and returns false, or panics under strict mode.
pub fn skip(why: &str) -> bool {
    assert!(!strict(), "ESPTUN_STRICT=1 but {why}");
    eprintln!("skipped: {why}");
    false
}

/// Whether `tool` runs (`tool ARG` exits at all); otherwise [`skip`].
pub fn tool(tool: &str, arg: &str) -> bool {
    match Command::new(tool).arg(arg).output() {
        Ok(_) => true,
        Err(e) => skip(&format!("{tool} not runnable ({e}); scripts/test installs it as root")),
    }
}

/// The python with scapy: `$ESPTUN_PYTHON`, else the repo's `.venv`, else
/// `python3`; `None` (after [`skip`]) when none imports scapy.
pub fn scapy_python() -> Option<PathBuf> {
    let mut cands: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("ESPTUN_PYTHON") {
        cands.push(p.into());
    }
    cands.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    cands.push("python3".into());
    for c in cands {
        let ok = Command::new(&c)
            .args(["-c", "import scapy.layers.ipsec, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(c);
        }
    }
    skip("no python with scapy + cryptography (scripts/test makes .venv)");
    None
}
