//! Zero-copy, panic-free views over packet bytes, and emitters for the
//! headers esptun writes itself.
//!
//! Every protocol follows one shape (after smoltcp): a view
//! `XPacket<T: AsRef<[u8]>>` whose `new_checked` validates every length
//! once, so that no accessor can panic afterwards; setters exist where
//! `T: AsMut<[u8]>` too; and a plain-data `XRepr` whose `emit` writes a
//! header into a caller-owned buffer. Nothing here allocates, reads a
//! clock or touches a socket.
//!
//! - [`ipv4`], [`ipv6`] (with the extension header walk), [`udp`], [`tcp`],
//!   [`icmp`]: the inner packets read from TUN and the outer headers.
//! - [`esp`]: the ESP header (RFC 4303 §2); [`udp_encap`]: telling NAT
//!   keepalives, IKE and ESP apart on UDP/4500 (RFC 3948 §2).
//! - [`flow`]: the 5-tuple (+ DSCP) of an inner packet, for the SPD lookup
//!   and for spreading flows over gateways and cores.
//! - [`checksum`]: the Internet checksum (RFC 1071, RFC 1624).
//!
//! Non-goals: reassembly, IP options processing, IKE payloads (the `ike`
//! layer has its own parser).

pub mod checksum;
pub mod error;
pub mod esp;
pub mod flow;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod udp_encap;

pub use error::WireError;
pub use esp::EspPacket;
pub use flow::FlowKey;
pub use icmp::{Icmpv4Packet, Icmpv6Packet};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr, UpperLayer};
pub use tcp::TcpPacket;
pub use udp::{UdpPacket, UdpRepr};
pub use udp_encap::{Encap, classify};

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers") that the
/// wire layer interprets.
pub mod proto {
    /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: u8 = 1;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// IPv6 Routing header (RFC 8200 §4.4).
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment header (RFC 8200 §4.5).
    pub const IPV6_FRAG: u8 = 44;
    /// ESP (RFC 4303).
    pub const ESP: u8 = 50;
    /// AH (RFC 4302).
    pub const AH: u8 = 51;
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
    /// IPv6 "No Next Header" (RFC 8200 §4.7).
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options (RFC 8200 §4.6).
    pub const IPV6_OPTS: u8 = 60;
    /// SCTP (RFC 9260).
    pub const SCTP: u8 = 132;
    /// UDP-Lite (RFC 3828).
    pub const UDPLITE: u8 = 136;
}

/// Reads a big-endian `u16` at `off`; 0 if out of bounds (callers have
/// validated lengths, so that branch is dead in practice but keeps every
/// accessor panic-free by construction).
#[inline(always)]
pub(crate) fn be16(buf: &[u8], off: usize) -> u16 {
    match buf.get(off..off.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

/// Reads a big-endian `u32` at `off`; 0 if out of bounds (see [`be16`]).
#[inline(always)]
pub(crate) fn be32(buf: &[u8], off: usize) -> u32 {
    match buf.get(off..off.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Reads the byte at `off`; 0 if out of bounds (see [`be16`]).
#[inline(always)]
pub(crate) fn byte(buf: &[u8], off: usize) -> u8 {
    buf.get(off).copied().unwrap_or(0)
}

/// Writes a big-endian `u16` at `off` if it fits (see [`be16`]).
#[inline(always)]
pub(crate) fn put16(buf: &mut [u8], off: usize, v: u16) {
    if let Some(d) = buf.get_mut(off..off.wrapping_add(2)) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes a big-endian `u32` at `off` if it fits (see [`be16`]).
#[inline(always)]
pub(crate) fn put32(buf: &mut [u8], off: usize, v: u32) {
    if let Some(d) = buf.get_mut(off..off.wrapping_add(4)) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes the byte at `off` if it fits (see [`be16`]).
#[inline(always)]
pub(crate) fn put8(buf: &mut [u8], off: usize, v: u8) {
    if let Some(d) = buf.get_mut(off) {
        *d = v;
    }
}

/// Copies `N` bytes at `off` into an array; zeros if out of bounds.
#[inline(always)]
pub(crate) fn array<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = buf.get(off..off.wrapping_add(N)) {
        out.copy_from_slice(s);
    }
    out
}
