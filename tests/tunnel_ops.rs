//! Operations on a running tunnel (issue 4 item 8), with the real binary
//! in network namespaces:
//! - a key change by SIGHUP reloads (make-before-break, three steps on each
//!   side) loses no datagram of numbered streams in both directions, and
//!   the per-SA counters show the traffic moved to the new SPIs;
//! - multipath: three gateway namespaces behind one weighted group; flows
//!   spread over all three, every flow sticks to one gateway, and taking a
//!   gateway out (reload without its SA) moves only that gateway's flows;
//! - NAT keepalives and IKE reach the control thread's socket, and the
//!   Prometheus exporter (`--metrics`) shows the same counts; `keepalive`
//!   on an outbound SA sends them at start and every interval;
//! - a reload adds new routes and deletes dropped ones, and a broken file
//!   is refused;
//! - `cpus` pins the worker threads as it says (auto, a list, none).
//!
//! Root only (skips with a reason otherwise; fails under ESPTUN_STRICT=1).
//! Documentation addresses only; every loop is bounded in count and time;
//! namespaces and daemons are removed on drop, also when a test fails.

mod common;
mod tunnel;

use esptun::dataplane::netns::NetNs;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tunnel::{Daemon, Io};

/// `esptun run` on `config` in `ns` with two workers (the shared harness).
fn esptun(ns: &NetNs, label: &str, config: &Path) -> Daemon {
    Daemon::start(ns, label, config, Io::Syscall, &["--workers", "2"])
}

const KEYS: [&str; 8] = [
    "000102030405060708090a0b0c0d0e0f10111213",
    "202122232425262728292a2b2c2d2e2f30313233",
    "404142434445464748494a4b4c4d4e4f50515253",
    "606162636465666768696a6b6c6d6e6f70717273",
    "808182838485868788898a8b8c8d8e8f90919293",
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3",
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3",
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3",
];

/// A scratch directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("esptun-ops-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Dir(p)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write config");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A veth between two namespaces with an address on each end.
fn link(a: &NetNs, a_dev: &str, a_addr: &str, b: &NetNs, b_dev: &str, b_addr: &str) {
    a.ip(&["link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b.name()]).expect("veth");
    for (ns, dev, addr, peer) in [(a, a_dev, a_addr, b_addr), (b, b_dev, b_addr, a_addr)] {
        ns.ip(&["addr", "add", &format!("{addr}/32"), "dev", dev]).expect("addr");
        ns.ip(&["link", "set", dev, "up"]).expect("up");
        ns.ip(&["route", "add", &format!("{peer}/32"), "dev", dev, "src", addr]).expect("route");
    }
}

fn iface(name: &str, addr: &str) -> String {
    format!(
        "[settings]\nallow_inline_secrets = true\n\n[interface]\nname = \"{name}\"\naddresses = [\"{addr}/32\"]\n"
    )
}

#[allow(clippy::too_many_arguments)]
fn sa(
    name: &str,
    dir: &str,
    spi: u32,
    key: &str,
    local: &str,
    remote: &str,
    lts: &str,
    rts: &str,
    extra: &str,
) -> String {
    format!(
        "\n[[static_sas]]\nname = \"{name}\"\ndirection = \"{dir}\"\nspi = {spi}\nalg = \"aes128gcm16\"\nkey = \"{key}\"\n\
         local = \"{local}\"\nremote = \"{remote}\"\nlocal_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n{extra}"
    )
}

/// A receiver thread in `ns` on `addr`: collects (source port, payload)
/// until `quiet` passes with nothing new after `deadline`.
fn receiver(ns: &NetNs, addr: &str) -> std::thread::JoinHandle<Vec<(u16, Vec<u8>)>> {
    let sock = ns.run(|| UdpSocket::bind(addr)).expect("enter").expect("bind receiver");
    sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        let mut idle = 0;
        while start.elapsed() < Duration::from_secs(20) && idle < 10 {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    idle = 0;
                    got.push((from.port(), buf[..n].to_vec()));
                }
                Err(_) => idle += 1,
            }
        }
        got
    })
}

