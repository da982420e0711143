//! Two engines back to back (A seals, B opens), with a real SPD, a gateway
//! group and hand-built packets.

use super::*;
use crate::crypto::{AeadAlg, KeyMaterial};
use crate::esp::{DropReason, OuterPath, SaConfig};
use crate::policy::multipath::{GatewaySpec, gateway_id};
use crate::policy::spd::{AddrRange, Rule, RuleSelector};
use crate::wire::checksum;
use std::net::IpAddr;

const A_NET: [u8; 3] = [198, 51, 100];
const B_NET: [u8; 3] = [203, 0, 113];

fn udp4(src_host: u8, dst_host: u8, sport: u16, len: usize, df: bool) -> Vec<u8> {
    let total = 28 + len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    if df {
        p[6] = 0x40;
    }
    p[8] = 64;
    p[9] = 17;
    p[12..15].copy_from_slice(&A_NET);
    p[15] = src_host;
    p[16..19].copy_from_slice(&B_NET);
    p[19] = dst_host;
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    p
}

fn prefix(net: [u8; 3]) -> AddrRange {
    AddrRange::prefix(IpAddr::from([net[0], net[1], net[2], 0]), 24).unwrap()
}

/// Policy on A: A_NET -> B_NET protected by child 0; port 22 bypass;
/// the rest dropped.
fn spd() -> Arc<Spd> {
    let mut ssh = RuleSelector::addrs(prefix(A_NET), prefix(B_NET));
    ssh.proto = Some(17);
    ssh.dst_ports = crate::policy::spd::PortRange::new(22, 22).unwrap();
    let rules = [
        Rule { selector: ssh, action: Action::Bypass },
        Rule { selector: RuleSelector::addrs(prefix(A_NET), prefix(B_NET)), action: Action::Protect(0) },
    ];
    Arc::new(Spd::compile(&rules, Action::Drop).unwrap())
}

fn gateway(i: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, 10 + i])
}

/// Engine A with `n` gateways (one SA each), and one receiving engine B
/// holding all inbound SAs.
fn setup(n: u8) -> (Engine, Engine, Arc<GatewayGroup>) {
    let specs: Vec<GatewaySpec> = (0..n).map(|i| GatewaySpec { id: gateway_id(&[i]), weight: 1 }).collect();
    let group = Arc::new(GatewayGroup::new(&specs).unwrap());
    let mut a = Engine::new(EngineConfig::default(), spd());
    let mut b = Engine::new(EngineConfig::default(), spd());
    a.apply(Update::Child { id: 0, group: group.clone(), symmetric: false });
    for i in 0..n {
        let alg = AeadAlg::AesGcm128;
        let km = KeyMaterial::new(alg, &[i + 1; 20]).unwrap();
        let path =
            OuterPath { local: IpAddr::from([192, 0, 2, 1]), remote: gateway(i), encap: Some((4500, 4500)) };
        let cfg = SaConfig::new(0x100 + u32::from(i), alg, km, path);
        a.apply(Update::outbound(0, i as usize, Arc::new(OutboundSa::new(cfg.clone()).unwrap())));
        b.apply(Update::Inbound(Box::new(InboundSa::new(cfg).unwrap())));
    }
    (a, b, group)
}

