//! Path MTU handling for inner packets: decide, then fragment or answer with
//! an ICMP/ICMPv6 "too big" error written back into the TUN device.
//!
//! An inner packet read from the TUN grows by the ESP and outer headers when
//! sealed; if the result would exceed the path MTU towards the peer, the
//! dataplane asks [`decide`] (with `max_inner_len` = path MTU minus the SA's
//! worst-case overhead) what to do:
//!
//! - IPv4 with DF clear: fragment the *inner* packet before encryption with
//!   [`super::frag::Fragmenter`] and seal each fragment (RFC 4459 §3.4). The
//!   outer packets stay unfragmented, which survives NATs and middleboxes that
//!   drop outer fragments, and the end host reassembles, as DF clear allows.
//! - IPv4 with DF set, and every IPv6 packet (routers never fragment IPv6,
//!   RFC 8200 §5): signal the lower MTU to the source (RFC 4459 §3.2) with
//!   [`icmpv4_frag_needed`] (RFC 792 type 3 code 4 with the next-hop MTU of
//!   RFC 1191) or [`icmpv6_packet_too_big`] (RFC 4443 §3.2). The error is
//!   written back into the TUN, so the local stack delivers it to the sender
//!   (a local socket or a host routed through us), which then sends smaller
//!   packets (Path MTU Discovery, RFC 1191 / RFC 8201).
//! - When the MTU to report would be below the protocol minimum (68 bytes for
//!   IPv4, RFC 791; 1280 for IPv6, RFC 8200 §5) a source could not act on it:
//!   the dataplane must seal the packet anyway and let the *outer* packet be
//!   fragmented ([`PmtuAction::FragmentOuter`]), the last resort of
//!   RFC 4459 §3.1. The same applies to a DF-clear IPv4 packet whose header
//!   leaves no room for 8 payload bytes per fragment.
//!
//! Source address of the error: the dataplane passes the original packet's
//! *destination* as `src` (so the sender sees the error come from the address
//! it was talking to, and the kernel's PMTU cache keys on that route) unless
//! an address is configured. An IPv6 packet sent to a multicast group may get
//! a Packet Too Big (RFC 4443 §2.4(e.3)); there the dataplane must pass a
//! configured unicast address, as a multicast `src` is refused.
//!
//! No error is generated (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7,
//! RFC 4443 §2.4(e)) in response to an ICMP/ICMPv6 error (unknown ICMPv4
//! types count as errors, as in Linux), to a fragment other than the first,
//! to a source that is not one host (unspecified, loopback, multicast,
//! broadcast, IPv4 class E), or, for IPv4, to a multicast or limited-broadcast
//! destination; the builders return an [`IcmpError`] for which
//! [`IcmpError::is_suppressed`] is true, and the packet is dropped.
//!
//! Non-goals: rate limiting (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)) needs a
//! clock and belongs to the dataplane; learning the path MTU from ICMP errors
//! about *outer* packets belongs to the control plane. Sans-IO, no
//! allocation: the builders write into a caller-owned buffer
//! ([`ICMPV4_ERROR_MAX`] / [`ICMPV6_ERROR_MAX`] bytes always suffice).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::checksum;

/// Smallest MTU an IPv4 host must accept (RFC 791): never reported lower.
pub const IPV4_MIN_MTU: u16 = 68;
/// Smallest IPv6 link MTU (RFC 8200 §5): never reported lower.
pub const IPV6_MIN_MTU: u32 = 1280;
/// Largest ICMPv4 error datagram, IP header included (RFC 1812 §4.3.2.3).
pub const ICMPV4_ERROR_MAX: usize = 576;
/// Largest ICMPv6 error packet, IPv6 header included (RFC 4443 §2.4(c)).
pub const ICMPV6_ERROR_MAX: usize = 1280;
/// Hop limit / TTL of generated errors.
const HOP_LIMIT: u8 = 64;
/// IPv4 TOS of generated errors: precedence 6, internetwork control
/// (RFC 1812 §4.3.2.5).
const ERROR_TOS: u8 = 0xc0;
/// IP protocol numbers.
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// What to do with an inner packet given the largest inner packet that still
/// fits the path after encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmtuAction {
    /// It fits: seal it as is.
    Fits,
    /// IPv4 with DF clear: split it with [`super::frag::Fragmenter`] into
    /// pieces of at most `max_inner_len` bytes and seal each.
    Fragment,
    /// Too big and the source must be told: build an ICMP "fragmentation
    /// needed" (IPv4 with DF) or ICMPv6 "packet too big" reporting `mtu`,
    /// write it into the TUN, and drop the packet.
    TooBig {
        /// The inner MTU to report (never below 68 for IPv4, 1280 for IPv6).
        mtu: u16,
    },
    /// Too big, but the usable inner MTU is below what the protocol lets us
    /// report (IPv6 under 1280, IPv4 under 68 or no room for a fragment):
    /// seal it anyway and let the outer packet be fragmented.
    FragmentOuter,
    /// Too big and not a well-formed IPv4/IPv6 header: drop it.
    Drop,
}