fn sender(ns: &NetNs, src: &str) -> UdpSocket {
    ns.run(|| UdpSocket::bind(src)).expect("enter").expect("bind sender")
}

#[test]
fn rekey_by_reload_loses_nothing() {
    if !common::root_tests_enabled() {
        return;
    }
    let a = NetNs::create("esptun-ops-rk-a").expect("ns a");
    let b = NetNs::create("esptun-ops-rk-b").expect("ns b");
    link(&a, "rk-a", "192.0.2.1", &b, "rk-b", "192.0.2.2");
    let dir = Dir::new("rk");
    let (an, bn) = ("198.51.100.0/24", "203.0.113.0/24");
    let side = |me: &str, peer: &str, my_net: &str, peer_net: &str, out: (u32, &str), ins: &[(u32, &str)]| {
        let mut s = sa("out", "out", out.0, out.1, me, peer, my_net, peer_net, "");
        for (i, (spi, key)) in ins.iter().enumerate() {
            s += &sa(&format!("in{i}"), "in", *spi, key, me, peer, my_net, peer_net, "");
        }
        s
    };
    let (old_ab, old_ba, new_ab, new_ba) =
        ((0x1001, KEYS[0]), (0x1002, KEYS[1]), (0x2001, KEYS[2]), (0x2002, KEYS[3]));
    // Phases: 0 = old keys; 1 = + new inbound; 2 = outbound switched; 3 = old inbound removed.
    let cfg_a = |phase: u8| {
        let out = if phase >= 2 { new_ab } else { old_ab };
        let ins: Vec<_> = match phase {
            0 => vec![old_ba],
            1 | 2 => vec![old_ba, new_ba],
            _ => vec![new_ba],
        };
        iface("rk-esp-a", "198.51.100.1") + &side("192.0.2.1", "192.0.2.2", an, bn, out, &ins)
    };
    let cfg_b = |phase: u8| {
        let out = if phase >= 2 { new_ba } else { old_ba };
        let ins: Vec<_> = match phase {
            0 => vec![old_ab],
            1 | 2 => vec![old_ab, new_ab],
            _ => vec![new_ab],
        };
        iface("rk-esp-b", "203.0.113.1") + &side("192.0.2.2", "192.0.2.1", bn, an, out, &ins)
    };
    let pa = dir.write("a.toml", &cfg_a(0));
    let pb = dir.write("b.toml", &cfg_b(0));
    let mut ea = esptun(&a, "A", &pa);
    let mut eb = esptun(&b, "B", &pb);

    // Numbered streams both ways, 1 datagram per ms for 3 s.
    const N: u32 = 3000;
    let rx_b = receiver(&b, "203.0.113.1:9000");
    let rx_a = receiver(&a, "198.51.100.1:9000");
    let sa_ = sender(&a, "198.51.100.1:40000");
    let sb_ = sender(&b, "203.0.113.1:40000");
    let stream = |s: UdpSocket, to: &str| {
        let to: SocketAddr = to.parse().unwrap();
        std::thread::spawn(move || {
            let start = Instant::now();
            for i in 0..N {
                let due = Duration::from_millis(u64::from(i));
                if let Some(d) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(d);
                }
                s.send_to(&i.to_be_bytes(), to).expect("send");
            }
        })
    };
    let ta = stream(sa_, "203.0.113.1:9000");
    let tb = stream(sb_, "198.51.100.1:9000");
    // The three reloads land at about 0.7, 1.4 and 2.1 s into the streams.
    for phase in 1..=3u8 {
        std::thread::sleep(Duration::from_millis(700));
        std::fs::write(&pa, cfg_a(phase)).unwrap();
        std::fs::write(&pb, cfg_b(phase)).unwrap();
        ea.reload(usize::from(phase));
        eb.reload(usize::from(phase));
    }
    ta.join().unwrap();
    tb.join().unwrap();
    for (name, rx) in [("A->B", rx_b), ("B->A", rx_a)] {
        let got: HashSet<u32> = rx
            .join()
            .unwrap()
            .iter()
            .filter_map(|(_, p)| p.get(..4).map(|b| u32::from_be_bytes(b.try_into().unwrap())))
            .collect();
        let missing: Vec<u32> = (0..N).filter(|i| !got.contains(i)).take(10).collect();
        assert!(
            missing.is_empty(),
            "{name}: lost {} datagrams across the key change, first {missing:?}",
            N as usize - got.len()
        );
    }
    let (sa_a, sa_b) = (ea.stop(), eb.stop());
    // Only the new inbound SAs are left, and they carried traffic.
    for (sum, new_spi, old_spi) in [(&sa_a, 0x2002, 0x1002), (&sa_b, 0x2001, 0x1001)] {
        let pkts = sum.sa_in.get(&new_spi).copied().unwrap_or(0);
        assert!(pkts > 100, "the new SA {new_spi:#x} carried only {pkts} packets: {}", sum.line);
        assert!(!sum.sa_in.contains_key(&old_spi), "old inbound SA still installed: {}", sum.line);
    }
}

