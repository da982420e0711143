//! UDP I/O layer tests in private network namespaces: SPI steering by the
//! reuseport BPF program, and batch round trips (with TOS, GSO and GRO) on
//! both backends. Root only; others print "skipped: ..." and pass unless
//! ESPTUN_REQUIRE_ROOT=1.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use esptun::dataplane::backend::{AnyIo, BackendKind, Interest, PacketIo, uring_usable};
use esptun::dataplane::batch::{PacketBatch, PacketMeta};
use esptun::dataplane::netns::{NetNs, root_tests_enabled};
use esptun::dataplane::udp::{UdpConfig, UdpGroup, attach_spi_steering};

const DEADLINE: Duration = Duration::from_secs(3);

fn ns_with_addrs(name: &str, addrs: &[&str]) -> NetNs {
    let ns = NetNs::create(name).expect("create netns");
    for a in addrs {
        let mut args = vec!["addr", "add", a, "dev", "lo"];
        if a.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args).expect("add address");
    }
    ns
}

#[test]
fn reuseport_bpf_steers_by_spi_and_control_traffic_to_control_socket() {
    if !root_tests_enabled() {
        return;
    }
    let ns = ns_with_addrs("esptun-io-steer", &["192.0.2.1/32"]);
    ns.run(|| {
        const WORKERS: u32 = 4;
        const CONTROL: u32 = WORKERS; // socket index 4
        let group = UdpGroup::bind(&UdpConfig::new("192.0.2.1:0".parse().unwrap(), 5)).unwrap();
        let port = group.local_addr().port();
        attach_spi_steering(group.sockets(), WORKERS, CONTROL).unwrap();
        let socks: Vec<UdpSocket> = group.into_sockets().into_iter().map(UdpSocket::from).collect();

        // One fixed source port, so the kernel's hash alone would pick one socket.
        let client = UdpSocket::bind("192.0.2.1:0").unwrap();
        let dst: SocketAddr = format!("192.0.2.1:{port}").parse().unwrap();
        let spis: Vec<u32> = (0x1000_0000u32..0x1000_0000 + 24).chain([1, 0xffff_ffff, 7, 256]).collect();
        for &spi in &spis {
            let mut d = spi.to_be_bytes().to_vec();
            d.extend_from_slice(&[0xaa; 20]);
            client.send_to(&d, dst).unwrap();
        }
        // Non-ESP marker + a fake IKE header start, and a NAT keepalive.
        client.send_to(&[0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55], dst).unwrap();
        client.send_to(&[0xff], dst).unwrap();
        // A 3-byte runt also goes to control.
        client.send_to(&[1, 2, 3], dst).unwrap();

        let total = spis.len() + 3;
        let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); socks.len()];
        let start = Instant::now();
        let mut n = 0;
        while n < total && start.elapsed() < DEADLINE {
            for (i, s) in socks.iter().enumerate() {
                let mut buf = [0u8; 64];
                loop {
                    match s.recv(&mut buf) {
                        Ok(len) => {
                            got[i].push(buf[..len].to_vec());
                            n += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(n, total, "all datagrams arrive");
        for (i, dgrams) in got.iter().enumerate().take(WORKERS as usize) {
            for d in dgrams {
                let spi = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                assert_eq!(spi % WORKERS, i as u32, "SPI {spi:#x} landed on socket {i}");
            }
        }
        let expected_per_worker: Vec<usize> =
            (0..WORKERS).map(|w| spis.iter().filter(|&&s| s % WORKERS == w).count()).collect();
        let per_worker: Vec<usize> = got.iter().take(WORKERS as usize).map(Vec::len).collect();
        assert_eq!(per_worker, expected_per_worker);
        let control = &got[CONTROL as usize];
        assert_eq!(control.len(), 3, "marker, keepalive and runt go to control: {control:?}");
        assert!(control.contains(&vec![0xff]));
        assert!(control.contains(&vec![1, 2, 3]));
        assert!(control.iter().any(|d| d.starts_with(&[0, 0, 0, 0, 0x11])));
    })
    .unwrap();
}

/// Receives until `want` datagrams (counting GRO segments) or bytes arrive
/// or the deadline passes; returns (payload, meta) pairs.
fn recv_all(io: &mut AnyIo, batch: &mut PacketBatch, want_bytes: usize) -> Vec<(Vec<u8>, PacketMeta)> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let start = Instant::now();
    while bytes < want_bytes && start.elapsed() < DEADLINE {
        let n = io.recv_udp(batch).unwrap();
        for i in 0..n {
            let p = batch.packet(i).unwrap().to_vec();
            bytes += p.len();
            out.push((p, *batch.meta(i).unwrap()));
        }
        if n == 0 {
            io.wait(Interest { udp_read: true, ..Interest::default() }, Some(Duration::from_millis(50)))
                .unwrap();
        }
    }
    out
}

fn round_trip(kind: BackendKind, ns_name: &str, a: &str, b: &str, addrs: &[&str]) {
    if !root_tests_enabled() {
        return;
    }
    if kind == BackendKind::Uring
        && let Err(e) = uring_usable()
    {
        eprintln!("skipped: io_uring unusable here: {e}");
        return;
    }
    let ns = ns_with_addrs(ns_name, addrs);
    ns.run(|| {
        let open = |addr: &str, gro: bool| {
            let cfg = UdpConfig { gro, ..UdpConfig::new(addr.parse().unwrap(), 1) };
            let g = UdpGroup::bind(&cfg).unwrap();
            let (local, feat) = (g.local_addr(), g.features());
            let sock = g.into_sockets().pop().unwrap();
            (AnyIo::open(kind, Some(sock), None).unwrap(), local, feat)
        };
        let (mut io_a, addr_a, feat_a) = open(a, false);
        let (mut io_b, addr_b, feat_b) = open(b, true);
        let (mut io_c, addr_c, _) = open(b, false);
        assert_eq!(io_a.kind(), kind);
        eprintln!("UDP features: sender {feat_a:?}, GRO receiver {feat_b:?}");

        // 1. A batch of 40 datagrams of varying size and TOS, A -> B.
        let toses = [0x00u8, 0x01, 0x02, 0x03, 0xb8, 0xba];
        let mut out = PacketBatch::with_headroom(40, 2048, 48);
        let mut want = Vec::new();
        for i in 0..40usize {
            let len = 1 + i * 37;
            let payload: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            let tos = toses[i % toses.len()];
            assert!(out.push(&payload, PacketMeta { addr: addr_b, tos, ..PacketMeta::EMPTY }));
            want.push((payload, tos));
        }
        let mut from = 0;
        let start = Instant::now();
        while from < out.len() && start.elapsed() < DEADLINE {
            from += io_a.send_udp(&out, from).unwrap();
        }
        assert_eq!(from, 40);
        let mut inb = PacketBatch::with_headroom(16, 65536 + 64, 64);
        let total: usize = want.iter().map(|w| w.0.len()).sum();
        let got = recv_all(&mut io_b, &mut inb, total);
        assert_eq!(got.len(), 40, "40 datagrams in order (one flow on loopback)");
        for ((p, m), (wp, wt)) in got.iter().zip(&want) {
            assert_eq!(p, wp);
            assert_eq!(m.addr, addr_a);
            assert_eq!(m.tos, *wt, "TOS/traffic class seen by the receiver");
            assert_eq!(m.segment_size, 0);
            assert!(!m.truncated);
        }

        // 2. GSO: one slot of 4 x 1000 + 500 bytes; to the GRO receiver it
        // arrives coalesced, to the plain receiver as 5 datagrams.
        if feat_a.gso {
            let seg: Vec<u8> = (0..4500u32).map(|j| (j / 1000) as u8 + 1).collect();
            let mut gso = PacketBatch::new(2, 8192);
            let meta = PacketMeta { segment_size: 1000, tos: 0x02, ..PacketMeta::EMPTY };
            assert!(gso.push(&seg, PacketMeta { addr: addr_b, ..meta }));
            assert!(gso.push(&seg, PacketMeta { addr: addr_c, ..meta }));
            assert_eq!(io_a.send_udp(&gso, 0).unwrap(), 2);

            let plain = recv_all(&mut io_c, &mut inb, 4500);
            let lens: Vec<usize> = plain.iter().map(|(p, _)| p.len()).collect();
            assert_eq!(lens, [1000, 1000, 1000, 1000, 500], "GSO split for a non-GRO receiver");
            assert_eq!(plain.concat_payload(), seg);
            assert!(plain.iter().all(|(_, m)| m.tos == 0x02 && m.addr == addr_a));

            let co = recv_all(&mut io_b, &mut inb, 4500);
            if feat_b.gro {
                assert_eq!(co.len(), 1, "GRO receiver gets one coalesced datagram");
                assert_eq!(co[0].1.segment_size, 1000);
            }
            assert_eq!(co.concat_payload(), seg);
        } else {
            eprintln!("UDP GSO not available: GSO part skipped");
        }
    })
    .unwrap();
}

trait Concat {
    fn concat_payload(&self) -> Vec<u8>;
}

impl Concat for Vec<(Vec<u8>, PacketMeta)> {
    fn concat_payload(&self) -> Vec<u8> {
        self.iter().flat_map(|(p, _)| p.iter().copied()).collect()
    }
}

#[test]
fn udp_round_trip_v4_syscall() {
    round_trip(
        BackendKind::Syscall,
        "esptun-io-u4s",
        "192.0.2.1:0",
        "192.0.2.2:0",
        &["192.0.2.1/32", "192.0.2.2/32"],
    );
}

#[test]
fn udp_round_trip_v4_uring() {
    round_trip(
        BackendKind::Uring,
        "esptun-io-u4u",
        "192.0.2.1:0",
        "192.0.2.2:0",
        &["192.0.2.1/32", "192.0.2.2/32"],
    );
}

#[test]
fn udp_round_trip_v6_syscall() {
    round_trip(
        BackendKind::Syscall,
        "esptun-io-u6s",
        "[2001:db8::1]:0",
        "[2001:db8::2]:0",
        &["2001:db8::1/128", "2001:db8::2/128"],
    );
}

#[test]
fn udp_round_trip_v6_uring() {
    round_trip(
        BackendKind::Uring,
        "esptun-io-u6u",
        "[2001:db8::1]:0",
        "[2001:db8::2]:0",
        &["2001:db8::1/128", "2001:db8::2/128"],
    );
}

fn open_one(kind: BackendKind, cfg: &UdpConfig) -> (AnyIo, SocketAddr) {
    let g = UdpGroup::bind(cfg).unwrap();
    let local = g.local_addr();
    (AnyIo::open(kind, g.into_sockets().pop(), None).unwrap(), local)
}

/// A dual-stack IPv6 socket sees an IPv4 peer as IPv4 (not v4-mapped), gets
/// its TOS, and can answer it with a TOS of its own.
#[test]
fn dual_stack_socket_speaks_ipv4_with_tos() {
    if !root_tests_enabled() {
        return;
    }
    let ns = ns_with_addrs("esptun-io-dual", &["192.0.2.1/32"]);
    ns.run(|| {
        let kind = BackendKind::Syscall;
        let dual_cfg = UdpConfig { v6only: false, ..UdpConfig::new("[::]:0".parse().unwrap(), 1) };
        let (mut dual, dual_addr) = open_one(kind, &dual_cfg);
        let (mut v4, v4_addr) = open_one(kind, &UdpConfig::new("192.0.2.1:0".parse().unwrap(), 1));
        let to_dual = SocketAddr::new("192.0.2.1".parse().unwrap(), dual_addr.port());
        let mut b = PacketBatch::new(1, 2048);
        assert!(b.push(b"ping", PacketMeta { addr: to_dual, tos: 0x01, ..PacketMeta::EMPTY }));
        assert_eq!(v4.send_udp(&b, 0).unwrap(), 1);
        let mut inb = PacketBatch::new(4, 2048);
        let got = recv_all(&mut dual, &mut inb, 4);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, b"ping");
        assert_eq!(got[0].1.addr, v4_addr, "IPv4 peer reported as IPv4");
        assert_eq!(got[0].1.tos, 0x01);

        b.clear();
        assert!(b.push(b"pong", PacketMeta { addr: v4_addr, tos: 0x03, ..PacketMeta::EMPTY }));
        assert_eq!(dual.send_udp(&b, 0).unwrap(), 1);
        let got = recv_all(&mut v4, &mut inb, 4);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, b"pong");
        assert_eq!(got[0].1.tos, 0x03);
        assert_eq!(got[0].1.addr.port(), dual_addr.port());
    })
    .unwrap();
}

