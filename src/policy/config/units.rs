//! Value syntaxes shared by many keys: durations (`"30m"`), sizes (`"1G"`),
//! port ranges (`"1000-2000"`), numbers written as hex strings (`"0x1000"`),
//! and the protocol and service names of traffic selectors.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// A TOML value that may be written either as an integer or as a string
/// (`rekey_time = 3600` or `rekey_time = "1h"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NumOrStr {
    /// A bare integer.
    Num(i64),
    /// A string, parsed later by the key's own grammar.
    Str(String),
}

impl<'de> serde::Deserialize<'de> for NumOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumOrStr, E> {
                i64::try_from(v).map(NumOrStr::Num).map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A TOML value that may be a string or a list of integers
/// (`cpus = "0-3"` or `cpus = [0, 1, 2, 3]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StrOrInts {
    /// A string, parsed later by the key's own grammar.
    Str(String),
    /// A list of integers.
    Ints(Vec<i64>),
}

impl<'de> serde::Deserialize<'de> for StrOrInts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrInts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of integers")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInts, E> {
                Ok(StrOrInts::Str(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrOrInts, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<i64>()? {
                    out.push(n);
                }
                Ok(StrOrInts::Ints(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a duration in seconds: `3600`, `"3600s"`, `"30m"`, `"1h"`, `"2d"`
/// (one number, one optional unit, as in strongSwan).
pub(crate) fn duration_secs(v: &NumOrStr) -> Result<u64, String> {
    match v {
        NumOrStr::Num(n) => u64::try_from(*n).map_err(|_| "a duration cannot be negative".to_string()),
        NumOrStr::Str(s) => {
            let s = s.trim();
            let (num, unit) = split_unit(s);
            let mult = match unit {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(format!("unknown time unit `{unit}` in \"{s}\"")),
            };
            let n: u64 = num.parse().map_err(|_| format!("\"{s}\" is not a duration"))?;
            n.checked_mul(mult).ok_or_else(|| format!("\"{s}\" is too long"))
        }
    }
}

/// Parses a count with an optional binary suffix: `1000`, `"500K"`,
/// `"500M"`, `"1G"`, `"2T"` (K = 1024, as strongSwan does).
pub(crate) fn size(v: &NumOrStr) -> Result<u64, String> {
    match v {
        NumOrStr::Num(n) => u64::try_from(*n).map_err(|_| "a size cannot be negative".to_string()),
        NumOrStr::Str(s) => {
            let s = s.trim();
            let (num, unit) = split_unit(s);
            let shift = match unit.to_ascii_uppercase().as_str() {
                "" => 0,
                "K" => 10,
                "M" => 20,
                "G" => 30,
                "T" => 40,
                _ => return Err(format!("unknown size suffix `{unit}` in \"{s}\"")),
            };
            let n: u64 = num.parse().map_err(|_| format!("\"{s}\" is not a size"))?;
            n.checked_mul(1u64 << shift).ok_or_else(|| format!("\"{s}\" is too large"))
        }
    }
}

/// Splits `"30m"` into `("30", "m")`.
fn split_unit(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

/// Parses an unsigned integer written as a number, a decimal string or a
/// `0x` hex string (SPIs).
pub(crate) fn int_or_hex(v: &NumOrStr) -> Result<u64, String> {
    match v {
        NumOrStr::Num(n) => u64::try_from(*n).map_err(|_| "must not be negative".to_string()),
        NumOrStr::Str(s) => {
            let t = s.trim();
            let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => t.parse(),
            };
            parsed.map_err(|_| format!("\"{s}\" is not a number (write 4096 or \"0x1000\")"))
        }
    }
}

/// IP protocol numbers by name (IANA "Assigned Internet Protocol Numbers").
pub(crate) fn proto_by_name(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "any" | "%any" => 0,
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "dccp" => 33,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" | "icmp6" => 58,
        "sctp" => 132,
        "udplite" => 136,
        n => return n.parse().ok(),
    })
}

/// A short name for a protocol number, for printing.
pub fn proto_name(p: u8) -> String {
    match p {
        0 => "any".into(),
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        33 => "dccp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        n => n.to_string(),
    }
}

/// True for protocols whose selectors may carry ports: those with 16-bit
/// ports, and ICMP/ICMPv6 whose type and code RFC 7296 §3.13.1 carries in
/// the port field.
pub(crate) fn proto_has_ports(p: u8) -> bool {
    matches!(p, 1 | 6 | 17 | 33 | 58 | 132 | 136)
}

/// Well-known service names accepted in place of a port number.
pub(crate) fn port_by_name(name: &str) -> Option<u16> {
    Some(match name.to_ascii_lowercase().as_str() {
        "ssh" => 22,
        "smtp" => 25,
        "domain" | "dns" => 53,
        "http" => 80,
        "ntp" => 123,
        "snmp" => 161,
        "https" => 443,
        "isakmp" => 500,
        "ipsec-nat-t" => 4500,
        n => return n.parse().ok(),
    })
}

/// Parses `"443"`, `"https"`, `"1000-2000"` or `"%any"` into an inclusive
/// range.
pub(crate) fn port_range(s: &str) -> Result<(u16, u16), String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("%any") || s.eq_ignore_ascii_case("any") {
        return Ok((0, u16::MAX));
    }
    let one = |p: &str| {
        port_by_name(p.trim())
            .ok_or_else(|| format!("`{}` is not a port number (0-65535) or service name", p.trim()))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let p = one(s)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!("port range {lo}-{hi} is inverted"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> NumOrStr {
        NumOrStr::Str(v.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(duration_secs(&s("1h")), Ok(3600));
        assert_eq!(duration_secs(&s("30m")), Ok(1800));
        assert_eq!(duration_secs(&s("3600s")), Ok(3600));
        assert_eq!(duration_secs(&s("2d")), Ok(172_800));
        assert_eq!(duration_secs(&NumOrStr::Num(90)), Ok(90));
        assert!(duration_secs(&s("1w")).is_err());
        assert!(duration_secs(&s("h")).is_err());
        assert!(duration_secs(&NumOrStr::Num(-1)).is_err());
        assert!(duration_secs(&s("99999999999999999999d")).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size(&s("1G")), Ok(1 << 30));
        assert_eq!(size(&s("500M")), Ok(500 * 1024 * 1024));
        assert_eq!(size(&s("10k")), Ok(10_240));
        assert_eq!(size(&s("77")), Ok(77));
        assert!(size(&s("1X")).is_err());
        assert!(size(&s("99999999999T")).is_err());
    }

    #[test]
    fn numbers_and_ports() {
        assert_eq!(int_or_hex(&s("0x1000")), Ok(4096));
        assert_eq!(int_or_hex(&s("4096")), Ok(4096));
        assert!(int_or_hex(&s("0xzz")).is_err());
        assert_eq!(port_range("https"), Ok((443, 443)));
        assert_eq!(port_range("1000-2000"), Ok((1000, 2000)));
        assert_eq!(port_range("%any"), Ok((0, 65535)));
        assert!(port_range("2000-1000").is_err());
        assert!(port_range("70000").is_err());
        assert_eq!(proto_by_name("TCP"), Some(6));
        assert_eq!(proto_by_name("253"), Some(253));
        assert_eq!(proto_by_name("bogus"), None);
        assert!(!proto_has_ports(47));
    }
}