#[test]
fn multipath_spreads_flows_and_a_removed_gateway_moves_only_its_own() {
    if !common::root_tests_enabled() {
        return;
    }
    let a = NetNs::create("esptun-ops-mp-a").expect("ns a");
    let gws: Vec<NetNs> =
        (1..=3).map(|i| NetNs::create(&format!("esptun-ops-mp-g{i}")).expect("ns g")).collect();
    for (i, g) in gws.iter().enumerate() {
        link(
            &a,
            &format!("mp-a{}", i + 1),
            "192.0.2.1",
            g,
            &format!("mp-g{}", i + 1),
            &format!("192.0.2.1{}", i + 1),
        );
    }
    let dir = Dir::new("mp");
    let (an, bn) = ("198.51.100.0/24", "203.0.113.0/24");
    let weights = [1, 2, 3];
    let cfg_a = |with: &[bool; 3]| {
        let mut s = iface("mp-esp-a", "198.51.100.1");
        s += "\n[[connections]]\nname = \"wan\"\nlocal_addrs = [\"192.0.2.1\"]\ngateways = [\n";
        for (i, w) in weights.iter().enumerate() {
            s +=
                &format!("  {{ name = \"gw{}\", address = \"192.0.2.1{}\", weight = {w} }},\n", i + 1, i + 1);
        }
        s += "]\nlocal = { auth = \"psk\", id = \"a.example\", psk_env = \"UNUSED\" }\n\
              remote = { auth = \"psk\", id = \"*.example\" }\n\
              [[connections.children]]\nname = \"bulk\"\nlocal_ts = [\"198.51.100.0/24\"]\nremote_ts = [\"203.0.113.0/24\"]\n";
        for i in 0..3 {
            let gw = format!("192.0.2.1{}", i + 1);
            if with[i] {
                let via = format!("child = \"wan/bulk\"\ngateway = \"gw{}\"\n", i + 1);
                s += &sa(
                    &format!("out{i}"),
                    "out",
                    0x3001 + i as u32,
                    KEYS[i],
                    "192.0.2.1",
                    &gw,
                    an,
                    bn,
                    &via,
                );
            }
            s += &sa(&format!("in{i}"), "in", 0x4001 + i as u32, KEYS[i + 3], "192.0.2.1", &gw, an, bn, "");
        }
        s
    };
    let pa = dir.write("a.toml", &cfg_a(&[true; 3]));
    let mut ea = esptun(&a, "A", &pa);
    let mut daemons = Vec::new();
    let mut rxs = Vec::new();
    for (i, g) in gws.iter().enumerate() {
        let me = format!("192.0.2.1{}", i + 1);
        let text = iface(&format!("mp-esp-g{}", i + 1), "203.0.113.1")
            + &sa("in", "in", 0x3001 + i as u32, KEYS[i], &me, "192.0.2.1", bn, an, "")
            + &sa("out", "out", 0x4001 + i as u32, KEYS[i + 3], &me, "192.0.2.1", bn, an, "");
        daemons.push(esptun(g, &format!("G{}", i + 1), &dir.write(&format!("g{}.toml", i + 1), &text)));
        rxs.push(receiver(g, "203.0.113.1:9000"));
    }
    // 120 flows (source ports), 3 datagrams each, from A to the shared
    // inner address every gateway has.
    const FLOWS: u16 = 120;
    let send_round = |round: u8| {
        let socks: Vec<UdpSocket> =
            (0..FLOWS).map(|f| sender(&a, &format!("198.51.100.1:{}", 20000 + f))).collect();
        for k in 0..3u8 {
            for s in &socks {
                s.send_to(&[round, k], "203.0.113.1:9000").expect("send");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    send_round(1);
    // Then take gw2 out: A reloads without its outbound SA (marked down).
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&pa, cfg_a(&[true, false, true])).unwrap();
    ea.reload(1);
    send_round(2);

    // Which gateway each (round, flow) landed on; all 3 datagrams together.
    let mut placed: HashMap<(u8, u16), usize> = HashMap::new();
    for (gi, rx) in rxs.into_iter().enumerate() {
        let mut counts: HashMap<(u8, u16), u8> = HashMap::new();
        for (port, p) in rx.join().unwrap() {
            *counts.entry((p[0], port - 20000)).or_default() += 1;
        }
        for (key, n) in counts {
            assert_eq!(n, 3, "flow {key:?} split: {n} of 3 datagrams at gw{}", gi + 1);
            assert!(placed.insert(key, gi).is_none(), "flow {key:?} reached two gateways");
        }
    }
    let share = |round: u8, gi: usize| (0..FLOWS).filter(|f| placed.get(&(round, *f)) == Some(&gi)).count();
    let first: Vec<usize> = (0..3).map(|g| share(1, g)).collect();
    eprintln!("round 1 flows per gateway (weights 1:2:3): {first:?}");
    assert_eq!(first.iter().sum::<usize>(), usize::from(FLOWS), "every flow arrived");
    // Expected 20/40/60; bounds of about 3 standard deviations.
    assert!(
        (6..=36).contains(&first[0]) && (24..=58).contains(&first[1]) && (42..=78).contains(&first[2]),
        "{first:?}"
    );
    for f in 0..FLOWS {
        let (before, after) = (placed[&(1, f)], placed.get(&(2, f)).copied());
        let after = after.unwrap_or_else(|| panic!("flow {f} lost after gw2 went down"));
        assert_ne!(after, 1, "flow {f} still sent to the removed gateway");
        if before != 1 {
            assert_eq!(after, before, "flow {f} moved from gw{} though its gateway stayed", before + 1);
        }
    }
    let _ = ea.stop();
    for mut d in daemons {
        let _ = d.stop();
    }
}

/// NAT keepalives and IKE messages sent to a running daemon's UDP port
/// reach the control thread's socket (the steering program's control
/// index), not a worker: they are counted (keepalives, ike, drop
/// ike_unhandled: IKE is not negotiated yet), the control socket logs the
/// IKE sender, and the tunnel keeps carrying ESP on both workers.
#[test]
fn keepalives_and_ike_go_to_the_control_socket() {
    if !common::root_tests_enabled() || !common::tool("ping", "-V") {
        return;
    }
    let pair = tunnel::Pair::new("ctl", tunnel::Fam::V4);
    pair.b.ip(&["addr", "add", &format!("{}/24", tunnel::C_OUTER4), "dev", "veth-b"]).unwrap();
    let fams = [tunnel::Fam::V4];
    let metrics_at = SocketAddr::new(tunnel::A_OUTER4.into(), 9720);
    let cfg_a = tunnel::SideCfg::new(true, tunnel::Fam::V4, &fams);
    let mut a = pair.start(true, &cfg_a, Io::Syscall, &["--metrics", &metrics_at.to_string()]);
    let mut b = pair.start(false, &tunnel::SideCfg::new(false, tunnel::Fam::V4, &fams), Io::Syscall, &[]);
    let ia = tunnel::inner(tunnel::Fam::V4, true);
    assert_eq!(tunnel::traffic::ping(&pair.b, ia, 2).received, 2, "tunnel up");
    let sock = pair.b.run(|| UdpSocket::bind((tunnel::C_OUTER4, 0))).unwrap().unwrap();
    let target = SocketAddr::new(tunnel::A_OUTER4.into(), 4500);
    // An IKE_SA_INIT-like header behind the non-ESP marker; SPIs of
    // different residues so a hash or SPI mod 2 would spread them.
    let ike =
        |spi: u8| [0, 0, 0, 0, spi, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x20, 0x22, 0x08];
    for i in 0..5u8 {
        sock.send_to(&[0xff], target).unwrap();
        if i < 3 {
            sock.send_to(&ike(i), target).unwrap();
        }
    }
    // The control thread serves its socket every 50 ms at the latest.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tunnel::traffic::ping(&pair.b, ia, 2).received, 2, "tunnel still up");
    // The control loop records totals every 250 ms; the exporter serves them.
    std::thread::sleep(Duration::from_millis(400));
    let page = pair.b.run(|| scrape(metrics_at)).unwrap();
    let sa = a.stop();
    let _ = b.stop();
    assert_eq!((sa.keepalives, sa.ike), (5, 3), "A: {}", sa.line);
    assert_eq!(sa.drop("ike_unhandled"), 3, "A: {}", sa.line);
    assert_eq!(sa.drop("nat_keepalive"), 5, "A: {}", sa.line);
    assert_eq!(
        sa.unexpected_drops(&["ike_unhandled", "nat_keepalive"]),
        Vec::<String>::new(),
        "A: {}",
        sa.line
    );
    let log = a.log();
    assert!(
        log.contains(&format!("IKE message from {}:", tunnel::C_OUTER4)),
        "the control socket saw the IKE sender:\n{log}"
    );
    // The same counts through the Prometheus exporter (scraped before the
    // stop, after all of the traffic above).
    let value = |series: &str| -> u64 {
        let line = page.lines().find(|l| l.split(' ').next() == Some(series));
        line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            panic!("no series {series} in the metrics page:\n{page}");
        })
    };
    assert_eq!(value("esptun_keepalives_total"), 5);
    assert_eq!(value("esptun_ike_messages_total"), 3);
    assert_eq!(value("esptun_drops_total{reason=\"ike_unhandled\"}"), 3);
    assert_eq!(value("esptun_drops_total{reason=\"auth_failed\"}"), 0);
    assert_eq!(value("esptun_workers"), 2);
    // Four pings cannot drain a ring of hundreds of buffers.
    assert_eq!(value("esptun_uring_nobufs_total"), 0);
    // 4 pings were answered through the tunnel: A opened at least 4 ESP
    // packets, and no more than its final total.
    let rx = value("esptun_rx_packets_total");
    assert!((4..=sa.rx_pkts).contains(&rx), "rx {rx}, final {}", sa.rx_pkts);
    let spi = format!("esptun_sa_rx_packets_total{{spi=\"{:#010x}\"}}", tunnel::SPI_B_TO_A);
    assert_eq!(value(&spi), rx, "the one inbound SA opened them all");
}

