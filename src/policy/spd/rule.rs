//! SPD rule model: what a rule selects and what it does with a match.
//!
//! These are plain values built by the config layer (or by hand in tests);
//! [`super::Spd::compile`] checks them and builds the lookup structure.

use core::fmt;
use std::net::IpAddr;

use crate::ts::{TrafficSelector, prefix_bounds, range_as_prefix};

/// Index of a child SA (its position in the configuration's child list).
pub type ChildId = u32;

/// What to do with a packet that a rule selects (RFC 4301 §4.4.1: PROTECT,
/// BYPASS, DISCARD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send it through the child SA with this index.
    Protect(ChildId),
    /// Let it pass in clear, outside the tunnel.
    Bypass,
    /// Discard it.
    Drop,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Protect(c) => write!(f, "protect(child {c})"),
            Action::Bypass => f.write_str("bypass"),
            Action::Drop => f.write_str("drop"),
        }
    }
}

/// An address range of one family, or every address of both families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrRange {
    /// Every IPv4 and every IPv6 address. A rule whose source and
    /// destination are both `Any` applies to both families.
    Any,
    /// IPv4 addresses `start..=end` (host order integers).
    V4 {
        /// First address (inclusive).
        start: u32,
        /// Last address (inclusive).
        end: u32,
    },
    /// IPv6 addresses `start..=end` (host order integers).
    V6 {
        /// First address (inclusive).
        start: u128,
        /// Last address (inclusive).
        end: u128,
    },
}

impl AddrRange {
    /// The range `start..=end`; both of one family, `start <= end`.
    pub fn range(start: IpAddr, end: IpAddr) -> Result<Self, SelectorError> {
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if u32::from(s) <= u32::from(e) => {
                Ok(AddrRange::V4 { start: s.into(), end: e.into() })
            }
            (IpAddr::V6(s), IpAddr::V6(e)) if u128::from(s) <= u128::from(e) => {
                Ok(AddrRange::V6 { start: s.into(), end: e.into() })
            }
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => Err(SelectorError::Inverted),
            _ => Err(SelectorError::MixedFamily),
        }
    }

    /// The prefix `addr/len` (host bits of `addr` ignored).
    pub fn prefix(addr: IpAddr, len: u8) -> Result<Self, SelectorError> {
        let (s, e) = prefix_bounds(addr, len).map_err(|_| SelectorError::BadPrefix)?;
        AddrRange::range(s, e)
    }

    /// Every address of one family: `0.0.0.0/0` or `::/0`.
    pub fn all_of(v6: bool) -> Self {
        if v6 {
            AddrRange::V6 { start: 0, end: u128::MAX }
        } else {
            AddrRange::V4 { start: 0, end: u32::MAX }
        }
    }

    /// The address part of a traffic selector.
    pub fn from_ts(ts: &TrafficSelector) -> Result<Self, SelectorError> {
        AddrRange::range(ts.start, ts.end)
    }

    /// True if `addr` is in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (*self, addr) {
            (AddrRange::Any, _) => true,
            (AddrRange::V4 { start, end }, IpAddr::V4(a)) => (start..=end).contains(&u32::from(a)),
            (AddrRange::V6 { start, end }, IpAddr::V6(a)) => (start..=end).contains(&u128::from(a)),
            _ => false,
        }
    }

    /// True if every address of `other` is in `self`.
    pub fn covers(&self, other: &AddrRange) -> bool {
        match (*self, *other) {
            (AddrRange::Any, _) => true,
            (AddrRange::V4 { start, end }, AddrRange::V4 { start: s, end: e }) => start <= s && e <= end,
            (AddrRange::V6 { start, end }, AddrRange::V6 { start: s, end: e }) => start <= s && e <= end,
            _ => false,
        }
    }

    /// True for the range that has IPv4 addresses.
    pub fn has_v4(&self) -> bool {
        !matches!(self, AddrRange::V6 { .. })
    }

    /// True for the range that has IPv6 addresses.
    pub fn has_v6(&self) -> bool {
        !matches!(self, AddrRange::V4 { .. })
    }

    /// First and last address as integers for one family (`v6`), or `None`
    /// if the range has no address of that family.
    pub(crate) fn bounds(&self, v6: bool) -> Option<(u128, u128)> {
        match (*self, v6) {
            (AddrRange::Any, false) => Some((0, u32::MAX as u128)),
            (AddrRange::Any, true) => Some((0, u128::MAX)),
            (AddrRange::V4 { start, end }, false) => Some((start as u128, end as u128)),
            (AddrRange::V6 { start, end }, true) => Some((start, end)),
            _ => None,
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = match *self {
            AddrRange::Any => return f.write_str("any"),
            AddrRange::V4 { start, end } => {
                (IpAddr::from(start.to_be_bytes()), IpAddr::from(end.to_be_bytes()))
            }
            AddrRange::V6 { start, end } => {
                (IpAddr::from(start.to_be_bytes()), IpAddr::from(end.to_be_bytes()))
            }
        };
        match range_as_prefix(s, e) {
            Some(len) => write!(f, "{s}/{len}"),
            None => write!(f, "{s}-{e}"),
        }
    }
}

