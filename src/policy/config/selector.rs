//! Traffic selector syntax, following strongSwan's `local_ts`/`remote_ts`:
//!
//! ```text
//! selector := address [ "[" proto [ "/" ports ] "]" ]
//! address  := "198.51.100.0/24" | "2001:db8::/48" | "192.0.2.10-192.0.2.20"
//!           | "203.0.113.7" | "dynamic"
//! proto    := "tcp" | "udp" | "icmp" | "icmpv6" | "sctp" | ... | number | "%any"
//! ports    := "443" | "https" | "1000-2000" | "%any"
//! ```
//!
//! For ICMP and ICMPv6 the "port" is the message type (all codes), carried
//! as `type << 8 .. type << 8 | 0xff` per RFC 7296 §3.13.1. Ports on a
//! protocol that has none (GRE, ESP, "any") are an error.

use super::units::{port_range, proto_by_name, proto_has_ports, proto_name};
use crate::ts::{PROTO_ANY, TrafficSelector, prefix_bounds, range_as_prefix, to_u128};
use core::fmt;
use std::net::IpAddr;

/// One entry of a `local_ts`/`remote_ts` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsSpec {
    /// A fixed selector.
    Fixed(TrafficSelector),
    /// strongSwan's `dynamic`: the address this side gets at run time (our
    /// outer address, a virtual IP, or one from an address pool), with this
    /// protocol and port range.
    Dynamic {
        /// IP protocol or 0 for any.
        proto: u8,
        /// First port.
        port_start: u16,
        /// Last port.
        port_end: u16,
    },
}

impl fmt::Display for TsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (proto, lo, hi) = match self {
            TsSpec::Fixed(ts) => {
                match range_as_prefix(ts.start, ts.end) {
                    Some(len) => write!(f, "{}/{len}", ts.start)?,
                    None => write!(f, "{}-{}", ts.start, ts.end)?,
                }
                (ts.proto, ts.port_start, ts.port_end)
            }
            TsSpec::Dynamic { proto, port_start, port_end } => {
                f.write_str("dynamic")?;
                (*proto, *port_start, *port_end)
            }
        };
        if proto == PROTO_ANY && (lo, hi) == (0, u16::MAX) {
            return Ok(());
        }
        write!(f, "[{}", proto_name(proto))?;
        if matches!(proto, 1 | 58) && (lo, hi) != (0, u16::MAX) && lo >> 8 == hi >> 8 {
            write!(f, "/{}", lo >> 8)?;
        } else if lo == hi {
            write!(f, "/{lo}")?;
        } else if (lo, hi) != (0, u16::MAX) {
            write!(f, "/{lo}-{hi}")?;
        }
        f.write_str("]")
    }
}

/// Parses an address, prefix or range into its inclusive bounds.
pub(crate) fn addr_range(s: &str) -> Result<(IpAddr, IpAddr), String> {
    let s = s.trim();
    let ip = |a: &str| -> Result<IpAddr, String> {
        a.trim().parse().map_err(|_| format!("`{}` is not an IPv4 or IPv6 address", a.trim()))
    };
    if let Some((a, len)) = s.split_once('/') {
        let addr = ip(a)?;
        let len: u8 = len.trim().parse().map_err(|_| format!("`{len}` is not a prefix length"))?;
        return prefix_bounds(addr, len).map_err(|_| {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            format!("prefix length /{len} is longer than {max} bits")
        });
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (ip(a)?, ip(b)?);
        let ((fa, va), (fb, vb)) = (to_u128(a), to_u128(b));
        if fa != fb {
            return Err(format!("range `{s}` mixes IPv4 and IPv6"));
        }
        if va > vb {
            return Err(format!("range `{s}` is inverted (start above end)"));
        }
        return Ok((a, b));
    }
    let a = ip(s)?;
    Ok((a, a))
}

/// Parses the `proto/ports` text inside brackets.
pub(crate) fn proto_ports(s: &str) -> Result<(u8, u16, u16), String> {
    let (p, ports) = match s.split_once('/') {
        Some((p, ports)) => (p.trim(), Some(ports.trim())),
        None => (s.trim(), None),
    };
    let proto = if p.is_empty() {
        PROTO_ANY
    } else {
        proto_by_name(p).ok_or_else(|| format!("unknown protocol `{p}`"))?
    };
    let Some(ports) = ports else { return Ok((proto, 0, u16::MAX)) };
    let (lo, hi) = port_range(ports)?;
    if (lo, hi) == (0, u16::MAX) {
        return Ok((proto, lo, hi));
    }
    if !proto_has_ports(proto) {
        return Err(format!("protocol `{}` has no ports", if proto == PROTO_ANY { "any" } else { p }));
    }
    if matches!(proto, 1 | 58) {
        if lo != hi || lo > 255 {
            return Err("for ICMP give one message type 0-255 (e.g. icmp/8)".to_string());
        }
        return Ok((proto, lo << 8, (lo << 8) | 0xff));
    }
    Ok((proto, lo, hi))
}