/// `GET /metrics` from `addr`: the body of a 200 answer.
fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut c =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to metrics");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: esptun\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read metrics");
    let (head, body) = out.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// `ip route show dev DEV` in `ns`, one route per line.
fn routes_of(ns: &NetNs, dev: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns.name(), "route", "show", "dev", dev])
        .output()
        .expect("ip route show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

/// A reload that drops a route from `[interface] routes` removes it from
/// the kernel (and adds the new one), while the routes kept stay; a reload
/// of a broken file is refused and changes nothing.
#[test]
fn reload_adds_and_removes_routes() {
    if !common::root_tests_enabled() {
        return;
    }
    let pair = tunnel::Pair::new("rt", tunnel::Fam::V4);
    let dir = Dir::new("rt");
    let mut cfg = tunnel::SideCfg::new(true, tunnel::Fam::V4, &[tunnel::Fam::V4]);
    cfg.routes = Some(vec!["203.0.113.0/25".into(), "203.0.113.128/25".into()]);
    let path = dir.write("a.toml", &cfg.toml());
    let mut a = Daemon::start(&pair.a, "A", &path, Io::Syscall, &[]);
    let before = routes_of(&pair.a, &cfg.tun);
    assert!(
        before.contains(&"203.0.113.0/25".into()) && before.contains(&"203.0.113.128/25".into()),
        "{before:?}"
    );

    cfg.routes = Some(vec!["203.0.113.0/25".into(), "198.51.100.128/25".into()]);
    dir.write("a.toml", &cfg.toml());
    a.reload(1);
    let after = routes_of(&pair.a, &cfg.tun);
    assert!(after.contains(&"203.0.113.0/25".into()), "kept: {after:?}");
    assert!(after.contains(&"198.51.100.128/25".into()), "added: {after:?}");
    assert!(!after.contains(&"203.0.113.128/25".into()), "removed: {after:?}");

    // A broken file is refused with its location, and the running routes
    // (and the daemon) stay as they were.
    let good = cfg.toml();
    dir.write("a.toml", &good.replace("[interface]", "[interface]\nmtuu = 1400"));
    let log = a.reload_refused(1);
    assert!(log.contains("a.toml:") && log.contains("mtuu"), "error names file, line and key:\n{log}");
    assert_eq!(routes_of(&pair.a, &cfg.tun), after, "a refused reload changed the routes");
    // The next good file is taken again.
    dir.write("a.toml", &good);
    a.reload(2);
    assert_eq!(routes_of(&pair.a, &cfg.tun), after);
    let _ = a.stop();
}

/// `Cpus_allowed_list` of each thread of `pid` whose name starts with
/// `prefix`, by thread name; `None` for the process itself.
fn cpu_lists(pid: u32, prefix: Option<&str>) -> Vec<(String, String)> {
    let field = |status: &str| {
        status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("").trim().to_owned()
    };
    if prefix.is_none() {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        return vec![(String::new(), field(&st))];
    }
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_owned();
        if prefix.is_some_and(|p| comm.starts_with(p)) {
            let st = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            out.push((comm, field(&st)));
        }
    }
    out.sort();
    out
}

