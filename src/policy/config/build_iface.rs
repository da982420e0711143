//! The `[interface]` section: the TUN device and the workers that
//! `esptun run` brings up. Pure validation, like the rest of `build`.

use super::build::{Ctx, sp};
use super::model::{Cpus, Interface, IoChoice};
use super::raw::RawInterface;
use super::units::StrOrInts;
use std::net::IpAddr;
use toml::Spanned;

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

pub(crate) fn interface(c: &mut Ctx, raw: &Option<Spanned<RawInterface>>) -> Interface {
    let mut out = Interface::default();
    let Some(raw) = raw else { return out };
    let raw = raw.get_ref();
    if let Some(n) = &raw.name {
        let name = n.get_ref().trim();
        let ok = !name.is_empty()
            && name.len() <= IFNAME_MAX
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            out.name = name.to_string();
        } else {
            c.d.err(
                sp(n),
                format!("interface name `{name}` is not a valid device name"),
                "use 1 to 15 letters, digits, `-`, `_` or `.`, such as esptun0",
            );
        }
    }
    out.addresses = raw.addresses.iter().filter_map(|a| prefix(c, a, "addresses", true)).collect();
    if let Some(r) = &raw.routes {
        out.routes = Some(r.get_ref().iter().filter_map(|a| prefix(c, a, "routes", false)).collect());
    }
    out.path_mtu = c.int(&raw.path_mtu, "path_mtu", (576, 65535), 1500) as u16;
    if raw.mtu.is_some() {
        out.mtu = Some(c.int(&raw.mtu, "mtu", (576, 65535), 1400) as u16);
    }
    out.workers = c.int(&raw.workers, "workers", (0, 1024), 0) as usize;
    if let Some(v) = &raw.cpus {
        let parsed = match v.get_ref() {
            StrOrInts::Str(s) => s.parse::<Cpus>(),
            StrOrInts::Ints(l) => {
                let l: Result<Vec<usize>, String> = l
                    .iter()
                    .map(|&n| usize::try_from(n).map_err(|_| format!("`{n}` is not a CPU number")))
                    .collect();
                l.and_then(Cpus::list)
            }
        };
        match parsed {
            Ok(cpus) => out.cpus = cpus,
            Err(e) => c.d.err(
                sp(v),
                format!("cpus: {e}"),
                "write \"auto\" (worker i on the i-th CPU), \"none\" (no pinning), or CPUs such as [0, 2] or \"0-3\"",
            ),
        }
    }
    out.io = c.opt_choice(
        &raw.io,
        "io",
        &[
            ("auto", IoChoice::Auto),
            ("uring", IoChoice::Uring),
            ("io_uring", IoChoice::Uring),
            ("syscall", IoChoice::Syscall),
        ],
        IoChoice::Auto,
    );
    out.offloads = raw.offloads.as_ref().is_none_or(|v| *v.get_ref());
    if let Some(m) = &raw.metrics {
        let text = m.get_ref().trim();
        match text.parse::<std::net::SocketAddr>() {
            Ok(a) if a.port() != 0 => out.metrics = Some(a),
            _ => c.d.err(
                sp(m),
                format!("metrics: `{text}` is not an address and port to listen on"),
                "write ADDR:PORT such as 127.0.0.1:9720 or [::1]:9720 (port 1-65535), or leave the key out",
            ),
        }
    }
    out
}

/// `ADDR/LEN` (or a bare address = host prefix). `host_bits`: the address
/// may have bits set past the prefix (an interface address, not a route).
fn prefix(c: &mut Ctx, v: &Spanned<String>, key: &str, host_bits: bool) -> Option<(IpAddr, u8)> {
    let text = v.get_ref().trim();
    let (a, l) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let Ok(addr) = a.parse::<IpAddr>() else {
        c.d.err(
            sp(v),
            format!("{key}: `{text}` is not an address or prefix"),
            "write ADDR/LEN such as 198.51.100.1/24",
        );
        return None;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l.map(str::parse::<u8>) {
        None => max,
        Some(Ok(n)) if n <= max => n,
        Some(_) => {
            c.d.err(
                sp(v),
                format!("{key}: prefix length in `{text}` is not 0..={max}"),
                "fix the length after `/`",
            );
            return None;
        }
    };
    if !host_bits && !is_network(addr, len) {
        c.d.err(
            sp(v),
            format!("{key}: `{text}` has bits set past the prefix length"),
            "write the network address (for example 203.0.113.0/24)",
        );
        return None;
    }
    Some((addr, len))
}

/// Whether no bit past the first `len` is set.
fn is_network(addr: IpAddr, len: u8) -> bool {
    match addr {
        IpAddr::V4(a) => len >= 32 || u32::from(a) & (u32::MAX >> len) == 0,
        IpAddr::V6(a) => len >= 128 || u128::from(a) & (u128::MAX >> len) == 0,
    }
}
