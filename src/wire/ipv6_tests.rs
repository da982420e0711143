use super::*;
use proptest::prelude::*;

const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Fixed header: traffic class 0xb9 (DSCP 46, ECN 1), flow label 0x12345,
/// hop limit 64, 2001:db8::1 -> 2001:db8::2, then `rest`.
fn packet(next_header: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x6b, 0x91, 0x23, 0x45];
    p.extend_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
    p.push(next_header);
    p.push(64);
    p.extend_from_slice(&SRC);
    p.extend_from_slice(&DST);
    p.extend_from_slice(rest);
    p
}

const TCP_HDR: [u8; 20] =
    [0x01, 0xbb, 0xc0, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0];

/// Hop-by-hop (8) -> routing (8) -> destination options (16) -> AH (24,
/// length field 4 in 4-byte units minus 2) -> TCP.
fn chained() -> Vec<u8> {
    let mut rest = vec![];
    rest.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]); // HBH, PadN
    rest.extend_from_slice(&[60, 0, 4, 0, 0, 0, 0, 0]); // routing type 4, segments left 0
    rest.extend_from_slice(&[51, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // dest opts, PadN
    rest.extend_from_slice(&[6, 4, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 7]); // AH: SPI 0x1000, seq 7
    rest.extend_from_slice(&[0xab; 12]); // 12-byte ICV
    rest.extend_from_slice(&TCP_HDR);
    packet(0, &rest)
}

#[test]
fn parses_fixed_header() {
    let pkt = packet(17, &[0x11, 0x94, 0x11, 0x94, 0, 8, 0, 0]);
    let p = Ipv6Packet::new_checked(&pkt[..]).unwrap();
    assert_eq!(p.version(), 6);
    assert_eq!((p.traffic_class(), p.dscp(), p.ecn()), (0xb9, 46, 1));
    assert_eq!(p.flow_label(), 0x12345);
    assert_eq!(p.payload_len(), 8);
    assert_eq!(p.total_len(), 48);
    assert_eq!(p.next_header(), 17);
    assert_eq!(p.hop_limit(), 64);
    assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(p.payload(), &pkt[40..]);
    assert_eq!(
        p.upper_layer(),
        Ok(UpperLayer { protocol: 17, offset: 40, is_fragment: false, first_fragment: true })
    );
}

#[test]
fn rejects_bad_fields_and_every_truncation() {
    let pkt = packet(17, &[0; 8]);
    for n in 0..pkt.len() {
        assert_eq!(Ipv6Packet::new_checked(&pkt[..n]), Err(WireError::Truncated), "len {n}");
    }
    let mut v4 = pkt.clone();
    v4[0] = 0x4b;
    assert_eq!(Ipv6Packet::new_checked(&v4[..]), Err(WireError::BadVersion));
    let jumbo = packet(59, &[]);
    assert_eq!(Ipv6Packet::new_checked(&jumbo[..]), Err(WireError::Jumbogram));
    let mut long = pkt.clone();
    long.extend_from_slice(&[1, 2, 3]);
    assert_eq!(Ipv6Packet::new_checked(&long[..]).unwrap().payload().len(), 8);
}

#[test]
fn walks_hbh_routing_destopts_ah() {
    let pkt = chained();
    let p = Ipv6Packet::new_checked(&pkt[..]).unwrap();
    let ul = p.upper_layer().unwrap();
    assert_eq!(
        ul,
        UpperLayer { protocol: 6, offset: 40 + 8 + 8 + 16 + 24, is_fragment: false, first_fragment: true }
    );
    assert_eq!(&pkt[ul.offset..], &TCP_HDR[..]);
}

#[test]
fn chain_cut_short_is_truncated() {
    // Cut the chain inside each extension header (payload_len adjusted so
    // the fixed header stays valid): the walk must report Truncated.
    let full = chained();
    for cut in 41..(40 + 56) {
        let mut pkt = full[..cut].to_vec();
        let pl = u16::try_from(cut - 40).unwrap();
        pkt[4..6].copy_from_slice(&pl.to_be_bytes());
        let p = Ipv6Packet::new_checked(&pkt[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(WireError::Truncated), "cut {cut}");
    }
}

#[test]
fn fragments() {
    // First fragment: offset 0, M set; the UDP header follows.
    let first = packet(44, &[17, 0, 0x00, 0x01, 0, 0, 0, 42, 0x11, 0x94, 0x11, 0x94, 0, 8, 0, 0]);
    let p = Ipv6Packet::new_checked(&first[..]).unwrap();
    assert_eq!(
        p.upper_layer(),
        Ok(UpperLayer { protocol: 17, offset: 48, is_fragment: true, first_fragment: true })
    );
    // Non-first: offset 181 units (1448 bytes) = 0x05a8 with M clear.
    let later = packet(44, &[17, 0, 0x05, 0xa8, 0, 0, 0, 42, 1, 2, 3, 4]);
    let p = Ipv6Packet::new_checked(&later[..]).unwrap();
    assert_eq!(
        p.upper_layer(),
        Ok(UpperLayer { protocol: 17, offset: 48, is_fragment: true, first_fragment: false })
    );
    // A non-first fragment whose data looks like more headers: not walked.
    let tricky = packet(44, &[60, 0, 0x00, 0x08, 0, 0, 0, 1, 60, 200, 0, 0, 0, 0, 0, 0]);
    let ul = Ipv6Packet::new_checked(&tricky[..]).unwrap().upper_layer().unwrap();
    assert_eq!((ul.protocol, ul.offset, ul.first_fragment), (60, 48, false));
}

#[test]
fn stops_at_esp_and_no_next_header() {
    let esp = packet(50, &[0, 0, 1, 0, 0, 0, 0, 1]);
    assert_eq!(Ipv6Packet::new_checked(&esp[..]).unwrap().upper_layer().unwrap().protocol, 50);
    let none = packet(60, &[59, 0, 1, 4, 0, 0, 0, 0]);
    let ul = Ipv6Packet::new_checked(&none[..]).unwrap().upper_layer().unwrap();
    assert_eq!((ul.protocol, ul.offset), (59, 48));
}

#[test]
fn limits_and_order() {
    let opts = |n: usize| {
        let mut rest = vec![];
        for _ in 0..n - 1 {
            rest.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        rest.extend_from_slice(&[59, 0, 1, 4, 0, 0, 0, 0]);
        packet(60, &rest)
    };
    let eight = opts(MAX_EXT_HEADERS);
    assert_eq!(Ipv6Packet::new_checked(&eight[..]).unwrap().upper_layer().unwrap().offset, 40 + 64);
    let nine = opts(MAX_EXT_HEADERS + 1);
    assert_eq!(Ipv6Packet::new_checked(&nine[..]).unwrap().upper_layer(), Err(WireError::TooManyExtHeaders));
    let late_hbh = packet(60, &[0, 0, 1, 4, 0, 0, 0, 0, 59, 0, 1, 4, 0, 0, 0, 0]);
    assert_eq!(Ipv6Packet::new_checked(&late_hbh[..]).unwrap().upper_layer(), Err(WireError::BadExtHeader));
}

#[test]
fn setters() {
    let mut pkt = packet(17, &[0; 8]);
    let mut p = Ipv6Packet::new_checked(&mut pkt[..]).unwrap();
    p.set_ecn(3);
    assert_eq!((p.dscp(), p.ecn()), (46, 3));
    p.set_dscp(10);
    assert_eq!((p.traffic_class(), p.flow_label(), p.version()), (0x2b, 0x12345, 6));
    p.set_hop_limit(1);
    assert_eq!(p.hop_limit(), 1);
    p.payload_mut()[7] = 9;
    assert_eq!(&pkt[..4], &[0x62, 0xb1, 0x23, 0x45]);
    assert_eq!(pkt[47], 9);
}

#[test]
fn repr_emits_hand_built_header() {
    let r = Ipv6Repr {
        src: Ipv6Addr::from(SRC),
        dst: Ipv6Addr::from(DST),
        next_header: 17,
        payload_len: 8,
        hop_limit: 64,
        traffic_class: 0xb9,
        flow_label: 0xfff1_2345, // bits above 20 are dropped
    };
    let mut buf = [0xffu8; 41];
    r.emit(&mut buf).unwrap();
    assert_eq!(&buf[..40], &packet(17, &[0; 8])[..40]);
    assert_eq!(buf[40], 0xff);
    assert_eq!(r.emit(&mut [0u8; 39]), Err(WireError::BufferTooSmall));
}

proptest! {
    #[test]
    fn repr_roundtrip(src: [u8; 16], dst: [u8; 16], next_header: u8, payload_len in 1u16..1500, hop_limit: u8,
                      traffic_class: u8, flow_label in 0u32..0x10_0000) {
        let r = Ipv6Repr {
            src: Ipv6Addr::from(src), dst: Ipv6Addr::from(dst), next_header, payload_len, hop_limit,
            traffic_class, flow_label,
        };
        let mut buf = vec![0u8; 40 + usize::from(payload_len)];
        r.emit(&mut buf).unwrap();
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&p), r);
    }

    #[test]
    fn arbitrary_chains_never_panic(nh: u8, rest in proptest::collection::vec(any::<u8>(), 1..120)) {
        let pkt = packet(nh, &rest);
        let p = Ipv6Packet::new_checked(&pkt[..]).unwrap();
        if let Ok(ul) = p.upper_layer() {
            prop_assert!(ul.offset <= pkt.len());
            prop_assert!(ul.offset >= 40);
        }
    }
}
