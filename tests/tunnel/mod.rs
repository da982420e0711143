//! Helpers for `tests/tunnel_netns.rs`: two network namespaces A and B
//! joined by a veth (the underlay), an `esptun run` daemon in each with a
//! pair of static SAs, and the summary line each daemon prints on exit.
//!
//! Names: namespaces `esptun-tn-TAG-a` / `-b` (TAG unique per test, so tests
//! may run in parallel threads); the veth ends `veth-a` / `veth-b` and the
//! TUN devices `esp-a` / `esp-b` live inside them, so they never collide.
//! Only documentation addresses are used (see the constants below).

#![allow(dead_code)] // not every helper is used by every test

pub mod flood;
pub mod traffic;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use esptun::dataplane::netns::NetNs;

/// Address family of the outer (underlay) or inner (tunnelled) packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// The I/O backend passed to `esptun run --io`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// io_uring.
    Uring,
    /// recvmmsg/sendmmsg + read/write.
    Syscall,
    /// `--io auto` in a process whose seccomp filter refuses the io_uring
    /// system calls with EPERM, as Docker's default profile does: esptun
    /// must pick syscalls by itself.
    AutoNoUring,
}

impl Io {
    /// The `--io` argument.
    pub fn arg(self) -> &'static str {
        match self {
            Io::Uring => "uring",
            Io::Syscall => "syscall",
            Io::AutoNoUring => "auto",
        }
    }

    /// How the start line names it (`{kind:?} I/O`).
    pub fn start_word(self) -> &'static str {
        match self {
            Io::Uring => "Uring I/O",
            Io::Syscall => "Syscall I/O",
            Io::AutoNoUring => "Syscall I/O",
        }
    }
}

/// Makes `cmd` run under [`deny_io_uring`].
pub fn without_io_uring(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec and only calls
    // prctl (async-signal-safe), allocating nothing.
    unsafe { cmd.pre_exec(deny_io_uring) };
}

/// Installs, in the calling process (a child between fork and exec), a
/// seccomp filter under which io_uring_setup, io_uring_enter and
/// io_uring_register fail with EPERM and every other system call is
/// allowed. It is inherited by `ip netns exec` and the esptun it runs.
pub fn deny_io_uring() -> std::io::Result<()> {
    // The io_uring calls are 425-427 in the unified syscall table that
    // x86_64, i386 and aarch64 all use for them, so no arch check is needed.
    const FIRST: u32 = 425;
    const LAST: u32 = 427;
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter { code: code as u16, jt, jf, k };
    let prog = [
        // A = seccomp_data.nr (offset 0).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        // nr < FIRST: allow; nr > LAST: allow; else EPERM.
        jump(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, FIRST, 0, 2),
        jump(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, LAST, 1, 0),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
    // SAFETY: prctl with these options only reads `fprog` (and the filter
    // it points to, alive on this stack frame) during the call; both calls
    // are async-signal-safe, as a pre_exec hook requires.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &raw const fprog) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Underlay addresses (on the veth, /24 and /64).
pub const A_OUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const B_OUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A second address on B's veth, the source of the garbage flood.
pub const C_OUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
pub const A_OUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const B_OUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// Inner (TUN) host addresses and the selectors of each side.
pub const A_INNER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const B_INNER4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const A_NET4: &str = "198.51.100.0/24";
pub const B_NET4: &str = "203.0.113.0/24";
pub const A_INNER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const B_INNER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
pub const A_NET6: &str = "2001:db8:1::/64";
pub const B_NET6: &str = "2001:db8:2::/64";

/// SPIs and public test keys (key + 4-byte salt, 40 hex digits).
pub const SPI_A_TO_B: u32 = 0x1001;
pub const SPI_B_TO_A: u32 = 0x1002;
pub const KEY_A_TO_B: &str = "000102030405060708090a0b0c0d0e0f10111213";
pub const KEY_B_TO_A: &str = "202122232425262728292a2b2c2d2e2f30313233";

/// How long a daemon may take to print its start line, or to exit after
/// SIGTERM.
const DAEMON_DEADLINE: Duration = Duration::from_secs(10);
/// `--seconds` bound of every daemon: longer than any test, so the test
/// always ends it with SIGTERM, but a leaked one still stops on its own.
const DAEMON_SECONDS: &str = "90";

/// The outer address of A or B in `fam`.
pub fn outer(fam: Fam, a_side: bool) -> IpAddr {
    match (fam, a_side) {
        (Fam::V4, true) => A_OUTER4.into(),
        (Fam::V4, false) => B_OUTER4.into(),
        (Fam::V6, true) => A_OUTER6.into(),
        (Fam::V6, false) => B_OUTER6.into(),
    }
}

/// The inner (TUN) host address of A or B in `fam`.
pub fn inner(fam: Fam, a_side: bool) -> IpAddr {
    match (fam, a_side) {
        (Fam::V4, true) => A_INNER4.into(),
        (Fam::V4, false) => B_INNER4.into(),
        (Fam::V6, true) => A_INNER6.into(),
        (Fam::V6, false) => B_INNER6.into(),
    }
}

/// One daemon's configuration file, rendered by [`SideCfg::toml`].
#[derive(Clone, Debug)]
pub struct SideCfg {
    pub tun: String,
    /// `[interface] addresses`.
    pub addresses: Vec<String>,
    /// `[interface] routes`; `None`: esptun derives them from remote_ts.
    pub routes: Option<Vec<String>>,
    /// `[interface] mtu`; `None`: esptun derives it from the path MTU.
    pub mtu: Option<u32>,
    pub workers: usize,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub spi_out: u32,
    pub key_out: &'static str,
    pub spi_in: u32,
    pub key_in: &'static str,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// `keepalive` of the outbound SA (`None`: off).
    pub keepalive: Option<&'static str>,
}

fn toml_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(", "))
}