/// An inclusive port range. For ICMP and ICMPv6 the "port" is
/// `type << 8 | code` (RFC 7296 §3.13.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port (inclusive).
    pub start: u16,
    /// Last port (inclusive).
    pub end: u16,
}

impl PortRange {
    /// Every port, `0..=65535`. Only this range matches a packet whose
    /// ports are opaque (non-first fragments).
    pub const ANY: PortRange = PortRange { start: 0, end: u16::MAX };

    /// The range `start..=end`.
    pub fn new(start: u16, end: u16) -> Result<Self, SelectorError> {
        if start > end {
            return Err(SelectorError::Inverted);
        }
        Ok(PortRange { start, end })
    }

    /// A single port.
    pub const fn single(port: u16) -> Self {
        PortRange { start: port, end: port }
    }

    /// True for `0..=65535`.
    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }

    /// True if a packet port (`None` = opaque) matches.
    pub fn matches(&self, port: Option<u16>) -> bool {
        match port {
            Some(p) => self.start <= p && p <= self.end,
            None => self.is_any(),
        }
    }

    /// True if every port of `other` is in `self`.
    pub fn covers(&self, other: &PortRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::ANY
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// A set of DSCP values (0..=63) as a bit mask: bit `d` set means DSCP `d`
/// matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DscpSet(pub u64);

impl DscpSet {
    /// Every DSCP value.
    pub const ANY: DscpSet = DscpSet(u64::MAX);

    /// Exactly one DSCP value (0..=63).
    pub fn single(dscp: u8) -> Result<Self, SelectorError> {
        if dscp > 63 {
            return Err(SelectorError::BadDscp);
        }
        Ok(DscpSet(1 << dscp))
    }

    /// True if `dscp` (taken modulo 64) is in the set.
    pub fn contains(&self, dscp: u8) -> bool {
        self.0 >> (dscp & 63) & 1 == 1
    }

    /// True for the set of every value.
    pub fn is_any(&self) -> bool {
        self.0 == u64::MAX
    }
}

impl Default for DscpSet {
    fn default() -> Self {
        DscpSet::ANY
    }
}

/// What packets a rule selects. All parts must match (logical AND).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleSelector {
    /// Source (inner, plaintext) address range.
    pub src: AddrRange,
    /// Destination address range.
    pub dst: AddrRange,
    /// IP protocol (IPv6: the upper-layer protocol after extension
    /// headers), or `None` for any.
    pub proto: Option<u8>,
    /// Source ports; [`PortRange::ANY`] for any.
    pub src_ports: PortRange,
    /// Destination ports; [`PortRange::ANY`] for any.
    pub dst_ports: PortRange,
    /// DSCP values; [`DscpSet::ANY`] for any.
    pub dscp: DscpSet,
}

impl RuleSelector {
    /// Selects every packet of both families.
    pub const ANY: RuleSelector = RuleSelector {
        src: AddrRange::Any,
        dst: AddrRange::Any,
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
        dscp: DscpSet::ANY,
    };

    /// Selects traffic from `src` to `dst`, any protocol, port and DSCP.
    pub fn addrs(src: AddrRange, dst: AddrRange) -> Self {
        RuleSelector { src, dst, ..RuleSelector::ANY }
    }

