use super::*;
use proptest::prelude::*;

/// 192.0.2.1 -> 198.51.100.7, UDP, total length 28, ident 0x1c46, DF,
/// TTL 64. Checksum worked by hand: the words 4500 001c 1c46 4000 4011
/// c000 0201 c633 6407 sum to 0x2cdae, folded 0xcdb0, complement 0x324f.
const HDR: [u8; 20] = [
    0x45, 0x00, 0x00, 0x1c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x32, 0x4f, 0xc0, 0x00, 0x02, 0x01, 0xc6,
    0x33, 0x64, 0x07,
];

fn packet() -> Vec<u8> {
    let mut p = HDR.to_vec();
    p.extend_from_slice(&[0x11, 0x94, 0x11, 0x94, 0x00, 0x08, 0x00, 0x00]);
    p
}

#[test]
fn parses_hand_built_header() {
    let pkt = packet();
    let p = Ipv4Packet::new_checked(&pkt[..]).unwrap();
    assert_eq!(p.version(), 4);
    assert_eq!(p.header_len(), 20);
    assert_eq!((p.tos(), p.dscp(), p.ecn()), (0, 0, 0));
    assert_eq!(p.total_len(), 28);
    assert_eq!(p.ident(), 0x1c46);
    assert!(p.dont_frag());
    assert!(!p.more_frags());
    assert_eq!(p.frag_offset(), 0);
    assert!(!p.is_fragment());
    assert_eq!(p.ttl(), 64);
    assert_eq!(p.protocol(), 17);
    assert_eq!(p.checksum(), 0x324f);
    assert!(p.verify_checksum());
    assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));
    assert_eq!(p.header(), &HDR[..]);
    assert_eq!(p.payload(), &pkt[20..]);
    assert_eq!(p.packet(), &pkt[..]);
    assert_eq!(p.into_inner().len(), 28);
}

#[test]
fn bad_checksum_detected() {
    let mut pkt = packet();
    pkt[11] ^= 1;
    assert!(!Ipv4Packet::new_checked(&pkt[..]).unwrap().verify_checksum());
}

#[test]
fn every_truncation_is_an_error() {
    let pkt = packet();
    for n in 0..pkt.len() {
        assert_eq!(Ipv4Packet::new_checked(&pkt[..n]), Err(WireError::Truncated), "len {n}");
    }
}

#[test]
fn rejects_bad_fields() {
    let mut v6 = packet();
    v6[0] = 0x65;
    assert_eq!(Ipv4Packet::new_checked(&v6[..]), Err(WireError::BadVersion));
    let mut ihl = packet();
    ihl[0] = 0x44;
    assert_eq!(Ipv4Packet::new_checked(&ihl[..]), Err(WireError::BadHeaderLen));
    let mut big_ihl = packet();
    big_ihl[0] = 0x4f; // 60-byte header in 28 bytes
    assert_eq!(Ipv4Packet::new_checked(&big_ihl[..]), Err(WireError::Truncated));
    let mut short_total = packet();
    short_total[3] = 19;
    assert_eq!(Ipv4Packet::new_checked(&short_total[..]), Err(WireError::BadTotalLen));
    let mut long_total = packet();
    long_total[3] = 29;
    assert_eq!(Ipv4Packet::new_checked(&long_total[..]), Err(WireError::Truncated));
}

#[test]
fn trailing_bytes_are_not_payload() {
    let mut pkt = packet();
    pkt.extend_from_slice(&[0xee; 6]); // e.g. Ethernet padding
    let p = Ipv4Packet::new_checked(&pkt[..]).unwrap();
    assert_eq!(p.payload().len(), 8);
    assert_eq!(p.packet().len(), 28);
    assert_eq!(p.as_bytes().len(), 34);
}