/// Rough loopback rate per backend (not a benchmark of record): run with
/// `cargo test --release --test io_udp -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check"]
fn loopback_rate_probe() {
    if !root_tests_enabled() {
        return;
    }
    let ns = ns_with_addrs("esptun-io-rate", &["192.0.2.1/32", "192.0.2.2/32"]);
    ns.run(|| {
        for kind in [BackendKind::Syscall, BackendKind::Uring] {
            if kind == BackendKind::Uring && uring_usable().is_err() {
                continue;
            }
            for gso in [false, true] {
                let (mut tx, _) = open_one(kind, &UdpConfig::new("192.0.2.1:0".parse().unwrap(), 1));
                let cfg = UdpConfig { gro: gso, ..UdpConfig::new("192.0.2.2:0".parse().unwrap(), 1) };
                let (mut rx, dst) = open_one(kind, &cfg);
                let (batch, seg) = if gso { (4, 1400u16) } else { (64, 0) };
                let per_slot = if gso { 40 } else { 1 };
                let mut out = PacketBatch::new(batch, 1400 * per_slot);
                for _ in 0..batch {
                    let meta = PacketMeta { addr: dst, segment_size: seg, ..PacketMeta::EMPTY };
                    assert!(out.push(&vec![0x5a; 1400 * per_slot], meta));
                }
                let mut inb = PacketBatch::new(64, 65536);
                let (mut sent, mut got_bytes) = (0usize, 0usize);
                let start = Instant::now();
                while sent < 200_000 && start.elapsed() < Duration::from_secs(10) {
                    if let Ok(k) = tx.send_udp(&out, 0) {
                        sent += k * per_slot;
                    }
                    while rx.recv_udp(&mut inb).unwrap() > 0 {
                        got_bytes += (0..inb.len()).map(|i| inb.meta(i).unwrap().len).sum::<usize>();
                    }
                }
                let secs = start.elapsed().as_secs_f64();
                eprintln!(
                    "{kind:?} gso/gro={gso}: sent {sent} x 1400 B, received {:.0} kpps, {:.2} Gbit/s",
                    got_bytes as f64 / 1400.0 / secs / 1e3,
                    got_bytes as f64 * 8.0 / secs / 1e9
                );
            }
        }
    })
    .unwrap();
}