/// Decides how to send `inner` when at most `max_inner_len` bytes of inner
/// packet fit the path after ESP and outer-header overhead.
pub fn decide(inner: &[u8], max_inner_len: usize) -> PmtuAction {
    if inner.len() <= max_inner_len {
        return PmtuAction::Fits;
    }
    let report = u16::try_from(max_inner_len).unwrap_or(u16::MAX);
    match inner.first().map(|b| b >> 4) {
        Some(4) => {
            let Some(flags) = inner.get(6) else { return PmtuAction::Drop };
            let hdr_len = usize::from(inner.first().map_or(0, |b| b & 0x0f)) * 4;
            if hdr_len < 20 {
                PmtuAction::Drop
            } else if flags & 0x40 != 0 {
                if report < IPV4_MIN_MTU {
                    PmtuAction::FragmentOuter
                } else {
                    PmtuAction::TooBig { mtu: report }
                }
            } else if max_inner_len < hdr_len + 8 {
                PmtuAction::FragmentOuter
            } else {
                PmtuAction::Fragment
            }
        }
        Some(6) if inner.len() >= 40 => {
            if u32::from(report) < IPV6_MIN_MTU {
                PmtuAction::FragmentOuter
            } else {
                PmtuAction::TooBig { mtu: report }
            }
        }
        _ => PmtuAction::Drop,
    }
}

/// Why no ICMP error was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IcmpError {
    /// The original is not a well-formed IPv4/IPv6 packet (bad version,
    /// lengths, header checksum or extension-header chain).
    #[error("original packet malformed")]
    Malformed,
    /// Suppressed: the original is itself an ICMP/ICMPv6 error.
    #[error("original is an ICMP error")]
    OriginalIsIcmpError,
    /// Suppressed: the original is a fragment other than the first.
    #[error("original is a non-first fragment")]
    NotFirstFragment,
    /// Suppressed: the original's source is not one host (unspecified,
    /// loopback, multicast, broadcast or IPv4 class E).
    #[error("original source is not a single host")]
    BadSource,
    /// Suppressed: the original IPv4 packet went to a multicast or the
    /// limited-broadcast address.
    #[error("original destination is multicast or broadcast")]
    MulticastDestination,
    /// The `src` passed for the error is unspecified or multicast.
    #[error("invalid source address for the error")]
    InvalidErrorSource,
    /// The MTU to report is below the protocol minimum (68 / 1280).
    #[error("MTU below the protocol minimum")]
    MtuBelowMinimum,
    /// `out` is shorter than the error message.
    #[error("output buffer too small")]
    BufferTooSmall,
}

impl IcmpError {
    /// True when the RFCs forbid an error for this original packet (as
    /// opposed to a malformed input or a caller mistake).
    pub fn is_suppressed(self) -> bool {
        matches!(
            self,
            Self::OriginalIsIcmpError | Self::NotFirstFragment | Self::BadSource | Self::MulticastDestination
        )
    }
}

