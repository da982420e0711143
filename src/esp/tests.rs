//! Seal/open round trips in every combination, and one test per drop
//! reason. Packets are built by hand here, not by the code under test.

use super::*;
use crate::crypto::{self, AeadAlg, Backend, KeyMaterial};
use crate::ts::TrafficSelector;
use crate::wire::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const V4_B: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
const V6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 10);
const V6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 20);

/// An IPv4/UDP packet with a correct header checksum.
pub(crate) fn udp4(src: Ipv4Addr, dst: Ipv4Addr, tos: u8, df: bool, payload_len: usize) -> Vec<u8> {
    let total = 28 + payload_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    if df {
        p[6] = 0x40;
    }
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    p
}

/// An IPv6/UDP packet (UDP checksum left 0: ESP does not look at it).
pub(crate) fn udp6(src: Ipv6Addr, dst: Ipv6Addr, tclass: u8, payload_len: usize) -> Vec<u8> {
    let plen = 8 + payload_len;
    let mut p = vec![0u8; 40 + plen];
    p[0] = 0x60 | (tclass >> 4);
    p[1] = tclass << 4;
    p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..42].copy_from_slice(&40000u16.to_be_bytes());
    p[42..44].copy_from_slice(&5201u16.to_be_bytes());
    p[44..46].copy_from_slice(&(plen as u16).to_be_bytes());
    for (i, b) in p[48..].iter_mut().enumerate() {
        *b = (i * 3) as u8;
    }
    p
}

fn keymat(alg: AeadAlg, seed: u8) -> KeyMaterial {
    let bytes: Vec<u8> =
        (0..alg.keymat_len()).map(|i| seed.wrapping_add((i as u8).wrapping_mul(13))).collect();
    KeyMaterial::new(alg, &bytes).unwrap()
}

fn path(v6: bool, encap: bool) -> (OuterPath, OuterPath) {
    let (a, b): (IpAddr, IpAddr) = if v6 {
        ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
    } else {
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
    };
    let e = encap.then_some((4500, 4500));
    (OuterPath { local: a, remote: b, encap: e }, OuterPath { local: b, remote: a, encap: e })
}

fn pair_with(
    alg: AeadAlg,
    backends: (Backend, Backend),
    v6_outer: bool,
    encap: bool,
    esn: bool,
) -> (OutboundSa, InboundSa) {
    let (p_out, p_in) = path(v6_outer, encap);
    let mut c = SaConfig::new(0x1000_0001, alg, keymat(alg, 7), p_out);
    c.esn = esn;
    c.backend = backends.0;
    let mut ci = c.clone();
    ci.path = p_in;
    ci.backend = backends.1;
    (OutboundSa::new(c).unwrap(), InboundSa::new(ci).unwrap())
}

fn pair(alg: AeadAlg) -> (OutboundSa, InboundSa) {
    pair_with(alg, (Backend::default(), Backend::default()), false, true, false)
}

fn inner(v6: bool, len: usize) -> Vec<u8> {
    if v6 { udp6(V6_A, V6_B, 0, len) } else { udp4(V4_A, V4_B, 0, true, len) }
}

