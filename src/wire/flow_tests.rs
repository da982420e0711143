use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

/// IPv4 header (checksum left 0: the flow parser does not verify it).
fn v4(tos: u8, proto: u8, flags_frag: u16, l4: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + l4.len()).unwrap().to_be_bytes();
    let ff = flags_frag.to_be_bytes();
    let mut p = vec![0x45, tos, total[0], total[1], 0, 1, ff[0], ff[1], 64, proto, 0, 0];
    p.extend_from_slice(&[198, 51, 100, 1, 203, 0, 113, 5]);
    p.extend_from_slice(l4);
    p
}

/// IPv6 packet 2001:db8::1 -> 2001:db8::2 with traffic class `tc`.
fn v6(tc: u8, next_header: u8, rest: &[u8]) -> Vec<u8> {
    let pl = u16::try_from(rest.len()).unwrap().to_be_bytes();
    let mut p = vec![0x60 | (tc >> 4), tc << 4, 0, 0, pl[0], pl[1], next_header, 64];
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(rest);
    p
}

const TCP_443: [u8; 20] =
    [0xc0, 0x00, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
const UDP_53: [u8; 8] = [0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];

fn a4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn a6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn tcp_v4() {
    let k = FlowKey::parse(&v4(0x28, 6, 0x4000, &TCP_443)).unwrap();
    let want = FlowKey {
        src: a4(198, 51, 100, 1),
        dst: a4(203, 0, 113, 5),
        proto: 6,
        src_port: Some(49152),
        dst_port: Some(443),
        dscp: 10,
    };
    assert_eq!(k, want);
}

#[test]
fn udp_v6_behind_dest_opts() {
    let mut rest = vec![17, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&UDP_53);
    let k = FlowKey::parse(&v6(0xb8, 60, &rest)).unwrap();
    assert_eq!(k.src, a6("2001:db8::1"));
    assert_eq!(k.dst, a6("2001:db8::2"));
    assert_eq!((k.proto, k.src_port, k.dst_port, k.dscp), (17, Some(12345), Some(53), 46));
}

#[test]
fn icmp_ports_are_type_and_code() {
    let echo = [8, 0, 0, 0, 0, 1, 0, 1];
    let k = FlowKey::parse(&v4(0, 1, 0, &echo)).unwrap();
    assert_eq!((k.proto, k.src_port, k.dst_port), (1, Some(0x0800), Some(0x0800)));
    let frag_needed = [3, 4, 0, 0, 0, 0, 0x05, 0xdc];
    let k = FlowKey::parse(&v4(0, 1, 0, &frag_needed)).unwrap();
    assert_eq!(k.src_port, Some(0x0304));
    let too_big = [2, 0, 0, 0, 0, 0, 0x05, 0x00];
    let k = FlowKey::parse(&v6(0, 58, &too_big)).unwrap();
    assert_eq!((k.proto, k.src_port, k.dst_port), (58, Some(0x0200), Some(0x0200)));
    // ICMPv6 numbers inside IPv4 (and ICMP inside IPv6) carry no ports.
    assert_eq!(FlowKey::parse(&v4(0, 58, 0, &too_big)).unwrap().src_port, None);
    assert_eq!(FlowKey::parse(&v6(0, 1, &echo)).unwrap().src_port, None);
}

#[test]
fn other_port_protocols() {
    for proto in [17u8, 132, 136] {
        let k = FlowKey::parse(&v4(0, proto, 0, &UDP_53)).unwrap();
        assert_eq!((k.src_port, k.dst_port), (Some(12345), Some(53)), "proto {proto}");
    }
    let gre = FlowKey::parse(&v4(0, 47, 0, &[0, 0, 0x08, 0x00])).unwrap();
    assert_eq!((gre.proto, gre.src_port, gre.dst_port), (47, None, None));
}

#[test]
fn fragments_are_opaque_unless_first() {
    let first = FlowKey::parse(&v4(0, 17, 0x2000, &UDP_53)).unwrap();
    assert_eq!(first.dst_port, Some(53));
    let later = FlowKey::parse(&v4(0, 17, 0x00b9, &UDP_53)).unwrap();
    assert_eq!((later.proto, later.src_port, later.dst_port), (17, None, None));
    let mut f6 = vec![17, 0, 0x05, 0xa8, 0, 0, 0, 9];
    f6.extend_from_slice(&UDP_53);
    let later6 = FlowKey::parse(&v6(0, 44, &f6)).unwrap();
    assert_eq!((later6.proto, later6.src_port), (17, None));
    f6[2] = 0;
    f6[3] = 1; // offset 0, M set
    assert_eq!(FlowKey::parse(&v6(0, 44, &f6)).unwrap().src_port, Some(12345));
}

#[test]
fn short_transport_means_no_ports() {
    let k = FlowKey::parse(&v4(0, 6, 0, &[0xc0, 0x00, 0x01])).unwrap();
    assert_eq!((k.proto, k.src_port, k.dst_port), (6, None, None));
    let k = FlowKey::parse(&v4(0, 1, 0, &[8])).unwrap();
    assert_eq!(k.src_port, None);
    let k = FlowKey::parse(&v6(0, 60, &[6, 0, 1, 4, 0, 0, 0, 0])).unwrap();
    assert_eq!((k.proto, k.src_port), (6, None));
}

#[test]
fn errors() {
    assert_eq!(FlowKey::parse(&[]), Err(WireError::Truncated));
    assert_eq!(FlowKey::parse(&[0x55; 40]), Err(WireError::BadVersion));
    let late_hbh = v6(0, 60, &[0, 0, 1, 4, 0, 0, 0, 0, 59, 0, 1, 4, 0, 0, 0, 0]);
    assert_eq!(FlowKey::parse(&late_hbh), Err(WireError::BadExtHeader));
    for pkt in [v4(0, 6, 0, &TCP_443), v6(0, 17, &UDP_53)] {
        for n in 0..pkt.len() {
            assert!(FlowKey::parse(&pkt[..n]).is_err(), "len {n}");
        }
    }
}

fn key(i: u32) -> FlowKey {
    FlowKey {
        src: IpAddr::V4(Ipv4Addr::from(0xc633_6400 | (i >> 16))),
        dst: a4(203, 0, 113, 5),
        proto: 17,
        src_port: Some((i & 0xffff) as u16),
        dst_port: Some(4500),
        dscp: 0,
    }
}

#[test]
fn hash_depends_on_every_field_and_seed() {
    let k = key(7);
    let h = k.hash(1);
    assert_eq!(h, k.hash(1));
    assert_ne!(h, k.hash(2));
    let variants = [
        FlowKey { src: a4(198, 51, 100, 2), ..k },
        FlowKey { dst: a4(203, 0, 113, 6), ..k },
        FlowKey { proto: 6, ..k },
        FlowKey { src_port: Some(8), ..k },
        FlowKey { dst_port: Some(4501), ..k },
        FlowKey { dscp: 1, ..k },
        FlowKey { src_port: None, dst_port: None, ..k },
        FlowKey { src: a6("::c633:6400"), dst: a6("::cb00:7105"), ..k },
        k.reversed(),
    ];
    for v in variants {
        assert_ne!(v.hash(1), h, "{v:?}");
    }
    let zero = FlowKey { src_port: Some(0), dst_port: Some(0), ..k };
    let none = FlowKey { src_port: None, dst_port: None, ..k };
    assert_ne!(zero.hash(1), none.hash(1));
    assert_ne!(zero.symmetric_hash(1), none.symmetric_hash(1));
}

#[test]
fn symmetric_hash_matches_reverse_direction() {
    let k = FlowKey::parse(&v4(0, 6, 0, &TCP_443)).unwrap();
    assert_eq!(k.symmetric_hash(9), k.reversed().symmetric_hash(9));
    assert_ne!(k.symmetric_hash(9), k.symmetric_hash(10));
    // Same addresses, different port pairing: a different flow.
    let other = FlowKey { src_port: k.dst_port, ..k };
    assert_ne!(other.symmetric_hash(9), k.symmetric_hash(9));
}

#[test]
fn hash_spreads_sequential_flows_over_buckets() {
    // 2^16 flows differing only in the source port, into 64 buckets by the
    // low bits and by the high bits: each bucket should get 1024 +- 15%.
    let mut low = [0u32; 64];
    let mut high = [0u32; 64];
    for i in 0..65536u32 {
        let h = key(i).hash(0x5eed);
        low[(h & 63) as usize] += 1;
        high[(h >> 58) as usize] += 1;
    }
    for (l, h) in low.iter().zip(high.iter()) {
        assert!((870..=1178).contains(l), "low buckets {low:?}");
        assert!((870..=1178).contains(h), "high buckets {high:?}");
    }
}

#[test]
fn hash_avalanche() {
    // Flipping any single bit of the source port or address flips close
    // to half of the 64 output bits on average.
    let mut total = 0u64;
    let mut n = 0u64;
    for i in 0..2000u32 {
        let k = key(i.wrapping_mul(2_654_435_761));
        let h = k.hash(42);
        for bit in 0..16 {
            let p = k.src_port.unwrap() ^ (1 << bit);
            total += u64::from((FlowKey { src_port: Some(p), ..k }.hash(42) ^ h).count_ones());
            n += 1;
        }
        for bit in 0..32 {
            let IpAddr::V4(a) = k.dst else { unreachable!() };
            let d = IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ (1 << bit)));
            total += u64::from((FlowKey { dst: d, ..k }.hash(42) ^ h).count_ones());
            n += 1;
        }
    }
    let mean = total as f64 / n as f64;
    assert!((30.0..34.0).contains(&mean), "mean flipped bits {mean}");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = FlowKey::parse(&data);
    }

    #[test]
    fn symmetric_for_any_key(s: u128, d: u128, proto: u8, sp: Option<u16>, dp: Option<u16>, dscp in 0u8..64,
                             seed: u64, six: bool) {
        let (src, dst) = if six {
            (IpAddr::V6(s.into()), IpAddr::V6(d.into()))
        } else {
            (IpAddr::V4((s as u32).into()), IpAddr::V4((d as u32).into()))
        };
        let k = FlowKey { src, dst, proto, src_port: sp, dst_port: dp, dscp };
        prop_assert_eq!(k.symmetric_hash(seed), k.reversed().symmetric_hash(seed));
        prop_assert_eq!(k.reversed().reversed(), k);
    }
}