/// Writes into `out` an IPv4 packet carrying an ICMP Destination Unreachable,
/// code 4 "fragmentation needed and DF set" (RFC 792), with `mtu` as the
/// next-hop MTU (RFC 1191 §4), from `src` to the original's source, quoting
/// the original header and as much payload as fits in 576 bytes
/// (RFC 1812 §4.3.2.3). Returns the packet's length.
pub fn icmpv4_frag_needed(
    original: &[u8],
    mtu: u16,
    src: Ipv4Addr,
    out: &mut [u8],
) -> Result<usize, IcmpError> {
    let orig = check_v4_original(original)?;
    if mtu < IPV4_MIN_MTU {
        return Err(IcmpError::MtuBelowMinimum);
    }
    if src.is_unspecified() || src.is_multicast() || src.is_broadcast() {
        return Err(IcmpError::InvalidErrorSource);
    }
    let quote = orig.get(..orig.len().min(ICMPV4_ERROR_MAX - 28)).ok_or(IcmpError::Malformed)?;
    let total = 28 + quote.len();
    let out = out.get_mut(..total).ok_or(IcmpError::BufferTooSmall)?;
    let (ip, icmp) = out.split_at_mut_checked(20).ok_or(IcmpError::BufferTooSmall)?;
    // total <= 576, so the cast is lossless.
    ip.copy_from_slice(&v4_header(total as u16, src, v4_addr(orig, 12)));
    let (head, body) = icmp.split_at_mut_checked(8).ok_or(IcmpError::BufferTooSmall)?;
    let [m0, m1] = mtu.to_be_bytes();
    head.copy_from_slice(&[3, 4, 0, 0, 0, 0, m0, m1]);
    body.copy_from_slice(quote);
    let c = checksum::checksum(icmp);
    put16(icmp, 2, c);
    Ok(total)
}

/// Writes into `out` an IPv6 packet carrying an ICMPv6 Packet Too Big
/// (RFC 4443 §3.2: type 2, code 0, `mtu`), from `src` to the original's
/// source, quoting as much of the original as fits in 1280 bytes
/// (RFC 4443 §2.4(c)), with the pseudo-header checksum (RFC 8200 §8.1).
/// Returns the packet's length.
pub fn icmpv6_packet_too_big(
    original: &[u8],
    mtu: u32,
    src: Ipv6Addr,
    out: &mut [u8],
) -> Result<usize, IcmpError> {
    let orig = check_v6_original(original)?;
    if mtu < IPV6_MIN_MTU {
        return Err(IcmpError::MtuBelowMinimum);
    }
    if src.is_unspecified() || src.is_multicast() {
        return Err(IcmpError::InvalidErrorSource);
    }
    let quote = orig.get(..orig.len().min(ICMPV6_ERROR_MAX - 48)).ok_or(IcmpError::Malformed)?;
    let icmp_len = 8 + quote.len();
    let total = 40 + icmp_len;
    let out = out.get_mut(..total).ok_or(IcmpError::BufferTooSmall)?;
    let (ip, icmp) = out.split_at_mut_checked(40).ok_or(IcmpError::BufferTooSmall)?;
    let dst = v6_addr(orig, 8);
    // icmp_len <= 1240, so the cast is lossless.
    ip.copy_from_slice(&v6_header(icmp_len as u16, src, dst));
    let (head, body) = icmp.split_at_mut_checked(8).ok_or(IcmpError::BufferTooSmall)?;
    let [m0, m1, m2, m3] = mtu.to_be_bytes();
    head.copy_from_slice(&[2, 0, 0, 0, m0, m1, m2, m3]);
    body.copy_from_slice(quote);
    let acc = checksum::pseudo_v6(src, dst, PROTO_ICMPV6, icmp_len as u32);
    let c = !checksum::fold(checksum::sum(icmp, acc));
    put16(icmp, 2, c);
    Ok(total)
}

/// Validates an IPv4 original and the RFC 1812 suppression rules; returns the
/// packet trimmed to its total length.
fn check_v4_original(p: &[u8]) -> Result<&[u8], IcmpError> {
    let first = *p.first().ok_or(IcmpError::Malformed)?;
    let hdr_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || hdr_len < 20 {
        return Err(IcmpError::Malformed);
    }
    let hdr = p.get(..hdr_len).ok_or(IcmpError::Malformed)?;
    let total = usize::from(be16(hdr, 2));
    if total < hdr_len || checksum::checksum(hdr) != 0 {
        return Err(IcmpError::Malformed);
    }
    let p = p.get(..total).ok_or(IcmpError::Malformed)?;
    if be16(hdr, 6) & 0x1fff != 0 {
        return Err(IcmpError::NotFirstFragment);
    }
    let src = v4_addr(hdr, 12);
    let [s0, ..] = src.octets();
    if s0 == 0 || src.is_loopback() || src.is_multicast() || s0 >= 240 {
        // Zero network, loopback, multicast, class E and limited broadcast.
        return Err(IcmpError::BadSource);
    }
    let dst = v4_addr(hdr, 16);
    if dst.is_multicast() || dst.is_broadcast() {
        return Err(IcmpError::MulticastDestination);
    }
    if hdr.get(9) == Some(&PROTO_ICMP) {
        let kind = *p.get(hdr_len).ok_or(IcmpError::Malformed)?;
        // Queries and informational messages (RFC 792, RFC 950, RFC 1256,
        // RFC 8335); every other type, known or not, counts as an error.
        if !matches!(kind, 0 | 8 | 9 | 10 | 13..=18 | 42 | 43) {
            return Err(IcmpError::OriginalIsIcmpError);
        }
    }
    Ok(p)
}

