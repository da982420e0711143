//! The flow key of an inner packet: addresses, protocol, ports and DSCP.
//!
//! [`FlowKey::parse`] is the first step of the outbound data path: the SPD
//! lookup matches it against traffic selectors, and [`FlowKey::hash`] /
//! [`FlowKey::symmetric_hash`] spread flows over gateways and cores. It
//! reads only headers, never allocates, and does not verify checksums.
//!
//! Ports follow RFC 4301 and RFC 7296 §3.13.1: TCP, UDP, UDP-Lite and SCTP
//! carry source and destination ports; for ICMP and ICMPv6 both "ports" are
//! `type << 8 | code`; non-first fragments carry none (RFC 4301 §4.4.1.1
//! "OPAQUE"), and neither does a transport header too short to hold them.

use std::net::IpAddr;

use super::ipv4::Ipv4Packet;
use super::ipv6::Ipv6Packet;
use super::proto;
use super::{WireError, be16};

/// The selector-relevant fields of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Source port, ICMP `type << 8 | code`, or `None` (opaque).
    pub src_port: Option<u16>,
    /// Destination port, ICMP `type << 8 | code`, or `None` (opaque).
    pub dst_port: Option<u16>,
    /// DSCP of the packet (upper 6 bits of TOS / traffic class).
    pub dscp: u8,
}

/// Ports of a transport header, or `(None, None)` when it has none or is
/// too short.
#[inline]
fn ports(protocol: u8, v6: bool, l4: &[u8]) -> (Option<u16>, Option<u16>) {
    match protocol {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP if l4.len() >= 4 => {
            (Some(be16(l4, 0)), Some(be16(l4, 2)))
        }
        proto::ICMP if !v6 && l4.len() >= 2 => {
            let t = be16(l4, 0);
            (Some(t), Some(t))
        }
        proto::ICMPV6 if v6 && l4.len() >= 2 => {
            let t = be16(l4, 0);
            (Some(t), Some(t))
        }
        _ => (None, None),
    }
}

/// Pi digits, as arbitrary odd-ish constants for the multiply mixer.
const K: [u64; 4] =
    [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344, 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89];

/// Folded 64x64->128 multiply: the core mixing step of wyhash/foldhash.
#[inline(always)]
fn fmul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// An address as two 64-bit words (IPv4 in the low word).
#[inline(always)]
fn words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(v4) => (0, u64::from(u32::from(v4))),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            ((x >> 64) as u64, x as u64)
        }
    }
}

impl FlowKey {
    /// Parses an IPv4 or IPv6 packet (chosen by the version nibble) into its
    /// flow key, walking IPv6 extension headers.
    pub fn parse(packet: &[u8]) -> Result<FlowKey, WireError> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => Self::parse_v4(packet),
            Some(6) => Self::parse_v6(packet),
            Some(_) => Err(WireError::BadVersion),
            None => Err(WireError::Truncated),
        }
    }

    #[inline]
    fn parse_v4(packet: &[u8]) -> Result<FlowKey, WireError> {
        let ip = Ipv4Packet::new_checked(packet)?;
        let protocol = ip.protocol();
        let (src_port, dst_port) =
            if ip.frag_offset() != 0 { (None, None) } else { ports(protocol, false, ip.payload()) };
        Ok(FlowKey {
            src: IpAddr::V4(ip.src_addr()),
            dst: IpAddr::V4(ip.dst_addr()),
            proto: protocol,
            src_port,
            dst_port,
            dscp: ip.dscp(),
        })
    }

    #[inline]
    fn parse_v6(packet: &[u8]) -> Result<FlowKey, WireError> {
        let ip = Ipv6Packet::new_checked(packet)?;
        let ul = ip.upper_layer()?;
        let (src_port, dst_port) = if ul.first_fragment {
            ports(ul.protocol, true, ip.packet().get(ul.offset..).unwrap_or(&[]))
        } else {
            (None, None)
        };
        Ok(FlowKey {
            src: IpAddr::V6(ip.src_addr()),
            dst: IpAddr::V6(ip.dst_addr()),
            proto: ul.protocol,
            src_port,
            dst_port,
            dscp: ip.dscp(),
        })
    }

    /// The key of the reverse direction (addresses and ports swapped).
    pub fn reversed(&self) -> FlowKey {
        FlowKey { src: self.dst, dst: self.src, src_port: self.dst_port, dst_port: self.src_port, ..*self }
    }

    /// A fast, well-mixed 64-bit hash of every field, keyed by `seed`
    /// (pick a random seed per process so peers cannot aim flows at one
    /// core). Distinct directions of a flow hash differently.
    #[inline]
    pub fn hash(&self, seed: u64) -> u64 {
        let (sh, sl) = words(self.src);
        let (dh, dl) = words(self.dst);
        mix(seed, sh, sl, dh, dl, self.misc() | port_bits(self.src_port, self.dst_port))
    }

    /// Like [`FlowKey::hash`], but equal for both directions of a flow
    /// (`k.symmetric_hash(s) == k.reversed().symmetric_hash(s)`), so both
    /// directions can be steered to the same worker.
    #[inline]
    pub fn symmetric_hash(&self, seed: u64) -> u64 {
        let (mut a, mut b) = ((words(self.src), self.src_port), (words(self.dst), self.dst_port));
        if a > b {
            core::mem::swap(&mut a, &mut b);
        }
        let (((ah, al), ap), ((bh, bl), bp)) = (a, b);
        // A different seed stream keeps the two hashes of one key unrelated.
        mix(seed ^ K[3], ah, al, bh, bl, self.misc() | port_bits(ap, bp))
    }

    /// Protocol, DSCP and family bits (bits 0..17).
    #[inline(always)]
    fn misc(&self) -> u64 {
        u64::from(self.proto) | (u64::from(self.dscp) << 8) | (u64::from(self.src.is_ipv6()) << 16)
    }
}

/// Two ports in bits 32..64, with presence bits 17 and 18 so that
/// `Some(0)` differs from `None`.
#[inline(always)]
fn port_bits(a: Option<u16>, b: Option<u16>) -> u64 {
    (u64::from(a.is_some()) << 17)
        | (u64::from(b.is_some()) << 18)
        | (u64::from(a.unwrap_or(0)) << 32)
        | (u64::from(b.unwrap_or(0)) << 48)
}

/// Combines five words and a seed. The seed enters both operands of each
/// multiply so no chosen input can zero one operand without knowing it.
#[inline(always)]
fn mix(seed: u64, sh: u64, sl: u64, dh: u64, dl: u64, misc: u64) -> u64 {
    let s2 = seed.rotate_left(23) ^ K[2];
    let a = fmul(sh ^ seed ^ K[0], sl ^ s2);
    let b = fmul(dh ^ s2 ^ K[1], dl ^ seed ^ K[3]);
    let c = fmul(misc ^ seed ^ K[2], a ^ K[1]);
    fmul(c ^ b.rotate_left(29), seed ^ K[0])
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
