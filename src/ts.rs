//! Traffic selectors: the address range, protocol and port range that an SA
//! or a policy rule covers (RFC 7296 §3.13.1, RFC 4301 §4.4.1).
//!
//! A selector is a closed address range `start..=end` of one family, an IP
//! protocol (0 = any) and a closed port range. For ICMP and ICMPv6 the
//! "port" is `type << 8 | code` (RFC 7296 §3.13.1), as produced by
//! [`crate::wire::flow::FlowKey`]. A packet that carries no ports (a non-first
//! IPv4 fragment, RFC 4301 "OPAQUE") matches only a selector whose port range
//! is the full `0..=65535`.
//!
//! Non-goals: parsing config text (policy layer) or TS payloads (IKE layer).

use core::fmt;
use std::net::IpAddr;

/// IP protocol number meaning "any protocol".
pub const PROTO_ANY: u8 = 0;

/// One traffic selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// First address of the range (inclusive).
    pub start: IpAddr,
    /// Last address of the range (inclusive); same family as `start`.
    pub end: IpAddr,
    /// IP protocol, or [`PROTO_ANY`].
    pub proto: u8,
    /// First port (inclusive).
    pub port_start: u16,
    /// Last port (inclusive).
    pub port_end: u16,
}

/// Why a selector could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    /// `start` and `end` are of different address families.
    #[error("start and end addresses are of different families")]
    MixedFamily,
    /// `start` is above `end`, or the port range is inverted.
    #[error("range is inverted (start is above end)")]
    Inverted,
    /// Prefix length larger than the address.
    #[error("prefix length too long for the address family")]
    BadPrefix,
}

impl TrafficSelector {
    /// A selector covering an address range, any protocol, all ports.
    pub fn range(start: IpAddr, end: IpAddr) -> Result<Self, TsError> {
        let ts = TrafficSelector { start, end, proto: PROTO_ANY, port_start: 0, port_end: u16::MAX };
        ts.validate()?;
        Ok(ts)
    }

    /// A selector covering the prefix `addr/len`, any protocol, all ports.
    /// Host bits in `addr` are ignored.
    pub fn prefix(addr: IpAddr, len: u8) -> Result<Self, TsError> {
        let (start, end) = prefix_bounds(addr, len)?;
        TrafficSelector::range(start, end)
    }

    /// Everything of one family: `0.0.0.0/0` or `::/0`.
    pub fn any(v6: bool) -> Self {
        let addr = if v6 { IpAddr::from([0u16; 8]) } else { IpAddr::from([0u8; 4]) };
        // Cannot fail: a /0 prefix is valid for either family.
        TrafficSelector::prefix(addr, 0).unwrap_or_else(|_| unreachable!())
    }

    /// Restricts the selector to one protocol and port range.
    pub fn with_proto(mut self, proto: u8, port_start: u16, port_end: u16) -> Result<Self, TsError> {
        self.proto = proto;
        self.port_start = port_start;
        self.port_end = port_end;
        self.validate()?;
        Ok(self)
    }

    /// Checks family agreement and range order.
    pub fn validate(&self) -> Result<(), TsError> {
        match (to_u128(self.start), to_u128(self.end)) {
            ((false, a), (false, b)) | ((true, a), (true, b)) if a <= b => {}
            ((fa, _), (fb, _)) if fa != fb => return Err(TsError::MixedFamily),
            _ => return Err(TsError::Inverted),
        }
        if self.port_start > self.port_end {
            return Err(TsError::Inverted);
        }
        Ok(())
    }

    /// True for an IPv6 selector.
    pub fn is_v6(&self) -> bool {
        self.start.is_ipv6()
    }