/// Validates an IPv6 original and the RFC 4443 §2.4(e) suppression rules,
/// walking extension headers to the upper layer; returns the packet trimmed
/// to its payload length (a zero payload length, a jumbogram, keeps it all).
fn check_v6_original(p: &[u8]) -> Result<&[u8], IcmpError> {
    if p.len() < 40 || p.first().map(|b| b >> 4) != Some(6) {
        return Err(IcmpError::Malformed);
    }
    let plen = usize::from(be16(p, 4));
    let p = if plen == 0 { p } else { p.get(..40 + plen).ok_or(IcmpError::Malformed)? };
    let src = v6_addr(p, 8);
    if src.is_unspecified() || src.is_loopback() || src.is_multicast() {
        return Err(IcmpError::BadSource);
    }
    // A multicast destination is allowed for Packet Too Big (§2.4(e.3)).
    let mut next = *p.get(6).ok_or(IcmpError::Malformed)?;
    let mut at = 40;
    // Each extension header is at least 8 bytes, so the walk ends within
    // p.len() / 8 steps; the explicit bound documents that.
    for _ in 0..p.len() / 8 + 1 {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let len = (usize::from(*p.get(at + 1).ok_or(IcmpError::Malformed)?) + 1) * 8;
                next = *p.get(at).ok_or(IcmpError::Malformed)?;
                at += len;
            }
            // Fragment header: 8 bytes; offset in the upper 13 bits.
            44 => {
                let frag = p.get(at..at + 8).ok_or(IcmpError::Malformed)?;
                if be16(frag, 2) >> 3 != 0 {
                    return Err(IcmpError::NotFirstFragment);
                }
                next = *frag.first().ok_or(IcmpError::Malformed)?;
                at += 8;
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let len = (usize::from(*p.get(at + 1).ok_or(IcmpError::Malformed)?) + 2) * 4;
                next = *p.get(at).ok_or(IcmpError::Malformed)?;
                at += len;
            }
            PROTO_ICMPV6 => {
                // Types 0..=127 are errors (RFC 4443 §2.1).
                let kind = *p.get(at).ok_or(IcmpError::Malformed)?;
                return if kind < 128 { Err(IcmpError::OriginalIsIcmpError) } else { Ok(p) };
            }
            // Any other upper layer, ESP or no next header: not ICMPv6.
            _ => return Ok(p),
        }
    }
    Err(IcmpError::Malformed)
}

/// The IPv4 header of a generated error, checksum included.
fn v4_header(total: u16, src: Ipv4Addr, dst: Ipv4Addr) -> [u8; 20] {
    let [t0, t1] = total.to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    // DF set with identification 0: an atomic datagram (RFC 6864).
    let mut h =
        [0x45, ERROR_TOS, t0, t1, 0, 0, 0x40, 0, HOP_LIMIT, PROTO_ICMP, 0, 0, s0, s1, s2, s3, d0, d1, d2, d3];
    let c = checksum::checksum(&h);
    put16(&mut h, 10, c);
    h
}

/// The IPv6 header of a generated error (traffic class and flow label 0).
fn v6_header(payload_len: u16, src: Ipv6Addr, dst: Ipv6Addr) -> [u8; 40] {
    let [p0, p1] = payload_len.to_be_bytes();
    let fixed = [0x60, 0, 0, 0, p0, p1, PROTO_ICMPV6, HOP_LIMIT];
    let mut h = [0u8; 40];
    for (d, s) in h.iter_mut().zip(fixed.iter().chain(&src.octets()).chain(&dst.octets())) {
        *d = *s;
    }
    h
}

