//! Parse costs on the outbound hot path: the flow key of typical inner
//! packets (the budget is < 20 ns) and the bare IPv4 header check.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use esptun::wire::{FlowKey, Ipv4Packet};

/// IPv4 TCP: 198.51.100.1:49152 -> 203.0.113.5:443, 20-byte header + data.
fn tcp_v4() -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 1, 203, 0, 113, 5];
    p.extend_from_slice(&[0xc0, 0, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(&[0u8; 20]);
    p
}

/// IPv6 UDP behind one destination-options header, 2001:db8::1 -> ::2.
fn udp_v6_ext() -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 36, 60, 64];
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    p.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 28, 0, 0]);
    p.extend_from_slice(&[0u8; 20]);
    p
}

/// IPv4 ICMP echo request.
fn icmp_v4() -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 36, 0, 1, 0, 0, 64, 1, 0, 0, 198, 51, 100, 1, 203, 0, 113, 5];
    p.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
    p.extend_from_slice(&[0u8; 8]);
    p
}

fn parse(c: &mut Criterion) {
    let cases = [("flow_tcp_v4", tcp_v4()), ("flow_udp_v6_ext", udp_v6_ext()), ("flow_icmp_v4", icmp_v4())];
    for (name, pkt) in &cases {
        assert!(FlowKey::parse(pkt).is_ok_and(|k| k.src_port.is_some()), "{name} must parse with ports");
        c.bench_function(name, |b| b.iter(|| FlowKey::parse(black_box(pkt))));
    }
    let pkt = tcp_v4();
    c.bench_function("ipv4_new_checked", |b| b.iter(|| Ipv4Packet::new_checked(black_box(&pkt[..]))));
    let key = FlowKey::parse(&pkt).ok();
    c.bench_function("flow_hash", |b| b.iter(|| black_box(key).map(|k| k.hash(black_box(7)))));
}

/// The Internet checksum over a 1,400-byte packet and a 20-byte header.
fn checksum(c: &mut Criterion) {
    let pkt: Vec<u8> = (0..1400u32).map(|i| (i * 31 % 251) as u8).collect();
    c.bench_function("checksum/1400", |b| b.iter(|| esptun::wire::checksum::sum(black_box(&pkt), 0)));
    c.bench_function("checksum/20", |b| b.iter(|| esptun::wire::checksum::sum(black_box(&pkt[..20]), 0)));
}

criterion_group!(benches, parse, checksum);
criterion_main!(benches);