impl SideCfg {
    /// A's (`a_side`) or B's configuration for a tunnel over `outer`
    /// carrying the `inner` families; two workers each.
    pub fn new(a_side: bool, outer_fam: Fam, inner_fams: &[Fam]) -> SideCfg {
        let nets = |a: bool| -> Vec<String> {
            inner_fams
                .iter()
                .map(|f| match (f, a) {
                    (Fam::V4, true) => A_NET4,
                    (Fam::V4, false) => B_NET4,
                    (Fam::V6, true) => A_NET6,
                    (Fam::V6, false) => B_NET6,
                })
                .map(str::to_owned)
                .collect()
        };
        let addresses = inner_fams
            .iter()
            .map(|f| {
                let len = if *f == Fam::V4 { 32 } else { 128 };
                format!("{}/{len}", inner(*f, a_side))
            })
            .collect();
        let (spi_out, key_out, spi_in, key_in) = if a_side {
            (SPI_A_TO_B, KEY_A_TO_B, SPI_B_TO_A, KEY_B_TO_A)
        } else {
            (SPI_B_TO_A, KEY_B_TO_A, SPI_A_TO_B, KEY_A_TO_B)
        };
        SideCfg {
            tun: if a_side { "esp-a" } else { "esp-b" }.to_owned(),
            addresses,
            routes: None,
            mtu: None,
            workers: 2,
            local: outer(outer_fam, a_side),
            remote: outer(outer_fam, !a_side),
            spi_out,
            key_out,
            spi_in,
            key_in,
            local_ts: nets(a_side),
            remote_ts: nets(!a_side),
            keepalive: None,
        }
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut s = String::from("[settings]\nallow_inline_secrets = true\ndefault_action = \"drop\"\n\n");
        s += &format!(
            "[interface]\nname = {:?}\naddresses = {}\nworkers = {}\n",
            self.tun,
            toml_list(&self.addresses),
            self.workers
        );
        if let Some(r) = &self.routes {
            s += &format!("routes = {}\n", toml_list(r));
        }
        if let Some(m) = self.mtu {
            s += &format!("mtu = {m}\n");
        }
        for (name, dir, spi, key) in
            [("out", "out", self.spi_out, self.key_out), ("in", "in", self.spi_in, self.key_in)]
        {
            s += &format!(
                "\n[[static_sas]]\nname = {name:?}\ndirection = {dir:?}\nspi = \"{spi:#x}\"\n\
                 alg = \"aes128gcm16\"\nkey = {key:?}\nlocal = \"{}\"\nremote = \"{}\"\n\
                 local_ts = {}\nremote_ts = {}\n",
                self.local,
                self.remote,
                toml_list(&self.local_ts),
                toml_list(&self.remote_ts)
            );
            if let (Some(k), "out") = (self.keepalive, dir) {
                s += &format!("keepalive = {k:?}\n");
            }
        }
        s
    }
}