/// Parses one selector string.
pub fn parse_ts(s: &str) -> Result<TsSpec, String> {
    let s = s.trim();
    let (addr, bracket) = match s.split_once('[') {
        Some((a, rest)) => {
            let inner = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("`{s}`: missing `]` after the protocol/port part"))?;
            (a.trim(), Some(inner))
        }
        None => (s, None),
    };
    let (proto, port_start, port_end) = match bracket {
        Some(b) => proto_ports(b)?,
        None => (PROTO_ANY, 0, u16::MAX),
    };
    if addr.eq_ignore_ascii_case("dynamic") {
        return Ok(TsSpec::Dynamic { proto, port_start, port_end });
    }
    if addr.is_empty() {
        return Err("empty selector: write a prefix, range or address".to_string());
    }
    let (start, end) = addr_range(addr)?;
    let ts = TrafficSelector { start, end, proto, port_start, port_end };
    ts.validate().map_err(|e| e.to_string())?;
    Ok(TsSpec::Fixed(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fixed(s: &str) -> TrafficSelector {
        match parse_ts(s).unwrap() {
            TsSpec::Fixed(t) => t,
            d => panic!("expected fixed, got {d:?}"),
        }
    }

    #[test]
    fn prefixes_ranges_hosts() {
        let t = fixed("198.51.100.0/24");
        assert_eq!((t.start, t.end), (ip("198.51.100.0"), ip("198.51.100.255")));
        let t = fixed("2001:db8::/48");
        assert_eq!((t.start, t.end), (ip("2001:db8::"), ip("2001:db8:0:ffff:ffff:ffff:ffff:ffff")));
        let t = fixed("192.0.2.10-192.0.2.20");
        assert_eq!((t.start, t.end), (ip("192.0.2.10"), ip("192.0.2.20")));
        let t = fixed("203.0.113.7");
        assert_eq!((t.start, t.end), (ip("203.0.113.7"), ip("203.0.113.7")));
    }

    #[test]
    fn proto_and_ports() {
        let t = fixed("10.0.0.0/8[tcp/http]");
        assert_eq!((t.proto, t.port_start, t.port_end), (6, 80, 80));
        let t = fixed("203.0.113.0/24[tcp/1000-2000]");
        assert_eq!((t.proto, t.port_start, t.port_end), (6, 1000, 2000));
        let t = fixed("203.0.113.0/24[udp]");
        assert_eq!((t.proto, t.port_start, t.port_end), (17, 0, 65535));
        let t = fixed("203.0.113.0/24[icmp/8]");
        assert_eq!((t.proto, t.port_start, t.port_end), (1, 0x0800, 0x08ff));
        for s in [
            "10.0.0.0/8[tcp/80]",
            "192.0.2.10-192.0.2.20[udp/1000-2000]",
            "dynamic[udp/53]",
            "::/0[icmpv6/128]",
        ] {
            assert_eq!(parse_ts(s).unwrap().to_string(), s, "display round trip");
        }
        assert_eq!(
            parse_ts("dynamic[udp/53]").unwrap(),
            TsSpec::Dynamic { proto: 17, port_start: 53, port_end: 53 }
        );
    }

    #[test]
    fn errors() {
        assert!(parse_ts("198.51.100.9-2001:db8::1").unwrap_err().contains("mixes"));
        assert!(parse_ts("198.51.100.9-198.51.100.1").unwrap_err().contains("inverted"));
        assert!(parse_ts("198.51.100.0/33").unwrap_err().contains("longer"));
        assert!(parse_ts("198.51.100.0/24[gre/80]").unwrap_err().contains("no ports"));
        assert!(parse_ts("198.51.100.0/24[/80]").unwrap_err().contains("no ports"));
        assert!(parse_ts("198.51.100.0/24[tcp/90-80]").unwrap_err().contains("inverted"));
        assert!(parse_ts("198.51.100.0/24[tcp").unwrap_err().contains("]"));
        assert!(parse_ts("example.com").is_err());
        assert!(parse_ts("").is_err());
        assert!(parse_ts("[tcp]").is_err());
    }
}