    /// True if `addr` lies in the address range.
    #[inline]
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        let (f, a) = to_u128(addr);
        let (fs, s) = to_u128(self.start);
        let (_, e) = to_u128(self.end);
        f == fs && s <= a && a <= e
    }

    /// True if a packet with this protocol and port (`None` when the packet
    /// carries no ports) matches the protocol/port part.
    #[inline]
    pub fn contains_proto_port(&self, proto: u8, port: Option<u16>) -> bool {
        if self.proto != PROTO_ANY && self.proto != proto {
            return false;
        }
        match port {
            Some(p) => self.port_start <= p && p <= self.port_end,
            None => self.port_start == 0 && self.port_end == u16::MAX,
        }
    }

    /// The selector covering what both cover (same family, overlapping
    /// addresses and ports, compatible protocols), or `None` if nothing is
    /// in both (RFC 7296 §2.9 narrowing).
    pub fn intersect(&self, other: &TrafficSelector) -> Option<TrafficSelector> {
        let ((fa, sa), (_, ea)) = (to_u128(self.start), to_u128(self.end));
        let ((fb, sb), (_, eb)) = (to_u128(other.start), to_u128(other.end));
        let proto = match (self.proto, other.proto) {
            (PROTO_ANY, p) | (p, PROTO_ANY) => p,
            (p, q) if p == q => p,
            _ => return None,
        };
        let (start, end) = (sa.max(sb), ea.min(eb));
        let (port_start, port_end) =
            (self.port_start.max(other.port_start), self.port_end.min(other.port_end));
        if fa != fb || start > end || port_start > port_end {
            return None;
        }
        let ip =
            |x: u128| if fa { IpAddr::from(x.to_be_bytes()) } else { IpAddr::from((x as u32).to_be_bytes()) };
        Some(TrafficSelector { start: ip(start), end: ip(end), proto, port_start, port_end })
    }

    /// True if the selector covers every address, protocol and port of its
    /// family.
    pub fn is_any(&self) -> bool {
        let full = TrafficSelector::any(self.is_v6());
        self.start == full.start
            && self.end == full.end
            && self.proto == PROTO_ANY
            && self.port_start == 0
            && self.port_end == u16::MAX
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match range_as_prefix(self.start, self.end) {
            Some(len) => write!(f, "{}/{}", self.start, len)?,
            None => write!(f, "{}-{}", self.start, self.end)?,
        }
        if self.proto != PROTO_ANY || self.port_start != 0 || self.port_end != u16::MAX {
            write!(f, "[{}", self.proto)?;
            if self.port_start == self.port_end {
                write!(f, "/{}", self.port_start)?;
            } else if self.port_start != 0 || self.port_end != u16::MAX {
                write!(f, "/{}-{}", self.port_start, self.port_end)?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

/// Address as (is_v6, value) so both families compare as integers.
#[inline]
pub fn to_u128(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// First and last address of `addr/len`.
pub fn prefix_bounds(addr: IpAddr, len: u8) -> Result<(IpAddr, IpAddr), TsError> {
    match addr {
        IpAddr::V4(a) => {
            if len > 32 {
                return Err(TsError::BadPrefix);
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let v = u32::from(a) & mask;
            Ok((IpAddr::from(v.to_be_bytes()), IpAddr::from((v | !mask).to_be_bytes())))
        }
        IpAddr::V6(a) => {
            if len > 128 {
                return Err(TsError::BadPrefix);
            }
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            let v = u128::from(a) & mask;
            Ok((IpAddr::from(v.to_be_bytes()), IpAddr::from((v | !mask).to_be_bytes())))
        }
    }
}

/// The prefix length if `start..=end` is exactly one CIDR prefix.
pub fn range_as_prefix(start: IpAddr, end: IpAddr) -> Option<u8> {
    let ((fs, s), (fe, e)) = (to_u128(start), to_u128(end));
    if fs != fe || s > e {
        return None;
    }
    let bits: u32 = if fs { 128 } else { 32 };
    let host = s ^ e;
    // host must be of the form 0..01..1 and s must have those bits clear.
    if host & host.wrapping_add(1) != 0 || s & host != 0 {
        return None;
    }
    let host_bits = 128 - host.leading_zeros();
    Some((bits - host_bits) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn intersect_narrows_addresses_ports_and_protocols() {
        let net = TrafficSelector::prefix(ip("203.0.113.0"), 24).unwrap();
        let half = TrafficSelector::prefix(ip("203.0.113.128"), 25).unwrap();
        assert_eq!(net.intersect(&half), Some(half));
        assert_eq!(half.intersect(&net), Some(half));
        let r = TrafficSelector::range(ip("203.0.113.100"), ip("203.0.114.5")).unwrap();
        assert_eq!(
            net.intersect(&r),
            Some(TrafficSelector::range(ip("203.0.113.100"), ip("203.0.113.255")).unwrap())
        );
        let ssh = net.with_proto(6, 22, 22).unwrap();
        let tcp_hi = TrafficSelector::any(false).with_proto(6, 1, 1024).unwrap();
        assert_eq!(ssh.intersect(&tcp_hi), Some(ssh));
        let udp = TrafficSelector::any(false).with_proto(17, 0, u16::MAX).unwrap();
        assert_eq!(ssh.intersect(&udp), None, "protocols differ");
        let high = net.with_proto(6, 2000, 3000).unwrap();
        assert_eq!(ssh.intersect(&high), None, "ports do not overlap");
        let other = TrafficSelector::prefix(ip("198.51.100.0"), 24).unwrap();
        assert_eq!(net.intersect(&other), None, "addresses do not overlap");
        assert_eq!(net.intersect(&TrafficSelector::any(true)), None, "families differ");
        let v6 = TrafficSelector::prefix(ip("2001:db8::"), 32).unwrap();
        let v6b = TrafficSelector::prefix(ip("2001:db8:1::"), 48).unwrap();
        assert_eq!(v6.intersect(&v6b), Some(v6b));
    }

    #[test]
    fn prefix_and_contains() {
        let ts = TrafficSelector::prefix(ip("198.51.100.77"), 24).unwrap();
        assert_eq!(ts.start, ip("198.51.100.0"));
        assert_eq!(ts.end, ip("198.51.100.255"));
        assert!(ts.contains_addr(ip("198.51.100.1")));
        assert!(!ts.contains_addr(ip("198.51.101.1")));
        assert!(!ts.contains_addr(ip("2001:db8::1")));
        assert_eq!(ts.to_string(), "198.51.100.0/24");
    }

    #[test]
    fn v6_and_any() {
        let ts = TrafficSelector::prefix(ip("2001:db8::5"), 32).unwrap();
        assert!(ts.contains_addr(ip("2001:db8:ffff::1")));
        assert!(!ts.contains_addr(ip("2001:db9::1")));
        assert!(TrafficSelector::any(true).is_any());
        assert!(TrafficSelector::any(false).contains_addr(ip("203.0.113.9")));
        assert_eq!(TrafficSelector::any(false).to_string(), "0.0.0.0/0");
    }

    #[test]
    fn errors() {
        assert_eq!(TrafficSelector::range(ip("198.51.100.9"), ip("2001:db8::1")), Err(TsError::MixedFamily));
        assert_eq!(TrafficSelector::range(ip("198.51.100.9"), ip("198.51.100.1")), Err(TsError::Inverted));
        assert_eq!(TrafficSelector::prefix(ip("198.51.100.9"), 33), Err(TsError::BadPrefix));
        let ts = TrafficSelector::any(false);
        assert_eq!(ts.with_proto(6, 90, 80), Err(TsError::Inverted));
    }

    #[test]
    fn ports_and_opaque() {
        let ts = TrafficSelector::any(false).with_proto(6, 80, 443).unwrap();
        assert!(ts.contains_proto_port(6, Some(80)));
        assert!(!ts.contains_proto_port(17, Some(80)));
        assert!(!ts.contains_proto_port(6, Some(8080)));
        assert!(!ts.contains_proto_port(6, None));
        assert!(TrafficSelector::any(false).contains_proto_port(6, None));
        assert_eq!(ts.to_string(), "0.0.0.0/0[6/80-443]");
    }

    #[test]
    fn range_display() {
        let ts = TrafficSelector::range(ip("198.51.100.3"), ip("198.51.100.9")).unwrap();
        assert_eq!(ts.to_string(), "198.51.100.3-198.51.100.9");
        assert_eq!(range_as_prefix(ip("0.0.0.0"), ip("255.255.255.255")), Some(0));
        assert_eq!(range_as_prefix(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), Some(0));
        assert_eq!(range_as_prefix(ip("203.0.113.4"), ip("203.0.113.4")), Some(32));
    }
}
