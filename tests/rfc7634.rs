//! RFC 7634 Appendix A (the ESP example: ChaCha20-Poly1305 in a tunnel-mode
//! ESP SA between 203.0.113.153 and 203.0.113.5) reproduced by esptun.
//!
//! The oracle is the published vector, never esptun's own output:
//! - the AEAD layer (`crypto::new_aead`) turns the RFC's plaintext and AAD
//!   into the RFC's ciphertext and tag, on every compiled backend;
//! - `OutboundSa::seal_with_iv` (the explicit-IV entry point meant for
//!   published vectors: the RFC's IV `10 11 .. 17` is not the sequence
//!   number that esptun would use) produces the RFC's ESP packet byte for
//!   byte, padding and trailer included;
//! - with [`Framing::Ip`] the outer IPv4 header matches the RFC's except
//!   for the Identification field: the RFC example uses 0x2345, esptun
//!   writes the low 16 bits of the sequence number (docs/ARCHITECTURE.md,
//!   "Outer headers"). The test checks every other octet, checks esptun's
//!   header checksum with an independent one's-complement sum, and checks
//!   that putting the RFC's ID back yields the RFC's header exactly;
//! - `strip_outer` + `InboundSa::open` take the RFC's whole packet back to
//!   the RFC's inner ICMP echo request.

use esptun::crypto::{self, AeadAlg, Backend, KeyMaterial};
use esptun::esp::{DropReason, Framing, InboundSa, OutboundSa, OuterPath, PacketBuf, SaConfig, strip_outer};
use std::net::{IpAddr, Ipv4Addr};

/// RFC 7634 Appendix A, KEYMAT: 32 octets of ChaCha20 key, then the 4-octet
/// salt `a0 a1 a2 a3`.
const KEYMAT: &str = "
    80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f
    90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f
    a0 a1 a2 a3";
/// SPI and sequence number of the example.
const SPI: u32 = 0x0102_0304;
const SEQ: u64 = 5;
/// The explicit IV carried in the packet.
const IV: [u8; 8] = [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17];
/// The AEAD nonce: salt || IV.
const NONCE: &str = "a0 a1 a2 a3 10 11 12 13 14 15 16 17";
/// The AAD: SPI || sequence number (no ESN).
const AAD: &str = "01 02 03 04 00 00 00 05";

/// The inner packet: an IPv4 ICMP echo request 198.51.100.5 -> 192.0.2.5.
const INNER: &str = "
    45 00 00 54 a6 f2 00 00 40 01 e7 78 c6 33 64 05
    c0 00 02 05 08 00 5b 7a 3a 08 00 00 55 3b ec 10
    00 07 36 27 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13
    14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23
    24 25 26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33
    34 35 36 37";
/// The ESP trailer of the plaintext: padding 1, 2; pad length 2; next
/// header 4 (IPv4).
const TRAILER: &str = "01 02 02 04";

/// Ciphertext (88 octets) followed by the 16-octet tag.
const CT_AND_TAG: &str = "
    24 03 94 28 b9 7f 41 7e 3c 13 75 3a 4f 05 08 7b
    67 c3 52 e6 a7 fa b1 b9 82 d4 66 ef 40 7a e5 c6
    14 ee 80 99 d5 28 44 eb 61 aa 95 df ab 4c 02 f7
    2a a7 1e 7c 4c 4f 64 c9 be fe 2f ac c6 38 e8 f3
    cb ec 16 3f ac 46 9b 50 27 73 f6 fb 94 e6 64 da
    91 65 b8 28 29 f6 41 e0
    76 aa a8 26 6b 7f b0 f7 b1 1b 36 99 07 e1 ad 43";

/// The outer IPv4 header of the example ESP packet: 203.0.113.153 ->
/// 203.0.113.5, protocol 50, ID 0x2345, TTL 64, checksum 0xde5b.
const OUTER: &str = "
    45 00 00 8c 23 45 00 00 40 32 de 5b cb 00 71 99
    cb 00 71 05";
/// The ESP header: SPI, sequence number, IV.
const ESP_HEADER: &str = "01 02 03 04 00 00 00 05 10 11 12 13 14 15 16 17";

const GW_LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 153);
const GW_REMOTE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex string");
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

/// The RFC's ESP packet, SPI first (what `Framing::Esp` yields).
fn rfc_esp() -> Vec<u8> {
    [hex(ESP_HEADER), hex(CT_AND_TAG)].concat()
}

/// The RFC's whole outer packet.
fn rfc_packet() -> Vec<u8> {
    [hex(OUTER), rfc_esp()].concat()
}

/// RFC 1071 Internet checksum, written here so the test does not lean on
/// esptun's own implementation.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        sum += word;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn config(local: Ipv4Addr, remote: Ipv4Addr, backend: Backend) -> SaConfig {
    let alg = AeadAlg::ChaCha20Poly1305;
    let keymat = KeyMaterial::new(alg, &hex(KEYMAT)).unwrap();
    let path = OuterPath { local: IpAddr::V4(local), remote: IpAddr::V4(remote), encap: None };
    let mut cfg = SaConfig::new(SPI, alg, keymat, path);
    cfg.backend = backend;
    cfg
}

