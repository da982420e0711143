//! TSO split and TUN coalescing: round trips and refusals.

use super::*;
use crate::wire::checksum;

fn tcp_packet(v6: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ip = if v6 { 40 } else { 20 };
    let tcp = 32; // 12 option bytes (NOP NOP timestamp)
    let total = ip + tcp + payload.len();
    let mut p = vec![0u8; total];
    if v6 {
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8..24].copy_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"2001:db8:2::1".parse::<Ipv6Addr>().unwrap().octets());
    } else {
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 51, 100, 1]);
        p[16..20].copy_from_slice(&[203, 0, 113, 1]);
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let t = ip;
    p[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
    p[t + 2..t + 4].copy_from_slice(&5201u16.to_be_bytes());
    p[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    p[t + 8..t + 12].copy_from_slice(&77u32.to_be_bytes());
    p[t + 12] = 8 << 4;
    p[t + 13] = flags;
    p[t + 14..t + 16].copy_from_slice(&512u16.to_be_bytes());
    p[t + 20..t + 32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]);
    p[ip + tcp..].copy_from_slice(payload);
    let sum = checksum::sum(&p[t..], pseudo(&p, v6, total - t));
    p[t + 16..t + 18].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
    p
}

fn tcp_ok(p: &[u8]) -> bool {
    let lay = tcp_layout(p).unwrap();
    checksum::fold(checksum::sum(&p[lay.l4..], pseudo(p, lay.v6, p.len() - lay.l4))) == 0xffff
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn tso_hdr(v6: bool, gso: u16) -> VnetHdr {
    VnetHdr {
        flags: VnetHdr::NEEDS_CSUM,
        gso_type: if v6 { GsoType::TCPV6 } else { GsoType::TCPV4 },
        hdr_len: 0,
        gso_size: gso,
        csum_start: if v6 { 40 } else { 20 },
        csum_offset: 16,
    }
}

fn split(v6: bool, payload: &[u8], gso: u16, flags: u8) -> Vec<Vec<u8>> {
    let sup = tcp_packet(v6, 1000, flags, payload);
    let plan = TsoPlan::new(&tso_hdr(v6, gso), &sup).unwrap();
    (0..plan.segments())
        .map(|i| {
            let mut d = vec![0u8; plan.max_segment_len()];
            let n = plan.write_segment(&sup, i, &mut d).unwrap();
            d.truncate(n);
            d
        })
        .collect()
}

#[test]
fn tso_split_fixes_lengths_seq_flags_and_checksums() {
    for v6 in [false, true] {
        let payload = pattern(3000);
        let segs = split(v6, &payload, 1100, ACK | PSH | FIN);
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let lay = tcp_layout(s).unwrap();
            assert!(tcp_ok(s), "TCP checksum of segment {i}");
            if !v6 {
                assert_eq!(checksum::checksum(&s[..20]), 0, "IPv4 header checksum");
                assert_eq!(be16(s, 2) as usize, s.len());
                assert_eq!(be16(s, 4), 0x1234 + i as u16);
            } else {
                assert_eq!(be16(s, 4) as usize, s.len() - 40);
            }
            assert_eq!(be32(s, lay.l4 + 4), 1000 + (i as u32) * 1100);
            let fl = s[lay.l4 + 13];
            assert_eq!(fl & (PSH | FIN) != 0, i == 2, "PSH/FIN only on the last");
            joined.extend_from_slice(&s[lay.hlen..]);
        }
        assert_eq!(segs[2].len() - tcp_layout(&segs[2]).unwrap().hlen, 800);
        assert_eq!(joined, payload);
    }
}

#[test]
fn coalesce_then_split_round_trips() {
    for v6 in [false, true] {
        let payload = pattern(5 * 1200 + 300);
        let segs = split(v6, &payload, 1200, ACK | PSH);
        let mut buf = vec![0u8; 70000];
        let mut len = 0;
        let mut c = Coalescer::default();
        for s in &segs {
            assert!(c.push(&mut buf, &mut len, s));
        }
        c.finish(&mut buf, len);
        let hdr = VnetHdr::parse(&buf).unwrap();
        assert!(hdr.is_gso() && hdr.needs_csum());
        assert_eq!(hdr.gso_size, 1200);
        let sup = &buf[VNET_HDR_LEN..len];
        // What the kernel would do: split it again; same segments.
        let plan = TsoPlan::new(&hdr, sup).unwrap();
        assert_eq!(plan.segments(), segs.len());
        for (i, s) in segs.iter().enumerate() {
            let mut d = vec![0u8; 2000];
            let n = plan.write_segment(sup, i, &mut d).unwrap();
            assert_eq!(&d[..n], &s[..], "segment {i} (v6 {v6})");
        }
    }
}