#[test]
fn seal_spread_and_open() {
    let (mut a, mut b, _) = setup(3);
    let pkts: Vec<Vec<u8>> = (0..64).map(|i| udp4(1, 2, 10_000 + i, 100, true)).collect();
    let mut bufs: Vec<PacketBuf> = pkts.iter().map(|p| PacketBuf::from_packet(p)).collect();
    let mut out = vec![OutVerdict::Bypass; bufs.len()];
    a.outbound_batch(&mut bufs, &mut out);
    let mut per_gw = [0usize; 3];
    for v in &out {
        match *v {
            OutVerdict::Send { to, port, .. } => {
                assert_eq!(port, 4500);
                per_gw[(0..3).position(|i| gateway(i) == to).unwrap()] += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(per_gw.iter().all(|&c| c > 5), "flows spread over gateways: {per_gw:?}");
    let mut res = vec![InVerdict::Control; bufs.len()];
    b.inbound_batch(&mut bufs, &[], &mut res);
    assert!(res.iter().all(|r| *r == InVerdict::Deliver), "{res:?}");
    for (buf, p) in bufs.iter().zip(&pkts) {
        assert_eq!(buf.data(), &p[..]);
    }
    assert_eq!(a.counters().tx_packets, 64);
    assert_eq!(b.counters().rx_packets, 64);
    // Each SA used consecutive sequence numbers from 1 (one reservation).
    for i in 0..3 {
        let sa = b.inbound_sa(0x100 + i).unwrap();
        assert_eq!(sa.highest_seq(), per_gw[i as usize] as u64);
    }
}

#[test]
fn policy_bypass_drop_and_malformed() {
    let (mut a, _, _) = setup(1);
    let mut ssh = udp4(1, 2, 999, 10, true);
    ssh[22..24].copy_from_slice(&22u16.to_be_bytes());
    let mut elsewhere = udp4(1, 2, 999, 10, true);
    elsewhere[16] = 10;
    let c = checksum::checksum(&{
        let mut h = elsewhere[..20].to_vec();
        h[10..12].fill(0);
        h
    });
    elsewhere[10..12].copy_from_slice(&c.to_be_bytes());
    let mut bufs = vec![
        PacketBuf::from_packet(&ssh),
        PacketBuf::from_packet(&elsewhere),
        PacketBuf::from_packet(&[0x45, 0, 0]),
        PacketBuf::from_packet(&udp4(1, 2, 999, 10, true)),
    ];
    let mut out = [OutVerdict::Bypass; 4];
    a.outbound_batch(&mut bufs, &mut out);
    assert_eq!(out[0], OutVerdict::Bypass);
    assert_eq!(bufs[0].data(), &ssh[..], "bypassed packets are untouched");
    assert_eq!(out[1], OutVerdict::Drop(DropReason::PolicyDrop));
    assert_eq!(out[2], OutVerdict::Drop(DropReason::InnerMalformed));
    assert!(matches!(out[3], OutVerdict::Send { .. }));
    assert_eq!(a.counters().drops.get(DropReason::PolicyDrop), 1);
    assert_eq!(a.counters().bypassed, 1);
}

#[test]
fn gateway_down_moves_only_its_flows_and_missing_sa_drops() {
    let (mut a, _, group) = setup(3);
    let pkts: Vec<Vec<u8>> = (0..60).map(|i| udp4(1, 2, 20_000 + i, 10, true)).collect();
    let run = |a: &mut Engine| -> Vec<OutVerdict> {
        let mut bufs: Vec<PacketBuf> = pkts.iter().map(|p| PacketBuf::from_packet(p)).collect();
        let mut out = vec![OutVerdict::Bypass; bufs.len()];
        a.outbound_batch(&mut bufs, &mut out);
        out
    };
    let to = |v: &OutVerdict| match v {
        OutVerdict::Send { to, .. } => *to,
        other => panic!("{other:?}"),
    };
    let before: Vec<IpAddr> = run(&mut a).iter().map(to).collect();
    group.set_up(1, false);
    let after: Vec<IpAddr> = run(&mut a).iter().map(to).collect();
    for (x, y) in before.iter().zip(&after) {
        assert_ne!(*y, gateway(1));
        if *x != gateway(1) {
            assert_eq!(x, y, "flows of other gateways stay put");
        }
    }
    group.set_up(1, true);
    a.apply(Update::Outbound { child: 0, gateway: 1, sa: None });
    let v = run(&mut a);
    for (x, y) in before.iter().zip(&v) {
        if *x == gateway(1) {
            assert_eq!(*y, OutVerdict::Drop(DropReason::NoGateway));
        }
    }
}

#[test]
fn too_big_with_df_gets_icmp_and_without_df_fragments() {
    let (mut a, mut b, _) = setup(1);
    let big_df = udp4(1, 2, 1, 1472, true); // 1500 bytes
    let big = udp4(1, 2, 2, 1472, false);
    let mut bufs = vec![PacketBuf::from_packet(&big_df), PacketBuf::new(crate::esp::buf::DEFAULT_CAPACITY)];
    bufs[1].set(&big).unwrap();
    let mut out = [OutVerdict::Bypass; 2];
    a.outbound_batch(&mut bufs, &mut out);
    assert_eq!(out[0], OutVerdict::Reply);
    let icmp = bufs[0].data();
    assert_eq!(icmp[9], 1, "ICMP");
    assert_eq!(&icmp[16..20], &big_df[12..16], "back to the sender");
    assert_eq!((icmp[20], icmp[21]), (3, 4), "fragmentation needed");
    let mtu = u16::from_be_bytes([icmp[26], icmp[27]]);
    assert_eq!(usize::from(mtu), OutboundSa::max_inner_len(b_sa(&a), 1500));
    // Without DF: two fragments, both sealed, both open on B.
    assert!(matches!(out[1], OutVerdict::Send { .. }));
    let mut extra: Vec<PacketBuf> = a
        .extra()
        .drain(..)
        .map(|(b, v)| {
            assert!(matches!(v, OutVerdict::Send { .. }));
            b
        })
        .collect();
    assert_eq!(extra.len(), 1);
    let mut res = [InVerdict::Control; 1];
    b.inbound_batch(std::slice::from_mut(&mut bufs[1]), &[], &mut res);
    assert_eq!(res[0], InVerdict::Deliver);
    b.inbound_batch(&mut extra, &[], &mut res);
    assert_eq!(res[0], InVerdict::Deliver);
    let f1 = bufs[1].data();
    let f2 = extra[0].data();
    assert_eq!(f1[6] & 0x20, 0x20, "first fragment has MF");
    let off = usize::from(u16::from_be_bytes([f2[6], f2[7]]) & 0x1fff) * 8;
    assert_eq!(off, f1.len() - 20);
    let mut payload = f1[20..].to_vec();
    payload.extend_from_slice(&f2[20..]);
    assert_eq!(payload, big[20..], "fragments carry the original payload");
}

fn b_sa(a: &Engine) -> &OutboundSa {
    a.sa(0, 0).unwrap()
}

#[test]
fn inbound_classification_and_unknown_spi() {
    let (_, mut b, _) = setup(1);
    let mut bufs = vec![
        PacketBuf::from_packet(&[0xff]),
        PacketBuf::from_packet(&[0, 0, 0, 0, 1, 2, 3, 4]),
        PacketBuf::from_packet(&[0, 0, 9, 9, 0, 0, 0, 1, 0, 0]),
        PacketBuf::from_packet(&[0, 0, 1, 0, 0, 0, 0, 1]),
    ];
    bufs[3].append(40).unwrap().fill(0);
    let mut res = [InVerdict::Deliver; 4];
    b.inbound_batch(&mut bufs, &[], &mut res);
    assert_eq!(res[0], InVerdict::Drop(DropReason::NatKeepalive));
    assert_eq!(res[1], InVerdict::Control);
    assert_eq!(res[2], InVerdict::Drop(DropReason::UnknownSpi));
    assert_eq!(res[3], InVerdict::Drop(DropReason::AuthFailed));
    assert_eq!(b.counters().ike, 1);
    assert_eq!(b.counters().keepalives, 1);
}

#[test]
fn rekey_switches_outbound_without_loss() {
    let (mut a, mut b, _) = setup(1);
    let alg = AeadAlg::ChaCha20Poly1305;
    let path =
        OuterPath { local: IpAddr::from([192, 0, 2, 1]), remote: gateway(0), encap: Some((4500, 4500)) };
    let cfg = SaConfig::new(0x9999, alg, KeyMaterial::new(alg, &[7; 36]).unwrap(), path);
    // Make before break: the new inbound SA is live first.
    b.apply(Update::Inbound(Box::new(InboundSa::new(cfg.clone()).unwrap())));
    let mut total = 0;
    for round in 0..4 {
        if round == 2 {
            a.apply(Update::outbound(0, 0, Arc::new(OutboundSa::new(cfg.clone()).unwrap())));
        }
        let mut bufs: Vec<PacketBuf> =
            (0..16).map(|i| PacketBuf::from_packet(&udp4(1, 2, 3000 + i, 50, true))).collect();
        let mut out = [OutVerdict::Bypass; 16];
        a.outbound_batch(&mut bufs, &mut out);
        let mut res = [InVerdict::Control; 16];
        b.inbound_batch(&mut bufs, &[], &mut res);
        total += res.iter().filter(|r| **r == InVerdict::Deliver).count();
    }
    assert_eq!(total, 64);
    assert_eq!(b.inbound_sa(0x9999).unwrap().usage().1, 32);
}
