//! TUN I/O layer tests in private network namespaces: the kernel answers an
//! ICMP echo written into a TUN queue (both backends), multi-queue opening,
//! the offload probe, and real TSO / USO super-packets read back with their
//! virtio headers. Root only; others print "skipped: ..." and pass unless
//! ESPTUN_REQUIRE_ROOT=1. Packets are built and parsed by hand here.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use esptun::dataplane::backend::{AnyIo, BackendKind, Interest, PacketIo, uring_usable};
use esptun::dataplane::batch::{PacketBatch, PacketMeta};
use esptun::dataplane::netns::{NetNs, root_tests_enabled};
use esptun::dataplane::tun::{TunConfig, TunDevice};
use esptun::dataplane::udp::{UdpConfig, UdpGroup};
use esptun::dataplane::vnet::{GsoType, VNET_HDR_LEN, VnetHdr, complete_checksum};
use esptun::wire::checksum;

const DEADLINE: Duration = Duration::from_secs(3);
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

fn skip_backend(kind: BackendKind) -> bool {
    if !root_tests_enabled() {
        return true;
    }
    if kind == BackendKind::Uring
        && let Err(e) = uring_usable()
    {
        eprintln!("skipped: io_uring unusable here: {e}");
        return true;
    }
    false
}

fn tun_cfg(name: &str, queues: usize) -> TunConfig {
    TunConfig { queues, addrs: vec![(LOCAL.into(), 24)], ..TunConfig::new(name) }
}

/// IPv4 header (no options) with a correct header checksum.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn icmp_echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// Prefixes the all-zero virtio header when the queue expects one.
fn framed(vnet: bool, pkt: &[u8]) -> Vec<u8> {
    let mut v = if vnet { vec![0; VNET_HDR_LEN] } else { Vec::new() };
    v.extend_from_slice(pkt);
    v
}

/// Reads packets from all backends until `pick` returns Some or the
/// deadline passes.
fn read_until<T>(ios: &mut [AnyIo], mut pick: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    let mut batch = PacketBatch::with_headroom(8, 65536 + VNET_HDR_LEN + 64, 64);
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        let mut any = false;
        for io in ios.iter_mut() {
            let n = io.read_tun(&mut batch).unwrap();
            any |= n > 0;
            for i in 0..n {
                if let Some(t) = pick(batch.packet(i).unwrap()) {
                    return Some(t);
                }
            }
        }
        if !any {
            let tun_read = Interest { tun_read: true, ..Interest::default() };
            ios[0].wait(tun_read, Some(Duration::from_millis(20))).unwrap();
        }
    }
    None
}

fn write_one(io: &mut AnyIo, bytes: &[u8]) {
    let mut b = PacketBatch::with_headroom(1, 65536, 40);
    assert!(b.push(bytes, PacketMeta::EMPTY));
    assert_eq!(io.write_tun(&b, 0).unwrap(), 1);
}

fn icmp_echo_through_kernel(kind: BackendKind, ns_name: &str, vnet: bool) {
    if skip_backend(kind) {
        return;
    }
    let ns = NetNs::create(ns_name).unwrap();
    ns.run(|| {
        let dev = TunDevice::open(&TunConfig { vnet_hdr: vnet, ..tun_cfg("esptun-t0", 2) }).unwrap();
        let mut ios: Vec<AnyIo> =
            dev.into_queues().into_iter().map(|q| AnyIo::open(kind, None, Some(q)).unwrap()).collect();
        let data = b"esptun echo payload";
        let req = ipv4(PEER, LOCAL, 1, &icmp_echo_request(0x4242, 7, data));
        write_one(&mut ios[0], &framed(vnet, &req));

        let reply = read_until(&mut ios, |p| {
            let ip = if vnet {
                let h = VnetHdr::parse(p).unwrap();
                assert!(!h.is_gso());
                &p[VNET_HDR_LEN..]
            } else {
                p
            };
            // IPv4, ICMP, from LOCAL to PEER, echo reply.
            (ip.len() >= 28 && ip[0] >> 4 == 4 && ip[9] == 1 && ip[12..16] == LOCAL.octets() && ip[20] == 0)
                .then(|| ip.to_vec())
        })
        .expect("echo reply read back from a TUN queue");
        assert_eq!(&reply[16..20], &PEER.octets());
        let ihl = usize::from(reply[0] & 0x0f) * 4;
        assert_eq!(checksum::checksum(&reply[..ihl]), 0, "IPv4 header checksum valid");
        let icmp = &reply[ihl..];
        assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum valid");
        assert_eq!(&icmp[4..6], &0x4242u16.to_be_bytes());
        assert_eq!(&icmp[6..8], &7u16.to_be_bytes());
        assert_eq!(&icmp[8..], data);
    })
    .unwrap();
}

