//! The io_uring backend's multishot receive on real devices (root only;
//! others print "skipped: ..." and pass, unless ESPTUN_STRICT=1):
//!
//! - TUN: ICMP echo requests written into a TUN queue, the kernel's replies
//!   read back through the multishot read on a buffer ring small enough to
//!   run dry (re-armed), with and without virtio headers;
//! - the `esptun run` tunnel between two namespaces on `--io uring`: both
//!   daemons say their UDP and TUN receives use multishot (and none fell
//!   back), and a TCP stream and datagrams go through byte-exact both ways
//!   with nothing dropped.
//!
//! The UDP side's unit tests (exhaustion, GRO, drop) are in
//! src/dataplane/uring/tests.rs.

mod common;
mod tunnel;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use esptun::dataplane::backend::{Interest, PacketIo, uring_usable};
use esptun::dataplane::batch::{PacketBatch, PacketMeta};
use esptun::dataplane::netns::NetNs;
use esptun::dataplane::tun::{TunConfig, TunDevice};
use esptun::dataplane::uring::{RxMode, UringIo};
use esptun::dataplane::vnet::VNET_HDR_LEN;
use esptun::wire::checksum;
use tunnel::traffic::{ping, tcp_transfer, udp_exchange};
use tunnel::{Fam, Io, Pair, inner};

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

fn can_run() -> bool {
    if !common::root_tests_enabled() {
        return false;
    }
    if let Err(e) = uring_usable() {
        eprintln!("skipped: io_uring unusable here: {e}");
        return false;
    }
    true
}

/// An IPv4 ICMP echo request PEER -> LOCAL with sequence `seq`.
fn echo_request(seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x42, 0x42];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(&[seq as u8; 56]);
    let c = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&PEER.octets());
    ip.extend_from_slice(&LOCAL.octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

fn tun_echoes(ns_name: &str, vnet: bool) {
    if !can_run() {
        return;
    }
    let ns = NetNs::create(ns_name).unwrap();
    ns.run(|| {
        let cfg =
            TunConfig { vnet_hdr: vnet, addrs: vec![(LOCAL.into(), 24)], ..TunConfig::new("esptun-ms") };
        let q = TunDevice::open(&cfg).unwrap().into_queues().pop().unwrap();
        let mut io = UringIo::new(None, Some(q)).unwrap();
        let pre = if vnet { VNET_HDR_LEN } else { 0 };
        // 8 slots: an 8-buffer ring, so bursts of replies run it dry.
        let mut rx = PacketBatch::with_headroom(8, 65536 + 200, 64);
        io.read_tun(&mut rx).unwrap(); // arms (may read what the kernel sends a new link)
        if io.mode().tun != RxMode::Multishot {
            assert!(!common::strict(), "no multishot TUN read here: {:?}", io.mode());
            eprintln!("skipped: no multishot TUN read here ({:?})", io.mode());
            return;
        }
        const N: u16 = 300;
        let mut tx = PacketBatch::with_headroom(32, 2048, 64);
        let mut seen = vec![false; usize::from(N)];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seq = 0;
        while seen.iter().any(|s| !s) {
            assert!(Instant::now() < deadline, "replies seen: {}", seen.iter().filter(|s| **s).count());
            // Bursts of 32 requests, read back in batches of 8.
            if seq < N {
                tx.clear();
                while seq < N && tx.len() < tx.capacity() {
                    let mut pkt = vec![0; pre];
                    pkt.extend_from_slice(&echo_request(seq));
                    assert!(tx.push(&pkt, PacketMeta::EMPTY));
                    seq += 1;
                }
                assert_eq!(io.write_tun(&tx, 0).unwrap(), tx.len());
            }
            let n = io.read_tun(&mut rx).unwrap();
            for i in 0..n {
                let p = &rx.packet(i).unwrap()[pre..];
                // IPv4 ICMP echo reply LOCAL -> PEER with our id.
                if p.len() >= 28 && p[9] == 1 && p[20] == 0 && p[24..26] == [0x42, 0x42] {
                    assert_eq!(checksum::checksum(&p[20..]), 0);
                    let s = u16::from_be_bytes([p[26], p[27]]);
                    assert!(p[28..].iter().all(|&b| b == s as u8), "payload of {s}");
                    seen[usize::from(s)] = true;
                }
            }
            if n == 0 && seq >= N {
                io.wait(Interest { tun_read: true, ..Interest::default() }, Some(Duration::from_millis(50)))
                    .unwrap();
            }
        }
        let st = io.stats();
        eprintln!("{ns_name}: {st:?}");
        assert_eq!(io.mode().tun, RxMode::Multishot);
        assert!(st.swapped >= u64::from(N) && st.copied == 0 && st.nobufs >= 1, "{st:?}");
    })
    .unwrap();
}

#[test]
fn tun_multishot_read_vnet() {
    tun_echoes("esptun-ms-tv", true);
}

#[test]
fn tun_multishot_read_plain() {
    tun_echoes("esptun-ms-tp", false);
}

fn tunnel_on_multishot(outer: Fam, inner_fam: Fam, tag: &str) {
    if !can_run() || !common::tool("ping", "-V") {
        return;
    }
    let pair = Pair::new(tag, outer);
    let (mut a, mut b) = pair.start_both(&[inner_fam], Io::Uring);
    let (ia, ib) = (inner(inner_fam, true), inner(inner_fam, false));
    assert_eq!(ping(&pair.a, ib, 3).received, 3);
    let bytes = 16 << 20;
    tcp_transfer(&pair.a, &pair.b, ia, ib, bytes, 7).unwrap();
    tcp_transfer(&pair.b, &pair.a, ib, ia, bytes, 8).unwrap();
    udp_exchange(&pair.a, &pair.b, ia, ib, 200, false).unwrap();
    udp_exchange(&pair.b, &pair.a, ib, ia, 200, false).unwrap();
    for (who, d) in [("A", &mut a), ("B", &mut b)] {
        let s = d.stop();
        let log = d.log();
        assert!(log.contains("udp receive uses multishot recvmsg"), "{who}: UDP multishot:\n{log}");
        assert!(log.contains("tun receive uses multishot read"), "{who}: TUN multishot:\n{log}");
        assert!(!log.contains("one SQE per slot"), "{who}: nothing fell back:\n{log}");
        assert!(s.rx_bytes > bytes && s.tx_bytes > bytes, "{who}: {}", s.line);
        assert_eq!(s.unexpected_drops(&[]), Vec::<String>::new(), "{who}: {}", s.line);
    }
}

#[test]
fn tunnel_v4_on_multishot() {
    tunnel_on_multishot(Fam::V4, Fam::V4, "ms44");
}

#[test]
fn tunnel_v6_in_v6_on_multishot() {
    tunnel_on_multishot(Fam::V6, Fam::V6, "ms66");
}