/// Namespaces A and B joined by a veth, with the underlay addresses up; a
/// scratch directory for config files. Everything is removed on drop
/// (the namespaces by [`NetNs`]), also after a panic. Declare daemons
/// after the pair so they are killed first.
pub struct Pair {
    pub a: NetNs,
    pub b: NetNs,
    pub outer: Fam,
    /// Scratch directory (the daemons' config files, `A.toml` and `B.toml`).
    pub dir: PathBuf,
}

impl Pair {
    /// Builds the topology for test `tag` (unique per test).
    pub fn new(tag: &str, outer_fam: Fam) -> Pair {
        let a = NetNs::create(&format!("esptun-tn-{tag}-a")).expect("create namespace A");
        let b = NetNs::create(&format!("esptun-tn-{tag}-b")).expect("create namespace B");
        let dir = std::env::temp_dir().join(format!("esptun-tn-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let pair = Pair { a, b, outer: outer_fam, dir };
        pair.a
            .ip(&["link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", pair.b.name()])
            .expect("veth pair");
        for (ns, dev, a_side) in [(&pair.a, "veth-a", true), (&pair.b, "veth-b", false)] {
            let addr = match outer_fam {
                Fam::V4 => format!("{}/24", outer(Fam::V4, a_side)),
                Fam::V6 => format!("{}/64", outer(Fam::V6, a_side)),
            };
            // nodad: the address is usable at once (no 1-2 s of DAD).
            let mut args = vec!["addr", "add", addr.as_str(), "dev", dev];
            if outer_fam == Fam::V6 {
                args.push("nodad");
            }
            ns.ip(&args).expect("underlay address");
            ns.ip(&["link", "set", dev, "up"]).expect("veth up");
            // The TUN devices esptun creates later get no IPv6 link-local
            // address, so the kernel sends no router solicitations or MLD
            // reports into them: every packet in the TUN is the test's, and
            // the drop counters must be exactly what the test caused.
            ns.run(|| {
                std::fs::write("/proc/sys/net/ipv6/conf/default/addr_gen_mode", "1")
                    .expect("sysctl net.ipv6.conf.default.addr_gen_mode")
            })
            .expect("enter namespace");
        }
        pair
    }

    /// Namespace A or B.
    pub fn ns(&self, a_side: bool) -> &NetNs {
        if a_side { &self.a } else { &self.b }
    }

    /// Writes `cfg` and starts `esptun run` on it in A or B with `io` and
    /// `extra` arguments; returns once the daemon printed its start line.
    pub fn start(&self, a_side: bool, cfg: &SideCfg, io: Io, extra: &[&str]) -> Daemon {
        let label = if a_side { "A" } else { "B" };
        let path = self.dir.join(format!("{label}.toml"));
        std::fs::write(&path, cfg.toml()).expect("write config");
        Daemon::start(self.ns(a_side), label, &path, io, extra)
    }

    /// Both daemons of a symmetric tunnel over this pair's outer family.
    pub fn start_both(&self, inner_fams: &[Fam], io: Io) -> (Daemon, Daemon) {
        let a = self.start(true, &SideCfg::new(true, self.outer, inner_fams), io, &[]);
        let b = self.start(false, &SideCfg::new(false, self.outer, inner_fams), io, &[]);
        (a, b)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for ns in [&self.a, &self.b] {
                eprintln!("--- kernel counters in {} ---\n{}", ns.name(), kernel_counters(ns));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// For a failing test: where the kernel of `ns` lost packets (non-zero
/// error, drop and discard counters of /proc/net/snmp and snmp6, and the
/// devices' statistics).
pub fn kernel_counters(ns: &NetNs) -> String {
    let snmp = ns
        .run(|| {
            let mut out = String::new();
            if let Ok(t) = std::fs::read_to_string("/proc/thread-self/net/snmp") {
                let lines: Vec<&str> = t.lines().collect();
                for pair in lines.chunks(2) {
                    if let [names, values] = pair {
                        let proto = names.split(':').next().unwrap_or("");
                        for (n, v) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
                            if v != "0" && is_loss_counter(n) {
                                out += &format!("{proto}{n} {v}\n");
                            }
                        }
                    }
                }
            }
            if let Ok(t) = std::fs::read_to_string("/proc/thread-self/net/snmp6") {
                for l in t.lines() {
                    let mut w = l.split_whitespace();
                    if let (Some(n), Some(v)) = (w.next(), w.next())
                        && v != "0"
                        && is_loss_counter(n)
                    {
                        out += &format!("{n} {v}\n");
                    }
                }
            }
            out
        })
        .unwrap_or_default();
    let links = Command::new("ip")
        .args(["-n", ns.name(), "-s", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    format!("{snmp}{links}")
}

fn is_loss_counter(name: &str) -> bool {
    ["Err", "Drop", "Discard", "Csum", "NoPorts", "Fail", "Trunc", "NoRoutes"]
        .iter()
        .any(|w| name.contains(w))
}

/// A running `esptun run` (through `ip netns exec`, which execs it, so the
/// child's pid is esptun's). Killed (SIGKILL) on drop unless it was
/// stopped; its stderr is printed when the test is failing.
pub struct Daemon {
    label: String,
    child: Child,
    log: Arc<Mutex<String>>,
    reaped: bool,
    /// The TUN MTU from the start line.
    pub mtu: u32,
}

impl Daemon {
    /// Starts `esptun run -c CONFIG --io IO EXTRA...` in `ns`; returns once
    /// it printed its start line.
    pub fn start(ns: &NetNs, label: &str, config: &std::path::Path, io: Io, extra: &[&str]) -> Daemon {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_esptun"), "run", "-c"])
            .arg(config)
            .args(["--io", io.arg(), "--seconds", DAEMON_SECONDS])
            .args(extra);
        if io == Io::AutoNoUring {
            without_io_uring(&mut cmd);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec esptun run");
        let mut d = Daemon { label: label.to_owned(), child, log: Arc::default(), reaped: false, mtu: 0 };
        // Drain stderr for the daemon's whole life (it is small without
        // --stats, but a full pipe must never block it).
        let stderr = d.child.stderr.take().expect("stderr pipe");
        let log = d.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let start = Instant::now();
        let line = loop {
            let log = d.log();
            if let Some(l) = log.lines().find(|l| l.starts_with("esptun: ") && l.contains(" up (mtu ")) {
                break l.to_owned();
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                d.reaped = true;
                std::thread::sleep(Duration::from_millis(50)); // let the reader finish
                panic!("esptun {label} exited at start ({st}):\n{}", d.log());
            }
            assert!(start.elapsed() < DAEMON_DEADLINE, "esptun {label}: no start line in 10 s:\n{log}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(line.contains(io.start_word()), "esptun {label} runs the wrong backend: {line}");
        d.mtu = line
            .split(" up (mtu ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("no mtu in start line: {line}"));
        d
    }

    /// The esptun process id (`ip netns exec` execs esptun in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether the process is still running (it did not crash).
    pub fn alive(&mut self) -> bool {
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(_)) => {
                self.reaped = true;
                false
            }
            Err(_) => false,
        }
    }

    /// Sends SIGHUP and waits (10 s at most) until the daemon confirmed
    /// its `n`-th reload on stderr.
    pub fn reload(&mut self, n: usize) {
        self.hup_until("esptun: reloaded ", n);
    }

    /// Sends SIGHUP for a reload that must be refused, and waits (10 s at
    /// most) until the daemon said so for the `n`-th time; returns the log.
    pub fn reload_refused(&mut self, n: usize) -> String {
        self.hup_until("esptun: reload refused", n);
        assert!(self.alive(), "esptun {} exited after a refused reload:\n{}", self.label, self.log());
        self.log()
    }

    /// SIGHUP, then wait until `marker` is in the log `n` times.
    fn hup_until(&mut self, marker: &str, n: usize) {
        assert!(self.alive(), "esptun {} died before the reload:\n{}", self.label, self.log());
        // SAFETY: as in `stop`, our own child, not reaped yet.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) }, 0);
        let start = Instant::now();
        while self.log().matches(marker).count() < n {
            assert!(
                start.elapsed() < DAEMON_DEADLINE,
                "esptun {}: `{marker}` {n} times not seen:\n{}",
                self.label,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the daemon with SIGTERM and returns its summary line, parsed.
    /// Fails the test if it had already exited, does not exit within 10 s,
    /// exits unsuccessfully or prints no summary.
    pub fn stop(&mut self) -> Summary {
        assert!(self.alive(), "esptun {} died before it was stopped:\n{}", self.label, self.log());
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet
        // (try_wait returned None just above), so the pid is not reused.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM esptun {}", self.label);
        let status = self.wait(DAEMON_DEADLINE);
        let status = status.unwrap_or_else(|| {
            panic!("esptun {} did not exit 10 s after SIGTERM:\n{}", self.label, self.log())
        });
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        assert!(
            status.success(),
            "esptun {} exited with {status}:\n{}\nstdout: {out}",
            self.label,
            self.log()
        );
        let line = out.lines().rev().find(|l| l.starts_with("tx ")).unwrap_or_else(|| {
            panic!("esptun {}: no summary line on stdout: {out:?}\nstderr:\n{}", self.label, self.log())
        });
        eprintln!("esptun {}: {line}", self.label);
        Summary::parse(line)
    }

    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.reaped = true;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let mut out = String::new();
        if !self.reaped && panicking {
            // The test failed: ask for the summary (SIGTERM), it tells
            // where packets went. Killed below if it does not exit soon.
            // SAFETY: as in `stop`, our own child, not reaped yet.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            if self.wait(Duration::from_secs(3)).is_some()
                && let Some(mut o) = self.child.stdout.take()
            {
                let _ = o.read_to_string(&mut out);
            }
        }
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if panicking {
            eprintln!("--- esptun {} stderr ---\n{}--- stdout ---\n{out}", self.label, self.log());
        }
    }
}

/// The summary line of `esptun run`, field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub line: String,
    pub tx_pkts: u64,
    pub tx_bytes: u64,
    pub rx_pkts: u64,
    pub rx_bytes: u64,
    pub icmp: u64,
    pub frags: u64,
    pub keepalives: u64,
    pub ike: u64,
    /// TCP (TSO) and UDP (USO) super-packets read from the TUN and split.
    pub tso: u64,
    pub uso: u64,
    /// UDP GSO sends (runs of several ESP packets) and TUN writes of a
    /// coalesced TCP super-packet.
    pub gso: u64,
    pub gro: u64,
    /// `drop LABEL N` (engine drop reasons, `DropReason::label`).
    pub drops: BTreeMap<String, u64>,
    /// `io drop NAME N` (I/O layer drops).
    pub io_drops: BTreeMap<String, u64>,
    /// `sa in SPI N pkts`: packets opened per inbound SA.
    pub sa_in: BTreeMap<u32, u64>,
}

impl Summary {
    /// Parses "tx P pkts B B, rx P pkts B B, icmp N, frags N, keepalives N,
    /// ike N, tun super tcp N udp N, udp gso N, tun gro N[, drop LABEL N]...[, io drop NAME N]...[, sa in SPI N pkts]...".
    /// An unknown field fails the test (the format changed: update this
    /// parser).
    pub fn parse(line: &str) -> Summary {
        let mut s = Summary { line: line.to_owned(), ..Summary::default() };
        let num = |t: &str| -> u64 { t.parse().unwrap_or_else(|_| panic!("bad number {t:?} in {line:?}")) };
        for part in line.split(", ") {
            let w: Vec<&str> = part.split(' ').collect();
            match w.as_slice() {
                ["tx", p, "pkts", b, "B"] => (s.tx_pkts, s.tx_bytes) = (num(p), num(b)),
                ["rx", p, "pkts", b, "B"] => (s.rx_pkts, s.rx_bytes) = (num(p), num(b)),
                ["icmp", n] => s.icmp = num(n),
                ["frags", n] => s.frags = num(n),
                ["keepalives", n] => s.keepalives = num(n),
                ["ike", n] => s.ike = num(n),
                ["tun", "super", "tcp", t, "udp", u] => (s.tso, s.uso) = (num(t), num(u)),
                ["udp", "gso", n] => s.gso = num(n),
                ["tun", "gro", n] => s.gro = num(n),
                ["drop", l, n] => {
                    s.drops.insert((*l).to_owned(), num(n));
                }
                ["io", "drop", l, n] => {
                    s.io_drops.insert((*l).to_owned(), num(n));
                }
                ["sa", "in", spi, n, "pkts"] => {
                    let spi = spi.strip_prefix("0x").and_then(|h| u32::from_str_radix(h, 16).ok());
                    s.sa_in.insert(spi.unwrap_or_else(|| panic!("bad SPI in {line:?}")), num(n));
                }
                _ => panic!("unknown summary field {part:?} in {line:?}"),
            }
        }
        s
    }

    /// An engine drop count (0 when absent).
    pub fn drop(&self, label: &str) -> u64 {
        self.drops.get(label).copied().unwrap_or(0)
    }

    /// Drops (engine and I/O) whose label is not in `allowed`.
    pub fn unexpected_drops(&self, allowed: &[&str]) -> Vec<String> {
        let engine = self.drops.iter().filter(|(l, _)| !allowed.contains(&l.as_str()));
        let io = self.io_drops.iter().filter(|(l, _)| !allowed.contains(&format!("io:{l}").as_str()));
        engine
            .map(|(l, n)| format!("drop {l} {n}"))
            .chain(io.map(|(l, n)| format!("io drop {l} {n}")))
            .collect()
    }
}

/// UDP datagrams the kernel of `ns` refused before a socket saw them
/// (receive buffer full, bad checksum, no memory): `Udp: InErrors` plus
/// `Udp6InErrors`. Read through /proc/thread-self (per-thread namespace).
pub fn udp_in_errors(ns: &NetNs) -> u64 {
    ns.run(|| {
        let mut n = 0;
        if let Ok(snmp) = std::fs::read_to_string("/proc/thread-self/net/snmp") {
            let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp: ")).collect();
            if let [names, values] = udp.as_slice() {
                let i = names.split_whitespace().position(|w| w == "InErrors");
                n += i
                    .and_then(|i| values.split_whitespace().nth(i))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
        if let Ok(snmp6) = std::fs::read_to_string("/proc/thread-self/net/snmp6") {
            n += snmp6
                .lines()
                .find_map(|l| l.strip_prefix("Udp6InErrors"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        n
    })
    .expect("enter namespace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_parses_every_field() {
        let s = Summary::parse(
            "tx 5 pkts 600 B, rx 4 pkts 500 B, icmp 1, frags 2, keepalives 3, ike 0, tun super tcp 5 udp 6, \
             udp gso 10, tun gro 11, \
             drop auth_failed 7, drop unknown_spi 8, io drop tun_write 9, sa in 0x00001002 4 pkts",
        );
        assert_eq!((s.tx_pkts, s.tx_bytes, s.rx_pkts, s.rx_bytes), (5, 600, 4, 500));
        assert_eq!((s.icmp, s.frags, s.keepalives, s.ike), (1, 2, 3, 0));
        assert_eq!((s.tso, s.uso, s.gso, s.gro), (5, 6, 10, 11));
        assert_eq!(s.drop("auth_failed"), 7);
        assert_eq!(s.drop("unknown_spi"), 8);
        assert_eq!(s.drop("truncated"), 0);
        assert_eq!(s.io_drops.get("tun_write"), Some(&9));
        assert_eq!(s.sa_in.get(&0x1002), Some(&4));
        assert_eq!(s.unexpected_drops(&["auth_failed", "unknown_spi"]), vec!["io drop tun_write 9"]);
    }

    #[test]
    #[should_panic(expected = "unknown summary field")]
    fn summary_refuses_unknown_fields() {
        Summary::parse("tx 1 pkts 2 B, rx 1 pkts 2 B, bogus 3");
    }

    #[test]
    fn configs_mirror_each_other() {
        let a = SideCfg::new(true, Fam::V6, &[Fam::V4, Fam::V6]);
        let b = SideCfg::new(false, Fam::V6, &[Fam::V4, Fam::V6]);
        assert_eq!((a.spi_out, a.key_out), (b.spi_in, b.key_in));
        assert_eq!((a.spi_in, a.key_in), (b.spi_out, b.key_out));
        assert_eq!((a.local, a.remote), (b.remote, b.local));
        assert_eq!((&a.local_ts, &a.remote_ts), (&b.remote_ts, &b.local_ts));
        let t = a.toml();
        assert!(t.contains("spi = \"0x1001\""), "{t}");
        assert!(t.contains("addresses = [\"198.51.100.1/32\", \"2001:db8:1::1/128\"]"), "{t}");
        assert!(t.contains("local = \"2001:db8::1\""), "{t}");
    }
}
