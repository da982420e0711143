//! Entry points shared by the cargo-fuzz targets (fuzz/) and the corpus
//! replay test (tests/fuzz_corpus.rs). Each takes arbitrary bytes and must
//! never panic on its own: every panic below is an assertion of an
//! invariant the parsers promise (a bug if it fires).
//!
//! Each function parses, calls every accessor (results are passed through
//! `black_box` so nothing is optimised away) and, where the type has
//! setters or an emitter, checks that they keep the packet valid.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::ipv6::UpperLayer;
use crate::wire::{
    EspPacket, FlowKey, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket,
    UdpPacket, UdpRepr, udp_encap,
};

const V4_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const V4_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const V6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const V6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// IPv4: parse, read every field, mutate DSCP/ECN/TTL on a copy (the
/// checksum must stay valid if it was), and re-emit the header.
pub fn ipv4(data: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(data) else { return };
    black_box((p.version(), p.header_len(), p.tos(), p.dscp(), p.ecn(), p.total_len(), p.ident()));
    black_box((p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment(), p.ttl(), p.protocol()));
    black_box((p.checksum(), p.verify_checksum(), p.src_addr(), p.dst_addr(), p.header(), p.payload()));
    assert_eq!(p.header().len() + p.payload().len(), usize::from(p.total_len()));
    assert_eq!(p.packet().len(), usize::from(p.total_len()));

    let mut copy = data.to_vec();
    let Ok(mut m) = Ipv4Packet::new_checked(&mut copy[..]) else { unreachable!("same bytes re-parse") };
    let was_valid = m.verify_checksum();
    let b = data.get(1).copied().unwrap_or(0);
    m.set_dscp(b);
    m.set_ecn(b);
    m.set_ttl(b.wrapping_add(1));
    m.set_dst_addr(V4_B);
    black_box(m.payload_mut().len());
    assert!(!was_valid || m.verify_checksum(), "incremental update broke a valid checksum");
    m.fill_checksum();
    assert!(m.verify_checksum());

    let mut hdr = [0u8; 20];
    assert!(Ipv4Repr::parse(&p).emit(&mut hdr).is_ok());
    assert_eq!(crate::wire::checksum::checksum(&hdr), 0);
}

/// IPv6: parse, read every field, walk the extension headers, mutate on a
/// copy, and round-trip the fixed header through [`Ipv6Repr`].
pub fn ipv6(data: &[u8]) {
    let Ok(p) = Ipv6Packet::new_checked(data) else { return };
    black_box((p.version(), p.traffic_class(), p.dscp(), p.ecn(), p.flow_label(), p.payload_len()));
    black_box((p.total_len(), p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload()));
    if let Ok(UpperLayer { offset, .. }) = black_box(p.upper_layer()) {
        assert!((40..=p.total_len()).contains(&offset));
    }
    let repr = Ipv6Repr::parse(&p);
    let mut copy = data.to_vec();
    let Ok(mut m) = Ipv6Packet::new_checked(&mut copy[..]) else { unreachable!("same bytes re-parse") };
    m.set_ecn(3);
    m.set_dscp(0x3f);
    m.set_hop_limit(1);
    black_box(m.payload_mut().len());
    assert_eq!((m.traffic_class(), m.flow_label(), m.hop_limit()), (0xff, repr.flow_label, 1));
    let mut hdr = copy.clone();
    assert!(repr.emit(&mut hdr).is_ok());
    let Ok(back) = Ipv6Packet::new_checked(&hdr[..]) else { unreachable!("emitted header re-parse") };
    assert_eq!(Ipv6Repr::parse(&back), repr);
}

/// UDP: parse, read every field, verify checksums, and re-emit on a copy
/// (the emitted checksum must verify).
pub fn udp(data: &[u8]) {
    let Ok(u) = UdpPacket::new_checked(data) else { return };
    black_box((u.src_port(), u.dst_port(), u.len(), u.is_empty(), u.checksum(), u.payload(), u.datagram()));
    black_box((u.verify_checksum_v4(V4_A, V4_B), u.verify_checksum_v6(V6_A, V6_B)));
    let mut seg = u.datagram().to_vec();
    let r = UdpRepr { src_port: u.src_port(), dst_port: u.dst_port() };
    assert!(r.emit_v4(&mut seg, V4_A, V4_B, true).is_ok());
    let Ok(e) = UdpPacket::new_checked(&seg[..]) else { unreachable!("emitted datagram re-parse") };
    assert!(e.verify_checksum_v4(V4_A, V4_B));
    assert!(r.emit_v6(&mut seg, V6_A, V6_B).is_ok());
    let Ok(e) = UdpPacket::new_checked(&seg[..]) else { unreachable!("emitted datagram re-parse") };
    assert!(e.verify_checksum_v6(V6_A, V6_B));
    assert_eq!(e.payload(), u.payload());
}

/// TCP: parse and read every field.
pub fn tcp(data: &[u8]) {
    let Ok(t) = TcpPacket::new_checked(data) else { return };
    black_box((t.src_port(), t.dst_port(), t.seq_number(), t.ack_number(), t.header_len(), t.flags()));
    black_box((t.window(), t.checksum(), t.urgent_ptr(), t.options(), t.payload()));
    assert_eq!(t.header_len() + t.payload().len(), data.len());
}

/// ICMP and ICMPv6 over the same bytes: parse, read, fill and verify.
pub fn icmp(data: &[u8]) {
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        black_box((
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.rest_of_header(),
            p.payload(),
            p.verify_checksum(),
        ));
        let mut copy = data.to_vec();
        let Ok(mut m) = Icmpv4Packet::new_checked(&mut copy[..]) else { unreachable!("same bytes re-parse") };
        m.fill_checksum();
        assert!(m.verify_checksum());
    }
    if let Ok(p) = Icmpv6Packet::new_checked(data) {
        black_box((p.msg_type(), p.code(), p.checksum(), p.rest_of_header(), p.payload()));
        black_box(p.verify_checksum(V6_A, V6_B));
        let mut copy = data.to_vec();
        let Ok(mut m) = Icmpv6Packet::new_checked(&mut copy[..]) else { unreachable!("same bytes re-parse") };
        m.set_msg_type(2);
        m.set_code(0);
        m.set_rest_of_header(1280);
        black_box(m.payload_mut().len());
        m.fill_checksum(V6_A, V6_B);
        assert!(m.verify_checksum(V6_A, V6_B));
    }
}

/// ESP header: parse and read every field.
pub fn esp_header(data: &[u8]) {
    let Ok(e) = EspPacket::new_checked(data) else { return };
    black_box((e.spi(), e.seq(), e.payload()));
    assert_eq!(e.payload().len() + 8, data.len());
}

/// UDP-encapsulation classification: must agree with the marker helper.
pub fn udp_encap(data: &[u8]) {
    let c = black_box(udp_encap::classify(data));
    let ike = udp_encap::ike_message(data);
    assert_eq!(c == Ok(udp_encap::Encap::Ike), ike.is_some());
    if c == Ok(udp_encap::Encap::Esp) {
        let Ok(e) = EspPacket::new_checked(data) else { unreachable!("ESP classified but too short") };
        assert_ne!(e.spi(), 0);
    }
}

/// Flow key: parse, hash both ways, and check the symmetric hash.
pub fn flow(data: &[u8]) {
    let Ok(k) = FlowKey::parse(data) else { return };
    black_box((k.hash(0), k.hash(u64::MAX)));
    assert_eq!(k.symmetric_hash(7), k.reversed().symmetric_hash(7));
    assert_eq!(k.src_port.is_some(), k.dst_port.is_some());
}