/// Counts allocations made by the current thread while enabled.
struct CountingAlloc;

thread_local! {
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; the thread-locals are
// const-initialised Cells without destructors, so touching them cannot
// allocate or recurse.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// After warm-up, batch send/receive allocates nothing on either backend.
#[test]
fn steady_state_batches_do_not_allocate() {
    if !root_tests_enabled() {
        return;
    }
    // The counter itself works.
    COUNTING.with(|c| c.set(true));
    drop(std::hint::black_box(Box::new(7u64)));
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.with(|a| a.replace(0)), 1);
    let ns = ns_with_addrs("esptun-io-alloc", &["192.0.2.1/32", "192.0.2.2/32"]);
    ns.run(|| {
        for kind in [BackendKind::Syscall, BackendKind::Uring] {
            if kind == BackendKind::Uring && uring_usable().is_err() {
                continue;
            }
            let (mut tx, _) = open_one(kind, &UdpConfig::new("192.0.2.1:0".parse().unwrap(), 1));
            let (mut rx, dst) = open_one(kind, &UdpConfig::new("192.0.2.2:0".parse().unwrap(), 1));
            let mut out = PacketBatch::new(32, 1500);
            for i in 0..32u8 {
                let meta = PacketMeta { addr: dst, tos: i & 3, ..PacketMeta::EMPTY };
                assert!(out.push(&[i; 1200], meta));
            }
            let mut inb = PacketBatch::new(32, 2048);
            let mut round = |n: usize| {
                let mut got = 0;
                for _ in 0..n {
                    let _ = tx.send_udp(&out, 0);
                    while let Ok(k) = rx.recv_udp(&mut inb) {
                        if k == 0 {
                            break;
                        }
                        got += k;
                    }
                }
                got
            };
            round(50); // warm-up: scratch arrays reach their final size
            COUNTING.with(|c| c.set(true));
            let got = round(1000);
            COUNTING.with(|c| c.set(false));
            let allocs = ALLOCS.with(|a| a.replace(0));
            assert!(got > 10_000, "{kind:?}: traffic flowed ({got} datagrams)");
            assert_eq!(allocs, 0, "{kind:?}: allocations in steady state");
        }
    })
    .unwrap();
}