#[test]
fn round_trip_every_combination() {
    for &alg in &AeadAlg::ALL {
        for &bo in Backend::ALL {
            for &bi in Backend::ALL {
                for v6_outer in [false, true] {
                    for encap in [false, true] {
                        for esn in [false, true] {
                            let (out, mut inb) = pair_with(alg, (bo, bi), v6_outer, encap, esn);
                            for v6_inner in [false, true] {
                                for len in [0, 1, 2, 3, 100, 1400] {
                                    let pkt = inner(v6_inner, len);
                                    let mut b = PacketBuf::from_packet(&pkt);
                                    let s = out.seal(&mut b, Framing::Ip).unwrap();
                                    let o = strip_outer(&mut b).unwrap();
                                    assert_eq!(o.ports, encap.then_some((4500, 4500)));
                                    assert_eq!(o.dst, inb.config().path.local);
                                    let r = inb.open(&mut b, o.ecn).unwrap();
                                    assert_eq!(r.seq, s.seq);
                                    assert_eq!(b.data(), &pkt[..], "{alg:?} {bo:?}->{bi:?} len {len}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn esp_layout() {
    let (out, _) = pair(AeadAlg::AesGcm128);
    out.set_next_seq(0x0102_0304);
    for len in 0..8 {
        let pkt = inner(false, len);
        let mut b = PacketBuf::from_packet(&pkt);
        let s = out.seal(&mut b, Framing::Esp).unwrap();
        let esp = b.data();
        assert_eq!(&esp[0..4], &0x1000_0001u32.to_be_bytes());
        assert_eq!(&esp[4..8], &(s.seq as u32).to_be_bytes());
        assert_eq!(&esp[8..16], &s.seq.to_be_bytes(), "IV is the sequence number");
        let ct_len = esp.len() - 16 - 16;
        assert_eq!(ct_len % 4, 0);
        assert!(ct_len - pkt.len() - 2 < 4, "minimal padding");
    }
}

#[test]
fn ip_framing_headers() {
    let (out, _) =
        pair_with(AeadAlg::AesGcm128, (Backend::default(), Backend::default()), false, true, false);
    let pkt = udp4(V4_A, V4_B, 0xb8 | 2, true, 50);
    let mut b = PacketBuf::from_packet(&pkt);
    out.seal(&mut b, Framing::Ip).unwrap();
    let o = b.data();
    assert_eq!(o[0], 0x45);
    assert_eq!(o[1], 0xb8 | 2, "DSCP and ECN copied");
    assert_eq!(usize::from(u16::from_be_bytes([o[2], o[3]])), o.len());
    assert_eq!(o[6] & 0x40, 0x40, "DF copied");
    assert_eq!(o[9], 17);
    assert_eq!(checksum::checksum(&o[..20]), 0);
    assert_eq!(&o[20..24], &[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(usize::from(u16::from_be_bytes([o[24], o[25]])), o.len() - 20);
    // IPv6 outer: UDP checksum is mandatory and verifies.
    let (out6, _) =
        pair_with(AeadAlg::AesGcm128, (Backend::default(), Backend::default()), true, true, false);
    let mut b = PacketBuf::from_packet(&pkt);
    out6.seal(&mut b, Framing::Ip).unwrap();
    let o = b.data();
    assert_eq!(o[0] >> 4, 6);
    assert_eq!(o[6], 17);
    let udp = &o[40..];
    let pseudo = checksum::pseudo_v6(
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
        17,
        udp.len() as u32,
    );
    let sum = checksum::sum(udp, pseudo);
    assert_eq!(checksum::fold(sum), 0xffff);
}

#[test]
fn fixed_dscp_and_compat_ecn() {
    let (p, _) = path(false, true);
    let mut c = SaConfig::new(0x2000, AeadAlg::AesGcm128, keymat(AeadAlg::AesGcm128, 1), p);
    c.dscp = DscpMode::Fixed(10);
    c.ecn = EcnMode::Compatibility;
    let out = OutboundSa::new(c).unwrap();
    let mut b = PacketBuf::from_packet(&udp4(V4_A, V4_B, 0xb8 | 3, false, 10));
    let s = out.seal(&mut b, Framing::Ip).unwrap();
    assert_eq!(s.outer_tos, 10 << 2);
    assert_eq!(b.data()[1], 10 << 2);
    assert_eq!(b.data()[6] & 0x40, 0, "DF clear when inner DF is clear");
}

#[test]
fn ecn_decapsulation_rfc6040() {
    // (inner ECN, outer ECN) -> Some(resulting inner) or None (drop).
    let table = [
        (0, 0, Some(0)),
        (0, 1, Some(0)),
        (0, 2, Some(0)),
        (0, 3, None),
        (2, 0, Some(2)),
        (2, 1, Some(1)),
        (2, 2, Some(2)),
        (2, 3, Some(3)),
        (1, 2, Some(1)),
        (1, 3, Some(3)),
        (3, 0, Some(3)),
    ];
    for v6 in [false, true] {
        for &(inner_ecn, outer_ecn, want) in &table {
            let (out, mut inb) = pair(AeadAlg::AesGcm128);
            let pkt = if v6 {
                udp6(V6_A, V6_B, 0x28 | inner_ecn, 20)
            } else {
                udp4(V4_A, V4_B, 0x28 | inner_ecn, true, 20)
            };
            let mut b = PacketBuf::from_packet(&pkt);
            out.seal(&mut b, Framing::Esp).unwrap();
            let r = inb.open(&mut b, outer_ecn);
            match want {
                None => assert_eq!(r, Err(DropReason::EcnCeOnNotEct)),
                Some(e) => {
                    r.unwrap();
                    let d = b.data();
                    let got = if v6 { (d[1] >> 4) & 3 } else { d[1] & 3 };
                    assert_eq!(got, e, "inner {inner_ecn} outer {outer_ecn} v6 {v6}");
                    let dscp = if v6 { ((d[0] & 0xf) << 2) | (d[1] >> 6) } else { d[1] >> 2 };
                    assert_eq!(dscp, 0x28 >> 2, "DSCP untouched");
                    if !v6 {
                        assert_eq!(checksum::checksum(&d[..20]), 0, "header checksum fixed");
                    }
                }
            }
        }
    }
}

#[test]
fn tfc_padding_is_removed() {
    let (p, pi) = path(false, false);
    let alg = AeadAlg::ChaCha20Poly1305;
    let mut c = SaConfig::new(0x3000, alg, keymat(alg, 3), p);
    c.tfc_pad_to = 300;
    let mut ci = c.clone();
    ci.path = pi;
    let out = OutboundSa::new(c).unwrap();
    let mut inb = InboundSa::new(ci).unwrap();
    let pkt = inner(false, 12);
    let mut b = PacketBuf::from_packet(&pkt);
    assert_eq!(out.seal(&mut b, Framing::Esp), Err(DropReason::NoRoom), "64 bytes of tailroom only");
    let mut b = PacketBuf::new(buf::DEFAULT_CAPACITY);
    b.set(&pkt).unwrap();
    out.seal(&mut b, Framing::Esp).unwrap();
    assert_eq!(b.len(), 16 + 300 + 2 + 2 + 16);
    inb.open(&mut b, 0).unwrap();
    assert_eq!(b.data(), &pkt[..]);
}

#[test]
fn batch_uses_consecutive_sequence_numbers() {
    let (out, mut inb) = pair(AeadAlg::AesGcm256);
    let pkts: Vec<Vec<u8>> = (0..8).map(|i| inner(i % 2 == 1, 10 * i)).collect();
    let mut bufs: Vec<PacketBuf> = pkts.iter().map(|p| PacketBuf::from_packet(p)).collect();
    let mut res = [Err(DropReason::NoRoom); 8];
    out.seal_batch(&mut bufs, Framing::Esp, &mut res);
    for (i, r) in res.iter().enumerate() {
        assert_eq!(r.unwrap().seq, i as u64 + 1);
    }
    let mut opened = [Err(DropReason::NoRoom); 8];
    inb.open_batch(&mut bufs, &[], &mut opened);
    for i in 0..8 {
        assert_eq!(opened[i].unwrap().seq, i as u64 + 1);
        assert_eq!(bufs[i].data(), &pkts[i][..]);
    }
    assert_eq!(inb.usage().1, 8);
}

#[test]
fn esn_high_bits_are_authenticated() {
    let alg = AeadAlg::AesGcm128;
    let (out, mut inb) = pair_with(alg, (Backend::default(), Backend::default()), false, true, true);
    let start = (5u64 << 32) - 3;
    out.set_next_seq(start);
    inb.prime_replay(start - 1);
    for i in 0..6 {
        let pkt = inner(false, 40);
        let mut b = PacketBuf::from_packet(&pkt);
        out.seal(&mut b, Framing::Esp).unwrap();
        assert_eq!(inb.open(&mut b, 0).unwrap().seq, start + i);
    }
    // A receiver that guesses the wrong high half fails authentication.
    let (out, mut inb) = pair_with(alg, (Backend::default(), Backend::default()), false, true, true);
    out.set_next_seq((1u64 << 33) + 7);
    let mut b = PacketBuf::from_packet(&inner(false, 40));
    out.seal(&mut b, Framing::Esp).unwrap();
    assert_eq!(inb.open(&mut b, 0), Err(DropReason::AuthFailed));
}

#[test]
fn sequence_space_is_never_wrapped() {
    let (out, _) = pair(AeadAlg::AesGcm128);
    out.set_next_seq(u64::from(u32::MAX));
    let mut b = PacketBuf::from_packet(&inner(false, 1));
    assert_eq!(out.seal(&mut b, Framing::Esp).unwrap().seq, u64::from(u32::MAX));
    for _ in 0..3 {
        let mut b = PacketBuf::from_packet(&inner(false, 1));
        assert_eq!(out.seal(&mut b, Framing::Esp), Err(DropReason::SeqExhausted));
    }
}

#[test]
fn lifetimes_soft_then_hard() {
    let (p, pi) = path(false, true);
    let mut c = SaConfig::new(0x4000, AeadAlg::AesGcm128, keymat(AeadAlg::AesGcm128, 9), p);
    c.lifetime.soft.packets = 2;
    c.lifetime.hard.packets = 3;
    let mut ci = c.clone();
    ci.path = pi;
    let out = OutboundSa::new(c).unwrap();
    let mut inb = InboundSa::new(ci).unwrap();
    let states: Vec<_> = (0..4)
        .map(|_| {
            let mut b = PacketBuf::from_packet(&inner(false, 1));
            let r = out.seal(&mut b, Framing::Esp).map(|s| s.lifetime);
            if r.is_ok() {
                inb.open(&mut b, 0).unwrap();
            }
            r
        })
        .collect();
    assert_eq!(
        states,
        vec![
            Ok(LifetimeState::Live),
            Ok(LifetimeState::Soft),
            Ok(LifetimeState::Soft),
            Err(DropReason::LifetimeExpired)
        ]
    );
    assert_eq!(inb.usage().1, 3);
    // The receiver stops too once its hard limit is reached.
    out.set_next_seq(3);
    let mut b = PacketBuf::from_packet(&inner(false, 1));
    assert!(out.seal(&mut b, Framing::Esp).is_ok());
    assert_eq!(inb.open(&mut b, 0), Err(DropReason::LifetimeExpired));
}

/// Builds an ESP packet by hand with arbitrary plaintext (trailer
/// included), using the raw AEAD: for inputs `seal` refuses to produce.
fn raw_esp(alg: AeadAlg, spi: u32, seq: u32, plaintext: &[u8]) -> PacketBuf {
    let aead = crypto::new_aead(Backend::default(), alg, keymat(alg, 7).expose()).unwrap();
    let mut v = Vec::new();
    v.extend_from_slice(&spi.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&u64::from(seq).to_be_bytes());
    v.extend_from_slice(plaintext);
    let mut aad = [0u8; 8];
    aad.copy_from_slice(&v[0..8]);
    let iv: [u8; 8] = v[8..16].try_into().unwrap();
    let icv = aead.seal_in_place(&iv, &aad, &mut v[16..]).unwrap();
    v.extend_from_slice(&icv);
    PacketBuf::from_packet(&v)
}

fn with_trailer(inner_pkt: &[u8], pad: &[u8], nh: u8) -> Vec<u8> {
    let mut v = inner_pkt.to_vec();
    v.extend_from_slice(pad);
    v.push(pad.len() as u8);
    v.push(nh);
    v
}

#[test]
fn every_bad_input_has_its_reason() {
    let alg = AeadAlg::AesGcm128;
    let spi = 0x1000_0001;
    let good = inner(false, 1); // 29 bytes: 29 + 2 + 1 pad = 32
    let cases: Vec<(&str, PacketBuf, DropReason)> = vec![
        ("short", PacketBuf::from_packet(&[0u8; 33]), DropReason::Truncated),
        ("spi", raw_esp(alg, spi + 1, 1, &with_trailer(&good, &[1], 4)), DropReason::UnknownSpi),
        ("padding value", raw_esp(alg, spi, 1, &with_trailer(&good, &[2], 4)), DropReason::BadPadding),
        ("pad too long", raw_esp(alg, spi, 1, &[9, 9, 9, 9, 250, 4]), DropReason::BadPadding),
        ("next header", raw_esp(alg, spi, 1, &with_trailer(&good, &[1], 17)), DropReason::BadNextHeader),
        ("dummy", raw_esp(alg, spi, 1, &with_trailer(&[], &[1, 2], 59)), DropReason::DummyPacket),
        (
            "garbage inner",
            raw_esp(alg, spi, 1, &with_trailer(&[0x45; 30], &[], 4)),
            DropReason::InnerMalformed,
        ),
        (
            "v6 in v4",
            raw_esp(alg, spi, 1, &with_trailer(&inner(true, 2), &[1, 2], 4)),
            DropReason::InnerVersionMismatch,
        ),
        ("v4 in v6", raw_esp(alg, spi, 1, &with_trailer(&good, &[1], 41)), DropReason::InnerVersionMismatch),
        ("empty inner", raw_esp(alg, spi, 1, &with_trailer(&[], &[1, 2], 4)), DropReason::InnerMalformed),
    ];
    for (name, mut b, want) in cases {
        let (_, mut inb) = pair(alg);
        assert_eq!(inb.open(&mut b, 0), Err(want), "{name}");
    }
    // Bad ICV: every bit of the ICV; then one byte of ciphertext, IV, sequence number and SPI.
    let (out, mut inb) = pair(alg);
    let mut sealed = PacketBuf::from_packet(&good);
    out.seal(&mut sealed, Framing::Esp).unwrap();
    let n = sealed.len();
    let mut flips: Vec<(usize, u8)> = (0..128).map(|bit| (n - 16 + bit / 8, 1u8 << (bit % 8))).collect();
    flips.extend([(20, 0x80), (10, 1), (7, 4)]);
    for (idx, mask) in flips {
        let mut b = PacketBuf::from_packet(sealed.data());
        b.data_mut()[idx] ^= mask;
        assert_eq!(inb.open(&mut b, 0), Err(DropReason::AuthFailed), "byte {idx} mask {mask:#x}");
    }
    let mut b = PacketBuf::from_packet(sealed.data());
    b.data_mut()[0] ^= 1;
    assert_eq!(inb.open(&mut b, 0), Err(DropReason::UnknownSpi));
    // Replay and staleness.
    let mut b = PacketBuf::from_packet(sealed.data());
    inb.open(&mut b, 0).unwrap();
    let mut b = PacketBuf::from_packet(sealed.data());
    assert_eq!(inb.open(&mut b, 0), Err(DropReason::Replayed));
    out.set_next_seq(5000);
    let mut b = PacketBuf::from_packet(&good);
    out.seal(&mut b, Framing::Esp).unwrap();
    inb.open(&mut b, 0).unwrap();
    out.set_next_seq(2);
    let mut b = PacketBuf::from_packet(&good);
    out.seal(&mut b, Framing::Esp).unwrap();
    assert_eq!(inb.open(&mut b, 0), Err(DropReason::TooOld));
}

#[test]
fn inbound_selectors_are_enforced() {
    let alg = AeadAlg::AesGcm128;
    let (p, pi) = path(false, true);
    let c = SaConfig::new(0x5000, alg, keymat(alg, 5), p);
    let mut ci = c.clone();
    ci.path = pi;
    // We (the receiver) are 203.0.113.0/24; the peer is 198.51.100.10, UDP only.
    ci.remote_ts =
        vec![TrafficSelector::prefix(IpAddr::V4(V4_A), 32).unwrap().with_proto(17, 0, 65535).unwrap()];
    ci.local_ts = vec![TrafficSelector::prefix("203.0.113.0".parse().unwrap(), 24).unwrap()];
    let out = OutboundSa::new(c).unwrap();
    let mut inb = InboundSa::new(ci).unwrap();
    let try_open = |inb: &mut InboundSa, pkt: &[u8]| {
        let mut b = PacketBuf::from_packet(pkt);
        out.seal(&mut b, Framing::Esp).unwrap();
        inb.open(&mut b, 0)
    };
    assert!(try_open(&mut inb, &udp4(V4_A, V4_B, 0, true, 10)).is_ok());
    let spoofed = udp4(Ipv4Addr::new(198, 51, 100, 11), V4_B, 0, true, 10);
    assert_eq!(try_open(&mut inb, &spoofed), Err(DropReason::SelectorMismatch));
    let elsewhere = udp4(V4_A, Ipv4Addr::new(192, 0, 2, 99), 0, true, 10);
    assert_eq!(try_open(&mut inb, &elsewhere), Err(DropReason::SelectorMismatch));
    let mut tcp = udp4(V4_A, V4_B, 0, true, 20);
    tcp[9] = 6;
    tcp[10..12].fill(0);
    let c = checksum::checksum(&tcp[..20]);
    tcp[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(try_open(&mut inb, &tcp), Err(DropReason::SelectorMismatch));
    assert_eq!(try_open(&mut inb, &udp6(V6_A, V6_B, 0, 10)), Err(DropReason::SelectorMismatch));
}

#[test]
fn outer_classification() {
    let (out, _) = pair(AeadAlg::AesGcm128);
    let mut b = PacketBuf::from_packet(&inner(false, 10));
    out.seal(&mut b, Framing::Ip).unwrap();
    let sealed = b.data().to_vec();
    // Turn the ESP payload into a NAT keepalive and into an IKE packet.
    let mut ka = sealed[..29].to_vec();
    ka[2..4].copy_from_slice(&29u16.to_be_bytes());
    ka[24..26].copy_from_slice(&9u16.to_be_bytes());
    ka[28] = 0xff;
    let mut ike = sealed.clone();
    ike[28..32].fill(0);
    for (pkt, want) in [(ka, DropReason::NatKeepalive), (ike, DropReason::NotEsp)] {
        let mut b = PacketBuf::from_packet(&pkt);
        assert_eq!(strip_outer(&mut b), Err(want));
    }
    for cut in 0..sealed.len() {
        let mut b = PacketBuf::from_packet(&sealed[..cut]);
        assert!(strip_outer(&mut b).is_err(), "cut {cut}");
    }
}

#[test]
fn max_inner_len_fits_the_mtu() {
    for (v6, encap) in [(false, false), (false, true), (true, false), (true, true)] {
        let (out, _) =
            pair_with(AeadAlg::AesGcm128, (Backend::default(), Backend::default()), v6, encap, false);
        for mtu in [576usize, 1280, 1400, 1500, 9000] {
            let max = out.max_inner_len(mtu);
            let mut b = PacketBuf::from_packet(&inner(false, max - 28));
            out.seal(&mut b, Framing::Ip).unwrap();
            assert!(b.len() <= mtu && b.len() + 4 > mtu, "mtu {mtu}: {}", b.len());
        }
    }
}

#[test]
fn no_room_is_reported() {
    let (out, _) = pair(AeadAlg::AesGcm128);
    let pkt = inner(false, 100);
    let mut b = PacketBuf::new(buf::HEADROOM + pkt.len() + 8);
    b.set(&pkt).unwrap();
    assert_eq!(out.seal(&mut b, Framing::Esp), Err(DropReason::NoRoom));
    assert_eq!(b.data(), &pkt[..], "left untouched");
}