#[test]
fn options_and_fragments() {
    // IHL 6 (4 option bytes: NOP NOP NOP EOL), MF set, offset 185 units.
    let mut pkt = vec![
        0x46, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x20, 0xb9, 0x40, 0x06, 0x00, 0x00, 192, 0, 2, 1, 192, 0, 2, 2,
        1, 1, 1, 0,
    ];
    pkt.extend_from_slice(&[9, 9, 9, 9]);
    let mut p = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
    p.fill_checksum();
    assert!(p.verify_checksum());
    assert_eq!(p.header_len(), 24);
    assert_eq!(p.header().len(), 24);
    assert_eq!(p.payload(), &[9, 9, 9, 9]);
    assert!(p.more_frags());
    assert!(!p.dont_frag());
    assert_eq!(p.frag_offset(), 185 * 8);
    assert!(p.is_fragment());
}

#[test]
fn setters_keep_checksum_valid() {
    let mut pkt = packet();
    let mut p = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
    p.set_dscp(46);
    p.set_ecn(1);
    assert_eq!((p.tos(), p.dscp(), p.ecn()), (0xb9, 46, 1));
    // Recomputed independently for TOS 0xb9: 0x3196.
    assert_eq!(p.checksum(), 0x3196);
    assert!(p.verify_checksum());
    p.set_ecn(3);
    assert_eq!(p.dscp(), 46);
    assert!(p.verify_checksum());
    p.set_tos(0);
    assert_eq!(p.checksum(), 0x324f);
    p.set_ttl(1);
    assert_eq!(p.ttl(), 1);
    assert_eq!(p.protocol(), 17);
    assert_eq!(p.checksum(), 0x714f); // recomputed independently for TTL 1
    p.set_dst_addr(Ipv4Addr::new(203, 0, 113, 9));
    assert_eq!(p.dst_addr(), Ipv4Addr::new(203, 0, 113, 9));
    assert!(p.verify_checksum());
    p.payload_mut()[0] = 0xaa;
    assert_eq!(pkt[20], 0xaa);
}

#[test]
fn repr_emits_hand_built_header() {
    let r = Ipv4Repr {
        src: Ipv4Addr::new(192, 0, 2, 1),
        dst: Ipv4Addr::new(198, 51, 100, 7),
        protocol: 17,
        payload_len: 8,
        ttl: 64,
        tos: 0,
        dont_frag: true,
        ident: 0x1c46,
    };
    let mut buf = [0xffu8; 21];
    r.emit(&mut buf).unwrap();
    assert_eq!(&buf[..20], &HDR[..]);
    assert_eq!(buf[20], 0xff, "emit wrote past the header");
    assert_eq!(r.emit(&mut [0u8; 19]), Err(WireError::BufferTooSmall));
    let big = Ipv4Repr { payload_len: 65516, ..r };
    assert_eq!(big.emit(&mut buf), Err(WireError::TooLong));
    let max = Ipv4Repr { payload_len: 65515, ..r };
    assert_eq!(max.emit(&mut buf), Ok(()));
}

proptest! {
    #[test]
    fn repr_roundtrip(src: [u8; 4], dst: [u8; 4], protocol: u8, payload_len in 0u16..1500, ttl: u8, tos: u8,
                      dont_frag: bool, ident: u16) {
        let r = Ipv4Repr {
            src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst), protocol, payload_len, ttl, tos, dont_frag, ident,
        };
        let mut buf = vec![0u8; 20 + usize::from(payload_len)];
        r.emit(&mut buf).unwrap();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&p), r);
        prop_assert_eq!(p.payload().len(), usize::from(payload_len));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
            prop_assert!(p.header_len() <= usize::from(p.total_len()));
            prop_assert!(usize::from(p.total_len()) <= data.len());
            prop_assert_eq!(p.header().len() + p.payload().len(), usize::from(p.total_len()));
        }
    }

    #[test]
    fn incremental_update_matches_full_recompute(tos: u8, ttl: u8, start_tos: u8) {
        let mut pkt = packet();
        pkt[1] = start_tos;
        let mut p = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
        p.fill_checksum();
        p.set_tos(tos);
        p.set_ttl(ttl);
        let inc = p.checksum();
        p.fill_checksum();
        // One's complement has two zeros; both verify, so compare by validity
        // and by value modulo 0x0000/0xffff.
        let full = p.checksum();
        prop_assert!(inc == full || (inc | full) == 0xffff && (inc & full) == 0);
    }
}