/// IPv4 address at `at`, or unspecified when out of range (callers check).
fn v4_addr(b: &[u8], at: usize) -> Ipv4Addr {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// IPv6 address at `at`, or unspecified when out of range (callers check).
fn v6_addr(b: &[u8], at: usize) -> Ipv6Addr {
    b.get(at..at + 16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from)
}

/// Big-endian u16 at `at`, or 0 when out of range (callers check lengths).
fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

/// Writes a big-endian u16 at `at` when in range (callers check lengths).
fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(dst) = b.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H1: [u8; 4] = [198, 51, 100, 7];
    const H2: [u8; 4] = [203, 0, 113, 9];
    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn a6(last: u16) -> [u8; 16] {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last).octets()
    }

    /// An IPv4 packet built byte by byte (no options).
    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, flags: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0x00, (total >> 8) as u8, total as u8, 0x12, 0x34];
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&[63, proto, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let c = checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// An IPv6 packet built byte by byte; `payload` starts at the first
    /// extension or upper-layer header.
    fn v6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
        let plen = payload.len() as u16;
        let mut p = vec![0x60, 0x00, 0x00, 0x00, (plen >> 8) as u8, plen as u8, next, 64];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(payload);
        p
    }

    fn filler(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn decide_cases() {
        let df = v4(H1, H2, 17, 0x4000, &filler(1480));
        let nodf = v4(H1, H2, 17, 0, &filler(1480));
        let six = v6(a6(1), a6(2), 17, &filler(1460));
        assert_eq!(decide(&df, 1500), PmtuAction::Fits);
        assert_eq!(decide(&six, 1500), PmtuAction::Fits);
        assert_eq!(decide(&df, 1438), PmtuAction::TooBig { mtu: 1438 });
        assert_eq!(decide(&nodf, 1438), PmtuAction::Fragment);
        assert_eq!(decide(&six, 1438), PmtuAction::TooBig { mtu: 1438 });
        // IPv6 is never told an MTU below 1280: the outer packet fragments.
        assert_eq!(decide(&six, 1280), PmtuAction::TooBig { mtu: 1280 });
        assert_eq!(decide(&six, 1279), PmtuAction::FragmentOuter);
        // IPv4 floors: 68 for DF, header + 8 for fragmenting.
        assert_eq!(decide(&df, 68), PmtuAction::TooBig { mtu: 68 });
        assert_eq!(decide(&df, 67), PmtuAction::FragmentOuter);
        assert_eq!(decide(&nodf, 28), PmtuAction::Fragment);
        assert_eq!(decide(&nodf, 27), PmtuAction::FragmentOuter);
        // Garbage that is too big is dropped; garbage that fits is not ours.
        assert_eq!(decide(&[0x00; 100], 50), PmtuAction::Drop);
        assert_eq!(decide(&[0x44; 100], 50), PmtuAction::Drop);
        assert_eq!(decide(&[0x60; 39], 20), PmtuAction::Drop);
        assert_eq!(decide(&[0x00; 10], 50), PmtuAction::Fits);
        assert_eq!(decide(&[], 0), PmtuAction::Fits);
    }

    /// Checks an ICMPv4 error independently and returns its ICMP part.
    fn verify_v4(out: &[u8], src: Ipv4Addr, dst: [u8; 4]) -> &[u8] {
        assert_eq!(out[0], 0x45);
        assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])), out.len());
        assert_eq!(out[8], 64, "TTL");
        assert_eq!(out[9], 1, "protocol ICMP");
        assert_eq!(&out[12..16], &src.octets());
        assert_eq!(&out[16..20], &dst);
        assert_eq!(checksum::checksum(&out[..20]), 0, "IP header checksum");
        assert_eq!(checksum::checksum(&out[20..]), 0, "ICMP checksum");
        &out[20..]
    }

    #[test]
    fn icmpv4_frag_needed_small_original() {
        let orig = v4(H1, H2, 6, 0x4000, &filler(100));
        let mut out = [0u8; ICMPV4_ERROR_MAX];
        let n = icmpv4_frag_needed(&orig, 1400, GW, &mut out).unwrap();
        assert_eq!(n, 20 + 8 + 120);
        let icmp = verify_v4(&out[..n], GW, H1);
        // Type 3 code 4, unused 0, next-hop MTU 1400 = 0x0578 (RFC 1191).
        assert_eq!(&icmp[..8], &[3, 4, icmp[2], icmp[3], 0, 0, 0x05, 0x78]);
        assert_eq!(&icmp[8..], &orig[..], "whole original quoted unchanged");
    }

    #[test]
    fn icmpv4_quote_limited_to_576() {
        let orig = v4(H1, H2, 17, 0x4000, &filler(1480));
        let mut out = [0u8; 2000];
        let n = icmpv4_frag_needed(&orig, 1300, GW, &mut out).unwrap();
        assert_eq!(n, 576);
        let icmp = verify_v4(&out[..n], GW, H1);
        assert_eq!(&icmp[8..], &orig[..548]);
        // Exactly 576 bytes of room suffices; one less does not.
        assert_eq!(icmpv4_frag_needed(&orig, 1300, GW, &mut out[..576]), Ok(576));
        assert_eq!(icmpv4_frag_needed(&orig, 1300, GW, &mut out[..575]), Err(IcmpError::BufferTooSmall));
    }

    #[test]
    fn icmpv4_echo_request_gets_an_error_but_icmp_errors_do_not() {
        let mut out = [0u8; ICMPV4_ERROR_MAX];
        let echo = v4(H1, H2, 1, 0x4000, &[8, 0, 0, 0, 0, 1, 0, 1]);
        assert!(icmpv4_frag_needed(&echo, 576, GW, &mut out).is_ok());
        for kind in [3u8, 4, 5, 11, 12, 200] {
            let err = v4(H1, H2, 1, 0x4000, &[kind, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(icmpv4_frag_needed(&err, 576, GW, &mut out), Err(IcmpError::OriginalIsIcmpError));
        }
        let empty_icmp = v4(H1, H2, 1, 0x4000, &[]);
        assert_eq!(icmpv4_frag_needed(&empty_icmp, 576, GW, &mut out), Err(IcmpError::Malformed));
    }

    #[test]
    fn icmpv4_suppression_and_caller_errors() {
        let mut out = [0u8; ICMPV4_ERROR_MAX];
        let p = filler(100);
        let frag = v4(H1, H2, 17, 0x2000 | 185, &p);
        assert_eq!(icmpv4_frag_needed(&frag, 576, GW, &mut out), Err(IcmpError::NotFirstFragment));
        let first = v4(H1, H2, 17, 0x2000, &p);
        assert!(icmpv4_frag_needed(&first, 576, GW, &mut out).is_ok());
        for src in [[0, 0, 0, 0], [0, 1, 2, 3], [127, 0, 0, 1], [224, 0, 0, 1], [240, 0, 0, 1], [255; 4]] {
            let bad = v4(src, H2, 17, 0x4000, &p);
            let r = icmpv4_frag_needed(&bad, 576, GW, &mut out);
            assert_eq!(r, Err(IcmpError::BadSource), "{src:?}");
            assert!(r.unwrap_err().is_suppressed());
        }
        for dst in [[224, 0, 0, 5], [239, 1, 2, 3], [255; 4]] {
            let bad = v4(H1, dst, 17, 0x4000, &p);
            assert_eq!(icmpv4_frag_needed(&bad, 576, GW, &mut out), Err(IcmpError::MulticastDestination));
        }
        let ok = v4(H1, H2, 17, 0x4000, &p);
        assert_eq!(icmpv4_frag_needed(&ok, 67, GW, &mut out), Err(IcmpError::MtuBelowMinimum));
        let r = icmpv4_frag_needed(&ok, 576, Ipv4Addr::UNSPECIFIED, &mut out);
        assert_eq!(r, Err(IcmpError::InvalidErrorSource));
        assert!(!r.unwrap_err().is_suppressed());
        let mut corrupt = ok.clone();
        corrupt[8] ^= 1;
        assert_eq!(icmpv4_frag_needed(&corrupt, 576, GW, &mut out), Err(IcmpError::Malformed));
        // Default source: the original's destination.
        let n = icmpv4_frag_needed(&ok, 576, Ipv4Addr::from(H2), &mut out).unwrap();
        verify_v4(&out[..n], Ipv4Addr::from(H2), H1);
    }

    /// Checks an ICMPv6 error independently (pseudo-header sum folds to
    /// 0xffff) and returns its ICMPv6 part.
    fn verify_v6(out: &[u8], src: [u8; 16], dst: [u8; 16]) -> &[u8] {
        assert_eq!(&out[..4], &[0x60, 0, 0, 0]);
        assert_eq!(usize::from(u16::from_be_bytes([out[4], out[5]])), out.len() - 40);
        assert_eq!(out[6], 58);
        assert_eq!(out[7], 64);
        assert_eq!(&out[8..24], &src);
        assert_eq!(&out[24..40], &dst);
        // Pseudo-header built by hand: src, dst, 32-bit length, 3 zero bytes, 58.
        let mut ph = Vec::new();
        ph.extend_from_slice(&src);
        ph.extend_from_slice(&dst);
        ph.extend_from_slice(&((out.len() - 40) as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        ph.extend_from_slice(&out[40..]);
        assert_eq!(checksum::fold(checksum::sum(&ph, 0)), 0xffff, "ICMPv6 checksum");
        &out[40..]
    }

    #[test]
    fn icmpv6_packet_too_big_quotes_up_to_1280() {
        let me = Ipv6Addr::from(a6(0xfe));
        let orig = v6(a6(1), a6(2), 17, &filler(1960));
        let mut out = [0u8; 2100];
        let n = icmpv6_packet_too_big(&orig, 1400, me, &mut out).unwrap();
        assert_eq!(n, 1280);
        let icmp = verify_v6(&out[..n], a6(0xfe), a6(1));
        assert_eq!(&icmp[..2], &[2, 0]);
        assert_eq!(&icmp[4..8], &[0, 0, 0x05, 0x78]);
        assert_eq!(&icmp[8..], &orig[..1232]);
        let small = v6(a6(1), a6(2), 6, &filler(60));
        let n = icmpv6_packet_too_big(&small, 1280, me, &mut out).unwrap();
        assert_eq!(n, 48 + 100);
        let icmp = verify_v6(&out[..n], a6(0xfe), a6(1));
        assert_eq!(&icmp[4..8], &[0, 0, 0x05, 0x00]);
        assert_eq!(&icmp[8..], &small[..]);
        assert_eq!(icmpv6_packet_too_big(&orig, 1400, me, &mut out[..1279]), Err(IcmpError::BufferTooSmall));
    }

    #[test]
    fn icmpv6_walks_extension_headers() {
        let me = Ipv6Addr::from(a6(0xfe));
        let mut out = [0u8; ICMPV6_ERROR_MAX];
        // Hop-by-hop (8 bytes, next = fragment), fragment (offset 0, next =
        // ICMPv6), then an ICMPv6 message of the given type.
        let chain = |kind: u8, frag_off: u16| {
            let mut p = vec![44, 0, 1, 4, 0, 0, 0, 0];
            let fo = (frag_off << 3) | 1;
            p.extend_from_slice(&[58, 0, (fo >> 8) as u8, fo as u8, 0, 0, 0, 9]);
            p.extend_from_slice(&[kind, 0, 0, 0]);
            p.extend_from_slice(&filler(64));
            v6(a6(1), a6(2), 0, &p)
        };
        assert!(icmpv6_packet_too_big(&chain(128, 0), 1280, me, &mut out).is_ok(), "echo request");
        assert_eq!(
            icmpv6_packet_too_big(&chain(1, 0), 1280, me, &mut out),
            Err(IcmpError::OriginalIsIcmpError)
        );
        assert_eq!(
            icmpv6_packet_too_big(&chain(128, 10), 1280, me, &mut out),
            Err(IcmpError::NotFirstFragment)
        );
        // Destination options (16 bytes) and AH (length 4 -> 24 bytes) before
        // an ICMPv6 error.
        let mut p = vec![51, 1];
        p.extend_from_slice(&[0; 14]);
        p.extend_from_slice(&[58, 4]);
        p.extend_from_slice(&[0; 22]);
        p.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        let ah = v6(a6(1), a6(2), 60, &p);
        assert_eq!(icmpv6_packet_too_big(&ah, 1280, me, &mut out), Err(IcmpError::OriginalIsIcmpError));
        // A chain running off the end is malformed.
        let cut = v6(a6(1), a6(2), 0, &[60, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(icmpv6_packet_too_big(&cut, 1280, me, &mut out), Err(IcmpError::Malformed));
        // ESP and no-next-header stop the walk: not ICMPv6.
        let esp = v6(a6(1), a6(2), 50, &filler(40));
        assert!(icmpv6_packet_too_big(&esp, 1280, me, &mut out).is_ok());
    }

    #[test]
    fn icmpv6_suppression_and_caller_errors() {
        let me = Ipv6Addr::from(a6(0xfe));
        let mut out = [0u8; ICMPV6_ERROR_MAX];
        let p = filler(64);
        let loopback = Ipv6Addr::LOCALHOST.octets();
        let mcast = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
        for src in [[0u8; 16], loopback, mcast] {
            let bad = v6(src, a6(2), 17, &p);
            assert_eq!(icmpv6_packet_too_big(&bad, 1280, me, &mut out), Err(IcmpError::BadSource));
        }
        // Multicast destinations do get Packet Too Big (RFC 4443 §2.4(e.3)),
        // but not from a multicast source address.
        let group = v6(a6(1), Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 0x101).octets(), 17, &p);
        assert!(icmpv6_packet_too_big(&group, 1280, me, &mut out).is_ok());
        let r = icmpv6_packet_too_big(&group, 1280, Ipv6Addr::from(mcast), &mut out);
        assert_eq!(r, Err(IcmpError::InvalidErrorSource));
        let ok = v6(a6(1), a6(2), 17, &p);
        assert_eq!(icmpv6_packet_too_big(&ok, 1279, me, &mut out), Err(IcmpError::MtuBelowMinimum));
        // Payload length past the buffer.
        assert_eq!(icmpv6_packet_too_big(&ok[..80], 1280, me, &mut out), Err(IcmpError::Malformed));
    }

    #[test]
    fn decide_then_build() {
        // The dataplane's sequence: decide, then build with src = original dst.
        let orig = v4(H1, H2, 17, 0x4000, &filler(1480));
        let mut out = [0u8; ICMPV4_ERROR_MAX];
        let PmtuAction::TooBig { mtu } = decide(&orig, 1422) else { panic!("expected TooBig") };
        let n = icmpv4_frag_needed(&orig, mtu, Ipv4Addr::from(H2), &mut out).unwrap();
        let icmp = verify_v4(&out[..n], Ipv4Addr::from(H2), H1);
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1422);
        let orig6 = v6(a6(1), a6(2), 17, &filler(1460));
        let mut out6 = [0u8; ICMPV6_ERROR_MAX];
        let PmtuAction::TooBig { mtu } = decide(&orig6, 1350) else { panic!("expected TooBig") };
        let n = icmpv6_packet_too_big(&orig6, mtu.into(), Ipv6Addr::from(a6(2)), &mut out6).unwrap();
        let icmp = verify_v6(&out6[..n], a6(2), a6(1));
        assert_eq!(u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]), 1350);
    }

    #[test]
    fn every_truncation_is_handled() {
        let o4 = v4(H1, H2, 17, 0x4000, &filler(300));
        let mut hbh = vec![17, 0, 1, 4, 0, 0, 0, 0];
        hbh.extend_from_slice(&filler(300));
        let o6 = v6(a6(1), a6(2), 0, &hbh);
        let mut out = [0u8; ICMPV6_ERROR_MAX];
        for n in 0..o4.len() {
            assert_eq!(icmpv4_frag_needed(&o4[..n], 576, GW, &mut out), Err(IcmpError::Malformed), "{n}");
            let _ = decide(&o4[..n], 100);
        }
        for n in 0..o6.len() {
            let r = icmpv6_packet_too_big(&o6[..n], 1280, Ipv6Addr::from(a6(9)), &mut out);
            assert_eq!(r, Err(IcmpError::Malformed), "{n}");
            let _ = decide(&o6[..n], 100);
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500),
                                    max in 0usize..2000, mtu in any::<u16>(), out_len in 0usize..1400) {
            let mut out = vec![0u8; out_len];
            let _ = decide(&bytes, max);
            if let Ok(n) = icmpv4_frag_needed(&bytes, mtu, GW, &mut out) {
                prop_assert!(n <= ICMPV4_ERROR_MAX && n <= out_len);
            }
            if let Ok(n) = icmpv6_packet_too_big(&bytes, mtu.into(), Ipv6Addr::from(a6(9)), &mut out) {
                prop_assert!(n <= ICMPV6_ERROR_MAX && n <= out_len);
            }
        }

        #[test]
        fn random_ipv6_chains_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 40..600),
                                          next in prop::sample::select(vec![0u8, 43, 44, 51, 58, 60, 135])) {
            // Valid fixed header, random extension chain.
            bytes[0] = 0x60;
            let plen = (bytes.len() - 40) as u16;
            bytes[4..6].copy_from_slice(&plen.to_be_bytes());
            bytes[6] = next;
            bytes[8..24].copy_from_slice(&a6(1));
            let mut out = [0u8; ICMPV6_ERROR_MAX];
            if let Ok(n) = icmpv6_packet_too_big(&bytes, 1280, Ipv6Addr::from(a6(9)), &mut out) {
                verify_v6(&out[..n], a6(9), a6(1));
            }
        }
    }
}