#[test]
fn coalescer_refuses_what_linux_gro_would_not_merge() {
    let p = pattern(1000);
    let a = tcp_packet(false, 1, ACK, &p);
    let mut buf = vec![0u8; 70000];
    let try_pair = |second: &[u8]| {
        let (mut buf2, mut len) = (buf.clone(), 0);
        let mut c = Coalescer::default();
        assert!(c.push(&mut buf2, &mut len, &a));
        c.push(&mut buf2, &mut len, second)
    };
    assert!(try_pair(&tcp_packet(false, 1001, ACK, &p)), "the next segment merges");
    assert!(!try_pair(&tcp_packet(false, 1002, ACK, &p)), "a gap");
    assert!(!try_pair(&tcp_packet(false, 1001, ACK | FIN, &p)), "FIN");
    assert!(!try_pair(&tcp_packet(false, 1001, ACK, &pattern(1001))), "longer than the first");
    let mut other = tcp_packet(false, 1001, ACK, &p);
    other[16] = 9; // another destination (checksums do not matter here)
    assert!(!try_pair(&other), "another flow");
    // A short segment closes the super-packet.
    let mut len = 0;
    let mut c = Coalescer::default();
    assert!(c.push(&mut buf, &mut len, &a));
    assert!(c.push(&mut buf, &mut len, &tcp_packet(false, 1001, ACK, &pattern(10))));
    assert!(!c.push(&mut buf, &mut len, &tcp_packet(false, 1011, ACK, &pattern(10))));
    // A lone packet keeps an all-zero header and its bytes.
    let mut len = 0;
    let mut c = Coalescer::default();
    let udp = [0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 0, 8, 0, 0];
    assert!(c.push(&mut buf, &mut len, &udp));
    assert!(!c.push(&mut buf, &mut len, &a));
    c.finish(&mut buf, len);
    assert_eq!(&buf[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
    assert_eq!(&buf[VNET_HDR_LEN..len], &udp);
}

#[test]
fn malformed_super_packets_are_errors() {
    let sup = tcp_packet(false, 1, ACK, &pattern(3000));
    assert_eq!(
        TsoPlan::new(&VnetHdr { gso_type: GsoType::UDP_L4, ..tso_hdr(false, 1000) }, &sup),
        Err(OffloadError::Malformed),
        "USO on a TCP packet"
    );
    assert_eq!(
        TsoPlan::new(&VnetHdr { gso_type: GsoType::UDP, ..tso_hdr(false, 1000) }, &sup),
        Err(OffloadError::Unsupported),
        "UFO is not split"
    );
    let udp = udp_packet(false, &pattern(3000));
    assert_eq!(TsoPlan::new(&tso_hdr(false, 1000), &udp), Err(OffloadError::Malformed), "TSO on UDP");
    assert_eq!(TsoPlan::new(&uso_hdr(false, 0), &udp), Err(OffloadError::Malformed));
    for cut in 0..28 {
        assert!(TsoPlan::new(&uso_hdr(false, 1000), &udp[..cut]).is_err(), "cut {cut}");
    }
    assert_eq!(TsoPlan::new(&tso_hdr(true, 1000), &sup), Err(OffloadError::Malformed), "TCPV6 on IPv4");
    assert_eq!(TsoPlan::new(&tso_hdr(false, 0), &sup), Err(OffloadError::Malformed));
    for cut in 0..60 {
        let _ = TsoPlan::new(&tso_hdr(false, 1000), &sup[..cut]);
        let mut buf = vec![0u8; 200];
        let mut len = 0;
        let mut c = Coalescer::default();
        c.push(&mut buf, &mut len, &sup[..cut]);
        c.finish(&mut buf, len);
    }
    let plan = TsoPlan::new(&tso_hdr(false, 1000), &sup).unwrap();
    assert_eq!(plan.write_segment(&sup, 3, &mut [0u8; 2000]), Err(OffloadError::Malformed));
    assert_eq!(plan.write_segment(&sup, 0, &mut [0u8; 100]), Err(OffloadError::NoRoom));
}

fn udp_packet(v6: bool, payload: &[u8]) -> Vec<u8> {
    // Reuse the TCP builder's IP header, then put a UDP header after it.
    let ip = if v6 { 40 } else { 20 };
    let mut p = tcp_packet(v6, 0, 0, &[]);
    p.truncate(ip);
    if v6 {
        p[6] = 17;
        p[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    } else {
        p[9] = 17;
        p[2..4].copy_from_slice(&((ip + 8 + payload.len()) as u16).to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(&40001u16.to_be_bytes());
    p.extend_from_slice(&443u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // the kernel leaves a partial sum; we recompute
    p.extend_from_slice(payload);
    p
}

fn uso_hdr(v6: bool, gso: u16) -> VnetHdr {
    VnetHdr { gso_type: GsoType::UDP_L4, csum_offset: 6, ..tso_hdr(v6, gso) }
}

fn udp_ok(p: &[u8], v6: bool) -> bool {
    let l4 = if v6 { 40 } else { 20 };
    checksum::fold(checksum::sum(&p[l4..], pseudo_for(p, v6, 17, p.len() - l4))) == 0xffff
}

#[test]
fn uso_split_gives_datagrams_with_own_lengths_ids_and_checksums() {
    for v6 in [false, true] {
        let data = pattern(2500);
        let sup = udp_packet(v6, &data);
        let plan = TsoPlan::new(&uso_hdr(v6, 1000), &sup).unwrap();
        assert!(plan.is_udp());
        assert_eq!(plan.segments(), 3);
        let ip = if v6 { 40 } else { 20 };
        assert_eq!(plan.max_segment_len(), ip + 8 + 1000);
        let mut joined = Vec::new();
        for (i, want) in [1000usize, 1000, 500].into_iter().enumerate() {
            let mut d = vec![0u8; 2000];
            let n = plan.write_segment(&sup, i, &mut d).unwrap();
            let seg = &d[..n];
            assert_eq!(n, ip + 8 + want);
            assert_eq!(usize::from(be16(seg, ip + 4)), 8 + want, "UDP length");
            assert_eq!(be16(seg, ip), 40001, "ports kept");
            assert!(udp_ok(seg, v6), "UDP checksum of datagram {i}");
            if v6 {
                assert_eq!(usize::from(be16(seg, 4)), 8 + want);
            } else {
                assert_eq!(usize::from(be16(seg, 2)), n);
                assert_eq!(be16(seg, 4), 0x1234 + i as u16, "IPv4 ID counts up");
                assert_eq!(checksum::checksum(&seg[..20]), 0, "IPv4 header checksum");
            }
            joined.extend_from_slice(&seg[ip + 8..]);
        }
        assert_eq!(joined, data, "payload in order, nothing lost");
    }
}

#[test]
fn uso_checksum_that_computes_to_zero_is_sent_as_ffff() {
    for v6 in [false, true] {
        let mut body = [0x5a; 64];
        body[62..].fill(0);
        let mut sup = udp_packet(v6, &body);
        let ip = if v6 { 40 } else { 20 };
        let plan = TsoPlan::new(&uso_hdr(v6, 1000), &sup).unwrap();
        let mut d = vec![0u8; 200];
        let n = plan.write_segment(&sup, 0, &mut d).unwrap();
        // Put the computed checksum into the last payload word (zero so
        // far): the sum then folds to 0xffff and the checksum to 0.
        let c = be16(&d[..n], ip + 6);
        let end = sup.len();
        sup[end - 2..].copy_from_slice(&c.to_be_bytes());
        let n = plan.write_segment(&sup, 0, &mut d).unwrap();
        assert_eq!(be16(&d[..n], ip + 6), 0xffff, "v6 {v6}");
        assert!(udp_ok(&d[..n], v6));
    }
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Packet contents never make the splitter or the coalescer panic
        /// or write out of bounds, whatever the virtio header says.
        #[test]
        fn random_bytes_never_panic(
            pkt in proptest::collection::vec(any::<u8>(), 0..400),
            gso in any::<u16>(),
            kind in 0u8..8,
            others in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..4),
        ) {
            let hdr = VnetHdr { gso_type: GsoType(kind), gso_size: gso, ..VnetHdr::NONE };
            if let Ok(plan) = TsoPlan::new(&hdr, &pkt) {
                let mut dst = vec![0u8; plan.max_segment_len()];
                for i in 0..plan.segments().min(16) {
                    let _ = plan.write_segment(&pkt, i, &mut dst);
                }
            }
            let mut buf = vec![0u8; 600];
            let mut len = 0;
            let mut c = Coalescer::default();
            for p in std::iter::once(&pkt).chain(others.iter()) {
                if !c.push(&mut buf, &mut len, p) {
                    c.finish(&mut buf, len);
                    c.reset();
                    len = 0;
                    let _ = c.push(&mut buf, &mut len, p);
                }
            }
            c.finish(&mut buf, len);
            prop_assert!(len <= buf.len());
        }
    }

    #[test]
    fn valid_tcp_with_random_tails_never_panics() {
        // A valid header whose lengths disagree with the bytes present.
        let mut p = tcp_packet(false, 1, ACK, &pattern(100));
        for cut in 0..p.len() {
            let _ = TsoPlan::new(&tso_hdr(false, 7), &p[..cut]).map(|plan| {
                let mut d = vec![0u8; 4096];
                (0..plan.segments()).map(|i| plan.write_segment(&p[..cut], i, &mut d)).count()
            });
        }
        p[2] = 0xff; // IP total length beyond the packet: not mergeable
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        let mut c = Coalescer::default();
        assert!(c.push(&mut buf, &mut len, &p));
        assert!(!c.push(&mut buf, &mut len, &p));
    }
}