#[test]
fn vector_is_self_consistent() {
    // Guards against a typo in the constants above: the pieces of the RFC
    // example must agree with each other before anything is compared.
    let inner = hex(INNER);
    assert_eq!(inner.len(), 0x54, "inner total length field");
    assert_eq!(inet_checksum(&inner[..20]), 0, "inner header checksum");
    assert_eq!(hex(CT_AND_TAG).len(), inner.len() + 4 + 16);
    assert_eq!(inet_checksum(&hex(OUTER)), 0, "outer header checksum");
    assert_eq!(rfc_packet().len(), 0x8c, "outer total length field");
    let nonce = hex(NONCE);
    assert_eq!(&nonce[..4], &hex(KEYMAT)[32..], "nonce = salt || IV");
    assert_eq!(&nonce[4..], &IV);
    assert_eq!(hex(AAD), [SPI.to_be_bytes(), (SEQ as u32).to_be_bytes()].concat());
}

#[test]
fn aead_layer_matches_appendix_a() {
    let plaintext = [hex(INNER), hex(TRAILER)].concat();
    let expected = hex(CT_AND_TAG);
    let (ct, tag) = expected.split_at(plaintext.len());
    for &backend in Backend::ALL {
        let aead = crypto::new_aead(backend, AeadAlg::ChaCha20Poly1305, &hex(KEYMAT)).unwrap();
        let mut data = plaintext.clone();
        let icv = aead.seal_in_place(&IV, &hex(AAD), &mut data).unwrap();
        assert_eq!(data, ct, "{backend}: ciphertext");
        assert_eq!(icv, tag, "{backend}: tag");

        let mut back = expected.clone();
        aead.open_in_place(&IV, &hex(AAD), &mut back).unwrap();
        assert_eq!(&back[..plaintext.len()], &plaintext[..], "{backend}: decrypts to the plaintext");

        let mut forged = expected.clone();
        forged[0] ^= 1;
        assert!(aead.open_in_place(&IV, &hex(AAD), &mut forged).is_err(), "{backend}: forgery accepted");
    }
}

#[test]
fn seal_reproduces_esp_packet() {
    for &backend in Backend::ALL {
        let out = OutboundSa::new(config(GW_LOCAL, GW_REMOTE, backend)).unwrap();
        let mut buf = PacketBuf::from_packet(&hex(INNER));
        let sealed = out.seal_with_iv(&mut buf, Framing::Esp, SEQ, IV).unwrap();
        assert_eq!(sealed.seq, SEQ);
        assert_eq!(buf.data(), &rfc_esp()[..], "{backend}: ESP packet differs from RFC 7634 Appendix A");
        assert_eq!(out.next_seq(), 1, "seal_with_iv must not move the SA counter");
    }
}

#[test]
fn seal_with_outer_header_matches_but_for_ident() {
    let rfc = rfc_packet();
    let out = OutboundSa::new(config(GW_LOCAL, GW_REMOTE, Backend::default())).unwrap();
    let mut buf = PacketBuf::from_packet(&hex(INNER));
    out.seal_with_iv(&mut buf, Framing::Ip, SEQ, IV).unwrap();
    let ours = buf.data().to_vec();
    assert_eq!(ours.len(), rfc.len());
    // Everything after the outer header is the ESP packet.
    assert_eq!(&ours[20..], &rfc[20..]);
    // Version/IHL, TOS, total length; flags/fragment, TTL, protocol;
    // addresses.
    assert_eq!(&ours[0..4], &rfc[0..4], "version, TOS, length");
    assert_eq!(&ours[6..10], &rfc[6..10], "flags, TTL, protocol");
    assert_eq!(&ours[12..20], &rfc[12..20], "addresses");
    // esptun's documented ID choice: the low 16 bits of the sequence number.
    assert_eq!(&ours[4..6], &(SEQ as u16).to_be_bytes());
    assert_eq!(inet_checksum(&ours[..20]), 0, "esptun's outer header checksum");
    // With the RFC's ID and a recomputed checksum, the header is the RFC's.
    let mut patched = ours[..20].to_vec();
    patched[4..6].copy_from_slice(&rfc[4..6]);
    patched[10..12].fill(0);
    let c = inet_checksum(&patched);
    patched[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(patched, &rfc[..20]);
}

#[test]
fn open_recovers_inner_packet() {
    for &backend in Backend::ALL {
        let mut inb = InboundSa::new(config(GW_REMOTE, GW_LOCAL, backend)).unwrap();
        let mut buf = PacketBuf::from_packet(&rfc_packet());
        let outer = strip_outer(&mut buf).unwrap();
        assert_eq!(outer.src, IpAddr::V4(GW_LOCAL));
        assert_eq!(outer.dst, IpAddr::V4(GW_REMOTE));
        assert_eq!(outer.ports, None);
        assert_eq!(buf.data(), &rfc_esp()[..]);
        let opened = inb.open(&mut buf, outer.ecn).unwrap();
        assert_eq!(opened.seq, SEQ);
        assert_eq!(buf.data(), &hex(INNER)[..], "{backend}: inner packet");
    }
}

#[test]
fn open_rejects_tampered_packet() {
    let mut rfc = rfc_packet();
    let last = rfc.len() - 1;
    rfc[last] ^= 0x80; // one bit of the tag
    let mut inb = InboundSa::new(config(GW_REMOTE, GW_LOCAL, Backend::default())).unwrap();
    let mut buf = PacketBuf::from_packet(&rfc);
    let outer = strip_outer(&mut buf).unwrap();
    assert_eq!(inb.open(&mut buf, outer.ecn), Err(DropReason::AuthFailed));
}