    /// Checks the selector: `src` and `dst` of one family (or `Any`), DSCP
    /// set not empty, and port ranges only with a protocol that has ports.
    pub fn validate(&self) -> Result<(), SelectorError> {
        let same_family =
            (self.src.has_v4() && self.dst.has_v4()) || (self.src.has_v6() && self.dst.has_v6());
        if !same_family {
            return Err(SelectorError::MixedFamily);
        }
        if self.src_ports.start > self.src_ports.end || self.dst_ports.start > self.dst_ports.end {
            return Err(SelectorError::Inverted);
        }
        if self.dscp.0 == 0 {
            return Err(SelectorError::EmptyDscp);
        }
        if (!self.src_ports.is_any() || !self.dst_ports.is_any()) && self.proto.is_none() {
            return Err(SelectorError::PortsWithoutProto);
        }
        Ok(())
    }

    /// True for an IPv4 rule (or one of both families).
    pub fn has_v4(&self) -> bool {
        self.src.has_v4() && self.dst.has_v4()
    }

    /// True for an IPv6 rule (or one of both families).
    pub fn has_v6(&self) -> bool {
        self.src.has_v6() && self.dst.has_v6()
    }

    /// True if every packet that `other` selects is selected by `self`
    /// (compared family by family, so `Any` next to an IPv4 range counts as
    /// all of IPv4).
    pub fn covers(&self, other: &RuleSelector) -> bool {
        for v6 in [false, true] {
            let (Some(os), Some(od)) = (other.src.bounds(v6), other.dst.bounds(v6)) else { continue };
            let (Some(ss), Some(sd)) = (self.src.bounds(v6), self.dst.bounds(v6)) else { return false };
            if !(ss.0 <= os.0 && os.1 <= ss.1 && sd.0 <= od.0 && od.1 <= sd.1) {
                return false;
            }
        }
        (self.proto.is_none() || self.proto == other.proto)
            && self.src_ports.covers(&other.src_ports)
            && self.dst_ports.covers(&other.dst_ports)
            && self.dscp.0 & other.dscp.0 == other.dscp.0
    }

    /// True if the selector matches a packet: the reference semantics that
    /// the compiled lookup must agree with.
    pub fn matches(&self, key: &super::FlowKey) -> bool {
        self.src.contains(key.src)
            && self.dst.contains(key.dst)
            && key.src.is_ipv4() == key.dst.is_ipv4()
            && self.proto.is_none_or(|p| p == key.proto)
            && self.src_ports.matches(key.src_port)
            && self.dst_ports.matches(key.dst_port)
            && self.dscp.contains(key.dscp)
    }
}

impl fmt::Display for RuleSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.src, self.dst)?;
        if let Some(p) = self.proto {
            write!(f, " proto {p}")?;
        }
        if !self.src_ports.is_any() {
            write!(f, " sport {}", self.src_ports)?;
        }
        if !self.dst_ports.is_any() {
            write!(f, " dport {}", self.dst_ports)?;
        }
        if !self.dscp.is_any() {
            write!(f, " dscp {:#x}", self.dscp.0)?;
        }
        Ok(())
    }
}

/// One ordered SPD entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The packets it selects.
    pub selector: RuleSelector,
    /// What happens to them.
    pub action: Action,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.selector, self.action)
    }
}

/// Why a selector is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The source and destination ranges (or a range's two ends) are of
    /// different address families.
    #[error("source and destination are of different address families")]
    MixedFamily,
    /// A range's start is above its end.
    #[error("range is inverted (start is above end)")]
    Inverted,
    /// Prefix length too long for the address family.
    #[error("prefix length too long for the address family")]
    BadPrefix,
    /// DSCP value above 63.
    #[error("DSCP value must be 0..=63")]
    BadDscp,
    /// The DSCP set is empty, so the rule could never match.
    #[error("DSCP set is empty")]
    EmptyDscp,
    /// A port range was given without a protocol.
    #[error("port ranges need a protocol")]
    PortsWithoutProto,
}

/// Why a rule set could not be compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpdError {
    /// Rule `index` (position in the list given to compile) is invalid.
    #[error("rule {index}: {reason}")]
    Rule {
        /// Position of the rule in the list.
        index: usize,
        /// What is wrong with its selector.
        reason: SelectorError,
    },
    /// Too many rules, or the compiled tables would exceed the memory cap.
    #[error("rule set too large to compile: {0}")]
    TooLarge(&'static str),
}
