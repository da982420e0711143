//! Routes into the TUN device: the destinations the policy protects, as
//! CIDR prefixes, installed with `ip route replace` and, when a reload
//! drops them, removed with `ip route del` (iproute2). Pure helpers plus
//! the command runners.

use crate::policy::spd::AddrRange;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

/// The smallest list of prefixes covering exactly `r` (an address range of
/// any shape); `Any` gives both default routes.
pub fn range_to_prefixes(r: &AddrRange) -> Vec<(IpAddr, u8)> {
    match *r {
        AddrRange::Any => vec![(Ipv4Addr::UNSPECIFIED.into(), 0), (Ipv6Addr::UNSPECIFIED.into(), 0)],
        AddrRange::V4 { start, end } => split(u128::from(start), u128::from(end), 32)
            .map(|(a, l)| (Ipv4Addr::from(a as u32).into(), l))
            .collect(),
        AddrRange::V6 { start, end } => {
            split(start, end, 128).map(|(a, l)| (Ipv6Addr::from(a).into(), l)).collect()
        }
    }
}

/// Aligned blocks covering `start..=end` in a `bits`-wide space.
fn split(mut start: u128, end: u128, bits: u8) -> impl Iterator<Item = (u128, u8)> {
    let mut done = start > end;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        // Largest block aligned at `start` that stays within `end`.
        let mut size_log =
            if start == 0 { u32::from(bits) } else { start.trailing_zeros().min(u32::from(bits)) };
        while size_log > 0 && block_end(start, size_log).is_none_or(|e| e > end) {
            size_log -= 1;
        }
        let item = (start, bits - size_log as u8);
        match block_end(start, size_log).and_then(|e| e.checked_add(1)) {
            Some(next) if next <= end && (bits == 128 || next < (1u128 << bits)) => start = next,
            _ => done = true,
        }
        Some(item)
    })
}

fn block_end(start: u128, size_log: u32) -> Option<u128> {
    if size_log >= 128 {
        return (start == 0).then_some(u128::MAX);
    }
    start.checked_add((1u128 << size_log) - 1)
}

/// Runs `ip route replace PREFIX dev DEV` for each prefix.
pub fn install(dev: &str, prefixes: &[(IpAddr, u8)]) -> Result<(), String> {
    ip_route("replace", dev, prefixes)
}

/// Runs `ip route del PREFIX dev DEV` for each prefix; a route that is
/// already gone is not an error.
pub fn remove(dev: &str, prefixes: &[(IpAddr, u8)]) -> Result<(), String> {
    ip_route("del", dev, prefixes)
}

/// `ip -4|-6 route VERB PREFIX dev DEV` for each prefix. For `del`, ESRCH
/// ("RTNETLINK answers: No such process": the route is already gone) is
/// success.
fn ip_route(verb: &str, dev: &str, prefixes: &[(IpAddr, u8)]) -> Result<(), String> {
    for (a, l) in prefixes {
        let p = format!("{a}/{l}");
        let fam = if a.is_ipv4() { "-4" } else { "-6" };
        let out = Command::new("ip")
            .args([fam, "route", verb, &p, "dev", dev])
            .output()
            .map_err(|e| format!("cannot run `ip` (iproute2) for `ip route {verb} {p}`: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        let already_gone = verb == "del" && err.contains("No such process");
        if !out.status.success() && !already_gone {
            return Err(format!("ip route {verb} {p} dev {dev}: {}", err.trim()));
        }
    }
    Ok(())
}

/// Routes of `old` that `new` no longer has.
pub fn gone(old: &[(IpAddr, u8)], new: &[(IpAddr, u8)]) -> Vec<(IpAddr, u8)> {
    old.iter().filter(|r| !new.contains(r)).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: &str, b: &str) -> Vec<String> {
        let r = AddrRange::range(a.parse().unwrap(), b.parse().unwrap()).unwrap();
        range_to_prefixes(&r).iter().map(|(a, l)| format!("{a}/{l}")).collect()
    }

    #[test]
    fn ranges_become_minimal_prefix_lists() {
        assert_eq!(v4("203.0.113.0", "203.0.113.255"), ["203.0.113.0/24"]);
        assert_eq!(v4("203.0.113.1", "203.0.113.1"), ["203.0.113.1/32"]);
        assert_eq!(
            v4("203.0.113.1", "203.0.113.6"),
            ["203.0.113.1/32", "203.0.113.2/31", "203.0.113.4/31", "203.0.113.6/32"]
        );
        assert_eq!(v4("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(v4("255.255.255.254", "255.255.255.255"), ["255.255.255.254/31"]);
        let r = AddrRange::range("2001:db8::".parse().unwrap(), "2001:db8::ffff".parse().unwrap()).unwrap();
        assert_eq!(range_to_prefixes(&r), vec![("2001:db8::".parse().unwrap(), 112)]);
        let all6 = AddrRange::all_of(true);
        assert_eq!(range_to_prefixes(&all6), vec![("::".parse().unwrap(), 0)]);
        assert_eq!(range_to_prefixes(&AddrRange::Any).len(), 2);
    }

    #[test]
    fn gone_lists_only_dropped_routes() {
        let r = |s: &str| -> (IpAddr, u8) {
            let (a, l) = s.split_once('/').unwrap();
            (a.parse().unwrap(), l.parse().unwrap())
        };
        let old = [r("203.0.113.0/25"), r("203.0.113.128/25"), r("2001:db8:2::/64")];
        let new = [r("203.0.113.0/25"), r("2001:db8:3::/64")];
        assert_eq!(gone(&old, &new), vec![r("203.0.113.128/25"), r("2001:db8:2::/64")]);
        assert!(gone(&new, &new).is_empty());
    }
}
