//! Named network namespaces for tests and tools: create one with `ip netns
//! add`, run Rust code inside it on a helper thread that joined it with
//! `setns(CLONE_NEWNET)` (the network namespace is per thread, so the code
//! under test runs in-process), and delete it on drop, also after a panic.
//!
//! Needs root (CAP_SYS_ADMIN) and the `ip` tool from iproute2.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;

/// A network namespace that exists while this value lives.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `/var/run/netns/NAME` (deleting a stale one of the same name
    /// first) and brings its loopback up.
    pub fn create(name: &str) -> io::Result<NetNs> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run_ip(&["netns", "add", name])?;
        let ns = NetNs { name: name.to_owned() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`; an error carries its stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// Runs `f` on a new thread that has joined this namespace and returns
    /// its result; a panic in `f` is resumed on the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let h = s.spawn(|| -> io::Result<T> {
                enter(&path)?;
                Ok(f())
            });
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Moves the calling thread into the network namespace bound at `path`.
pub fn enter(path: &str) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns on an open namespace fd affects only the calling thread
    // (CLONE_NEWNET); the fd stays open for the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether the process can run namespace/TUN tests: root and /dev/net/tun.
/// Returns the reason when it cannot.
pub fn can_run_root_tests() -> Result<(), &'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root and /dev/net/tun");
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err("needs root and /dev/net/tun");
    }
    // CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21) in the effective set: root
    // in an unprivileged container may lack them.
    let caps = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_owned();
        u64::from_str_radix(&hex, 16).ok()
    });
    if caps.is_some_and(|c| c & (1 << 12) == 0 || c & (1 << 21) == 0) {
        return Err("needs CAP_NET_ADMIN and CAP_SYS_ADMIN");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("needs the ip tool (iproute2)");
    }
    Ok(())
}

/// For root-only tests: returns true when they can run. Otherwise prints
/// `skipped: <why>` and returns false, or panics when skipping is a
/// failure ([`strict`]).
pub fn root_tests_enabled() -> bool {
    match can_run_root_tests() {
        Ok(()) => true,
        Err(why) => {
            assert!(!strict(), "ESPTUN_STRICT=1 (or ESPTUN_REQUIRE_ROOT=1) but {why}");
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Whether a test that cannot run must fail rather than skip: set by
/// `scripts/test` (`ESPTUN_STRICT=1`) once it has installed the test tools,
/// so CI cannot pass without running them. `ESPTUN_REQUIRE_ROOT=1` is the
/// older spelling for root-only tests.
pub fn strict() -> bool {
    std::env::var("ESPTUN_STRICT").as_deref() == Ok("1")
        || std::env::var("ESPTUN_REQUIRE_ROOT").as_deref() == Ok("1")
}