/// `cpus`: auto pins worker i to the i-th allowed CPU, a list pins as
/// written, none leaves the workers on every allowed CPU; the tunnel works
/// in each case and the start line says what was done.
#[test]
fn workers_are_pinned_as_cpus_says() {
    if !common::root_tests_enabled() {
        return;
    }
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap().into_iter().map(|c| c.id).collect();
    let last = *allowed.last().unwrap();
    let pair = tunnel::Pair::new("cpu", tunnel::Fam::V4);
    let cfg = |a: bool| tunnel::SideCfg::new(a, tunnel::Fam::V4, &[tunnel::Fam::V4]);
    let mut a = pair.start(true, &cfg(true), Io::Syscall, &["--workers", "2"]);
    let list = last.to_string();
    let mut b = pair.start(false, &cfg(false), Io::Syscall, &["--workers", "2", "--cpus", &list]);
    // The start line comes just before the worker threads start: wait
    // (5 s at most) until both are there.
    let w = |d: &Daemon| {
        let t0 = Instant::now();
        loop {
            let l = cpu_lists(d.pid(), Some("esptun-w"));
            if l.len() == 2 || t0.elapsed() > Duration::from_secs(5) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let want_a: Vec<(String, String)> =
        (0..2).map(|i| (format!("esptun-w{i}"), allowed[i % allowed.len()].to_string())).collect();
    assert_eq!(w(&a), want_a, "auto: worker i on the i-th allowed CPU");
    assert_eq!(w(&b), vec![("esptun-w0".into(), list.clone()), ("esptun-w1".into(), list.clone())]);
    assert!(b.log().contains(&format!("2 worker(s) on CPUs {last},{last}")), "{}", b.log());
    let ib = tunnel::inner(tunnel::Fam::V4, false);
    let (p, out) = tunnel::traffic::ping_with(&pair.a, ib, 3, &[]);
    assert_eq!(p.received, 3, "{out}");
    // Both restart (fresh static SAs start at sequence number 1 again,
    // which the old peer's replay window would refuse).
    let (_, _) = (a.stop(), b.stop());
    let mut a = pair.start(true, &cfg(true), Io::Syscall, &["--workers", "2", "--cpus", "none"]);
    let mut b = pair.start(false, &cfg(false), Io::Syscall, &["--workers", "2", "--cpus", "none"]);
    let all = cpu_lists(b.pid(), None)[0].1.clone();
    assert_eq!(w(&b), vec![("esptun-w0".into(), all.clone()), ("esptun-w1".into(), all)], "none: not pinned");
    assert!(b.log().contains("2 worker(s) unpinned"), "{}", b.log());
    let (p, out) = tunnel::traffic::ping_with(&pair.a, ib, 3, &[]);
    assert_eq!(p.received, 3, "{out}");
    let (_, _) = (a.stop(), b.stop());
}

/// `keepalive = "1s"` on A's outbound SA: A sends a NAT keepalive at start
/// and then every second, from its tunnel port to B's; B's control socket
/// counts each, and A's exporter counts them as sent.
#[test]
fn keepalives_are_sent_every_interval() {
    if !common::root_tests_enabled() {
        return;
    }
    let pair = tunnel::Pair::new("ka", tunnel::Fam::V4);
    let fams = [tunnel::Fam::V4];
    let metrics_at = SocketAddr::new(tunnel::A_OUTER4.into(), 9721);
    let mut cfg_a = tunnel::SideCfg::new(true, tunnel::Fam::V4, &fams);
    cfg_a.keepalive = Some("1s");
    let mut b = pair.start(false, &tunnel::SideCfg::new(false, tunnel::Fam::V4, &fams), Io::Syscall, &[]);
    let t0 = Instant::now();
    let mut a = pair.start(true, &cfg_a, Io::Syscall, &["--metrics", &metrics_at.to_string()]);
    // Said once the control loop starts, just after the start line.
    let said = format!("NAT keepalives to {}:4500 every 1s", tunnel::B_OUTER4);
    while !a.log().contains(&said) && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(a.log().contains(&said), "{}", a.log());
    // Keepalives at about 0, 1 and 2 s; scrape after the exporter's next
    // 250 ms update, then stop B (a slow stop may let a fourth in: at
    // least two and at most four, i.e. neither only the first nor a flood).
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(t0.elapsed()));
    let page = pair.b.run(|| scrape(metrics_at)).unwrap();
    let sb = b.stop();
    let _ = a.stop();
    let elapsed = t0.elapsed();
    assert!(
        (2..=4).contains(&sb.keepalives),
        "B got {} keepalives in {elapsed:?}: {}",
        sb.keepalives,
        sb.line
    );
    assert_eq!(sb.drop("nat_keepalive"), sb.keepalives, "consumed by the control socket: {}", sb.line);
    assert_eq!(sb.unexpected_drops(&["nat_keepalive"]), Vec::<String>::new(), "B: {}", sb.line);
    let sent = page
        .lines()
        .find_map(|l| l.strip_prefix("esptun_keepalives_sent_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no esptun_keepalives_sent_total:\n{page}"));
    assert!((2..=4).contains(&sent), "A sent {sent}: {}", sb.line);
}