#[test]
fn tun_icmp_echo_syscall_vnet() {
    icmp_echo_through_kernel(BackendKind::Syscall, "esptun-io-t0s", true);
}

#[test]
fn tun_icmp_echo_uring_vnet() {
    icmp_echo_through_kernel(BackendKind::Uring, "esptun-io-t0u", true);
}

#[test]
fn tun_icmp_echo_syscall_plain() {
    icmp_echo_through_kernel(BackendKind::Syscall, "esptun-io-t0p", false);
}

#[test]
fn tun_icmp_echo_uring_plain() {
    icmp_echo_through_kernel(BackendKind::Uring, "esptun-io-t0q", false);
}

#[test]
fn multi_queue_opens_n_attached_queues() {
    if !root_tests_enabled() {
        return;
    }
    let ns = NetNs::create("esptun-io-mq").unwrap();
    ns.run(|| {
        let dev = TunDevice::open(&tun_cfg("esptun-mq", 4)).unwrap();
        assert_eq!(dev.name(), "esptun-mq");
        let fds: Vec<i32> = dev.queues().iter().map(AsRawFd::as_raw_fd).collect();
        assert_eq!(fds.len(), 4);
        let mut uniq = fds.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), 4, "distinct fds");
        for fd in fds {
            // The tun driver prints the attached interface in fdinfo.
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
            assert!(info.contains("iff:\tesptun-mq"), "fd {fd} attached: {info}");
        }
        for q in dev.queues() {
            assert_eq!(q.vnet_hdr_len(), VNET_HDR_LEN);
        }
    })
    .unwrap();
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = r.trim().split(['.', '-']).map(|s| s.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

#[test]
fn offload_probe_reports_and_flags_disable() {
    if !root_tests_enabled() {
        return;
    }
    let ns = NetNs::create("esptun-io-off").unwrap();
    ns.run(|| {
        let all = TunDevice::open(&tun_cfg("esptun-o1", 1)).unwrap();
        let o = all.offloads();
        eprintln!("TUN offloads with everything asked: {o:?}");
        assert!(o.vnet_hdr && o.csum && o.tso4 && o.tso6, "TSO exists since Linux 2.6");
        assert_eq!(o.uso, kernel_at_least(6, 2), "USO exactly on Linux 6.2+");

        let some =
            TunDevice::open(&TunConfig { tso4: false, uso: false, ..tun_cfg("esptun-o2", 2) }).unwrap();
        let o = some.offloads();
        assert!(o.vnet_hdr && o.csum && !o.tso4 && o.tso6 && !o.uso, "{o:?}");

        let none = TunDevice::open(&TunConfig { vnet_hdr: false, ..tun_cfg("esptun-o3", 1) }).unwrap();
        assert_eq!(none.offloads(), Default::default());
        assert_eq!(none.queues()[0].vnet_hdr_len(), 0);
    })
    .unwrap();
}

/// UDP sent with UDP_SEGMENT through the TUN route comes out of the TUN as
/// one USO super-packet (virtio gso_type UDP_L4) when USO is on.
#[test]
fn uso_super_packet_read_from_tun() {
    if !root_tests_enabled() {
        return;
    }
    let ns = NetNs::create("esptun-io-uso").unwrap();
    ns.run(|| {
        let dev = TunDevice::open(&tun_cfg("esptun-uso", 1)).unwrap();
        if !dev.offloads().uso {
            eprintln!("skipped: kernel without TUN USO");
            return;
        }
        let mut tun = AnyIo::open(BackendKind::Syscall, None, dev.into_queues().pop()).unwrap();
        let g = UdpGroup::bind(&UdpConfig::new(SocketAddr::new(LOCAL.into(), 0), 1)).unwrap();
        assert!(g.features().gso);
        let mut udp = AnyIo::open(BackendKind::Syscall, g.into_sockets().pop(), None).unwrap();
        let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut b = PacketBatch::new(1, 4096);
        let dst = SocketAddr::new(PEER.into(), 9999);
        assert!(b.push(&payload, PacketMeta { addr: dst, segment_size: 1000, ..PacketMeta::EMPTY }));
        assert_eq!(udp.send_udp(&b, 0).unwrap(), 1);

        let (h, mut pkt) = read_until(std::slice::from_mut(&mut tun), |p| {
            let h = VnetHdr::parse(p).ok()?;
            let ip = &p[VNET_HDR_LEN..];
            (ip.len() > 28 && ip[9] == 17 && ip[16..20] == PEER.octets()).then(|| (h, ip.to_vec()))
        })
        .expect("UDP super-packet on the TUN");
        assert_eq!(h.gso_type.kind(), GsoType::UDP_L4);
        assert_eq!(h.gso_size, 1000);
        assert_eq!(pkt.len(), 20 + 8 + 3000, "one packet carries all three segments");
        assert_eq!(&pkt[28..], &payload[..]);
        assert!(h.needs_csum());
        assert_eq!((h.csum_start, h.csum_offset), (20, 6));
        // Completing the partial checksum over the whole super-packet gives a
        // datagram whose UDP checksum verifies against the pseudo header.
        complete_checksum(&h, &mut pkt).unwrap();
        let pseudo = checksum::pseudo_v4(LOCAL, PEER, 17, (8 + 3000) as u16);
        assert_eq!(checksum::fold(checksum::sum(&pkt[20..], pseudo)), 0xffff);
    })
    .unwrap();
}

/// A TCP connection through the TUN to a hand-played peer: the kernel's
/// first data flight comes out as a TSO super-packet (gso_type TCPV4).
fn tso_super_packet(kind: BackendKind, ns_name: &str) {
    if skip_backend(kind) {
        return;
    }
    let ns = NetNs::create(ns_name).unwrap();
    ns.run(|| {
        let dev = TunDevice::open(&tun_cfg("esptun-tso", 1)).unwrap();
        assert!(dev.offloads().tso4);
        let mut ios = vec![AnyIo::open(kind, None, dev.into_queues().pop()).unwrap()];
        let peer = SocketAddr::new(PEER.into(), 8080);
        std::thread::scope(|s| {
            let client = s.spawn(move || {
                let mut c = TcpStream::connect_timeout(&peer, DEADLINE).expect("connect through TUN");
                c.write_all(&[0x5a; 14000]).unwrap();
                std::thread::sleep(Duration::from_millis(300));
            });
            // SYN from the kernel.
            let syn = read_until(&mut ios, |p| {
                let ip = &p[VNET_HDR_LEN..];
                (ip.len() >= 40 && ip[9] == 6 && ip[33] & 0x02 != 0).then(|| ip.to_vec())
            })
            .expect("SYN on the TUN");
            let ihl = usize::from(syn[0] & 0x0f) * 4;
            let (sport, seq) =
                (&syn[ihl..ihl + 2], u32::from_be_bytes(syn[ihl + 4..ihl + 8].try_into().unwrap()));
            // SYN-ACK: MSS 1360, window scale 7, window 65535.
            let mut tcp = vec![0x1f, 0x90, sport[0], sport[1]];
            tcp.extend_from_slice(&1_000_000u32.to_be_bytes());
            tcp.extend_from_slice(&(seq.wrapping_add(1)).to_be_bytes());
            tcp.extend_from_slice(&[(32 / 4) << 4, 0x12, 0xff, 0xff, 0, 0, 0, 0]);
            tcp.extend_from_slice(&[2, 4, 0x05, 0x50, 1, 3, 3, 7, 0, 0, 0, 0]);
            tcp.truncate(32);
            let c = !checksum::fold(checksum::sum(&tcp, checksum::pseudo_v4(PEER, LOCAL, 6, 32)));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            write_one(&mut ios[0], &framed(true, &ipv4(PEER, LOCAL, 6, &tcp)));

            let (h, mut pkt) = read_until(&mut ios, |p| {
                let h = VnetHdr::parse(p).ok()?;
                h.is_gso().then(|| (h, p[VNET_HDR_LEN..].to_vec()))
            })
            .expect("TSO super-packet on the TUN");
            client.join().unwrap();
            assert_eq!(h.gso_type.kind(), GsoType::TCPV4);
            assert_eq!(h.gso_size, 1360, "segments sized by the peer MSS / TUN MTU");
            assert!(pkt.len() > 20 + 20 + 1360, "more than one segment: {}", pkt.len());
            assert!(h.needs_csum());
            complete_checksum(&h, &mut pkt).unwrap();
            let tcp_len = (pkt.len() - 20) as u16;
            let pseudo = checksum::pseudo_v4(LOCAL, PEER, 6, tcp_len);
            assert_eq!(checksum::fold(checksum::sum(&pkt[20..], pseudo)), 0xffff);
        });
    })
    .unwrap();
}

#[test]
fn tso_super_packet_syscall() {
    tso_super_packet(BackendKind::Syscall, "esptun-io-tsos");
}

#[test]
fn tso_super_packet_uring() {
    tso_super_packet(BackendKind::Uring, "esptun-io-tsou");
}
