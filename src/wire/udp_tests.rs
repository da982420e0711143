use super::*;
use proptest::prelude::*;

const V4_SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const V4_DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// 4500 -> 4500, length 12, payload "ESP!". Checksums computed
/// independently (pseudo header + datagram, RFC 768 / RFC 8200 §8.1):
/// 0x5afd for 192.0.2.1 -> 198.51.100.7, 0xebc4 for 2001:db8::1 -> ::2.
fn datagram(csum: u16) -> [u8; 12] {
    let c = csum.to_be_bytes();
    [0x11, 0x94, 0x11, 0x94, 0x00, 0x0c, c[0], c[1], b'E', b'S', b'P', b'!']
}

#[test]
fn parses_and_verifies_v4() {
    let d = datagram(0x5afd);
    let u = UdpPacket::new_checked(&d[..]).unwrap();
    assert_eq!((u.src_port(), u.dst_port(), u.len(), u.checksum()), (4500, 4500, 12, 0x5afd));
    assert!(!u.is_empty());
    assert_eq!(u.payload(), b"ESP!");
    assert_eq!(u.datagram(), &d[..]);
    assert!(u.verify_checksum_v4(V4_SRC, V4_DST));
    assert!(!u.verify_checksum_v4(V4_SRC, Ipv4Addr::new(198, 51, 100, 8)));
    let none = datagram(0);
    assert!(UdpPacket::new_checked(&none[..]).unwrap().verify_checksum_v4(V4_SRC, V4_DST));
}

#[test]
fn parses_and_verifies_v6() {
    let d = datagram(0xebc4);
    let u = UdpPacket::new_checked(&d[..]).unwrap();
    assert!(u.verify_checksum_v6(v6("2001:db8::1"), v6("2001:db8::2")));
    assert!(!u.verify_checksum_v6(v6("2001:db8::1"), v6("2001:db8::3")));
    let none = datagram(0);
    assert!(
        !UdpPacket::new_checked(&none[..]).unwrap().verify_checksum_v6(v6("2001:db8::1"), v6("2001:db8::2"))
    );
}

#[test]
fn length_checks() {
    let d = datagram(0);
    for n in 0..d.len() {
        assert_eq!(UdpPacket::new_checked(&d[..n]), Err(WireError::Truncated), "len {n}");
    }
    let mut short = d;
    short[5] = 7;
    assert_eq!(UdpPacket::new_checked(&short[..]), Err(WireError::BadLength));
    let mut shorter = d;
    shorter[5] = 10; // datagram shorter than the buffer: payload trimmed
    assert_eq!(UdpPacket::new_checked(&shorter[..]).unwrap().payload(), b"ES");
}

#[test]
fn emits_hand_built_datagrams() {
    let r = UdpRepr { src_port: 4500, dst_port: 4500 };
    let mut seg = [0u8; 12];
    seg[8..].copy_from_slice(b"ESP!");
    r.emit_v4(&mut seg, V4_SRC, V4_DST, true).unwrap();
    assert_eq!(seg, datagram(0x5afd));
    r.emit_v4(&mut seg, V4_SRC, V4_DST, false).unwrap();
    assert_eq!(seg, datagram(0));
    r.emit_v6(&mut seg, v6("2001:db8::1"), v6("2001:db8::2")).unwrap();
    assert_eq!(seg, datagram(0xebc4));
    assert_eq!(r.emit_v4(&mut [0u8; 7], V4_SRC, V4_DST, true), Err(WireError::BufferTooSmall));
    assert_eq!(r.emit_v6(&mut vec![0u8; 65536], v6("::1"), v6("::1")), Err(WireError::TooLong));
}

#[test]
fn zero_checksum_is_sent_as_ffff() {
    // Choose the last payload word so the datagram sums to 0xffff, making
    // the computed checksum 0, which must go on the wire as 0xffff.
    let r = UdpRepr { src_port: 1, dst_port: 2 };
    let mut seg = [0u8; 10];
    let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    r.emit_v4(&mut seg, src, dst, true).unwrap();
    // With payload word 0 the sum S gives checksum !S; setting the payload
    // word to that checksum makes the sum 0xffff.
    let c = u16::from_be_bytes([seg[6], seg[7]]);
    seg[8..10].copy_from_slice(&c.to_be_bytes());
    r.emit_v4(&mut seg, src, dst, true).unwrap();
    assert_eq!(&seg[6..8], &[0xff, 0xff]);
    assert!(UdpPacket::new_checked(&seg[..]).unwrap().verify_checksum_v4(src, dst));
}

proptest! {
    #[test]
    fn emit_then_parse(src_port: u16, dst_port: u16, payload in proptest::collection::vec(any::<u8>(), 0..300),
                       s4: [u8; 4], d4: [u8; 4], s6: [u8; 16], d6: [u8; 16]) {
        let r = UdpRepr { src_port, dst_port };
        let mut seg = vec![0u8; 8];
        seg.extend_from_slice(&payload);
        r.emit_v4(&mut seg, s4.into(), d4.into(), true).unwrap();
        let u = UdpPacket::new_checked(&seg[..]).unwrap();
        prop_assert_eq!((u.src_port(), u.dst_port(), u.payload()), (src_port, dst_port, &payload[..]));
        prop_assert!(u.checksum() != 0);
        prop_assert!(u.verify_checksum_v4(s4.into(), d4.into()));
        r.emit_v6(&mut seg, s6.into(), d6.into()).unwrap();
        let u = UdpPacket::new_checked(&seg[..]).unwrap();
        prop_assert!(u.verify_checksum_v6(s6.into(), d6.into()));
        prop_assert_eq!(usize::from(u.len()), seg.len());
    }
}
