//! Validation of `[[static_sas]]` and `[[rules]]`.

use super::build::{Ctx, sp};
use super::error::suggest;
use super::model::*;
use super::raw::*;
use super::selector::addr_range;
use super::units::{NumOrStr, int_or_hex, port_range, proto_by_name};
use crate::crypto::{AeadAlg, KeyMaterial};
use crate::ts::TrafficSelector;
use core::ops::Range;
use std::collections::HashMap;
use std::net::IpAddr;
use toml::Spanned;

pub(crate) fn static_sas(c: &mut Ctx, raw: &[Spanned<RawStaticSa>], conns: &[Connection]) -> Vec<StaticSa> {
    let mut out = Vec::new();
    let mut spis: HashMap<(u32, String), Range<usize>> = HashMap::new();
    for (idx, rs) in raw.iter().enumerate() {
        let r = rs.get_ref();
        let mut seen: HashMap<String, Range<usize>> =
            c.targets.iter().map(|(k, (_, r))| (k.clone(), r.clone())).collect();
        if c.name(&r.name, "child/static SA", &mut seen) {
            c.targets.insert(r.name.get_ref().clone(), (Target::StaticSa(idx), sp(&r.name)));
        }
        let direction =
            c.choice(&r.direction, "direction", &[("in", Direction::In), ("out", Direction::Out)]);
        let spi = match int_or_hex(r.spi.get_ref()) {
            Ok(n) if (256..=u64::from(u32::MAX)).contains(&n) => Some(n as u32),
            Ok(n) => {
                c.d.err(
                    sp(&r.spi),
                    format!("SPI {n} is out of range"),
                    "SPIs 0-255 are reserved (RFC 4303 §2.1); use 256..=0xffffffff",
                );
                None
            }
            Err(e) => {
                c.d.err(sp(&r.spi), e, "write a number or a hex string like \"0x1000\"");
                None
            }
        };
        let names: Vec<(&str, AeadAlg)> = AeadAlg::ALL.iter().map(|a| (a.name(), *a)).collect();
        let alg =
            AeadAlg::from_name(r.alg.get_ref().trim()).or_else(|| c.choice(&r.alg, "algorithm", &names));
        let key = static_key(c, r, alg);
        let esn = r.esn.as_ref().is_some_and(|v| *v.get_ref());
        let local = c.ip(&r.local);
        let remote = c.ip(&r.remote);
        if let (Some(l), Some(rm)) = (local, remote)
            && l.is_ipv4() != rm.is_ipv4()
        {
            c.d.err(sp(&r.remote), "local and remote outer addresses mix IPv4 and IPv6", "use one family");
        }
        let encap_on = r.encap.as_ref().is_none_or(|v| *v.get_ref());
        let lp = c.int(&r.local_port, "local_port", (1, 65535), 4500) as u16;
        let rp = c.int(&r.remote_port, "remote_port", (1, 65535), 4500) as u16;
        if !encap_on && let Some(p) = r.local_port.as_ref().or(r.remote_port.as_ref()) {
            c.d.err(sp(p), "ports given but encap = false", "remove the ports, or set encap = true");
        }
        let encap = encap_on.then_some((lp, rp));
        let any = vec![TrafficSelector::any(false), TrafficSelector::any(true)];
        let mut local_ts = c.fixed_ts(&r.local_ts, "local_ts");
        let mut remote_ts = c.fixed_ts(&r.remote_ts, "remote_ts");
        if r.local_ts.is_empty() {
            local_ts = any.clone();
        }
        if r.remote_ts.is_empty() {
            remote_ts = any;
        }
        let replay_window = c.replay_window(&r.replay_window);
        let dscp = c.dscp(&r.dscp);
        if let (Some(Direction::In), Some(spi), Some(l)) = (direction, spi, local) {
            let k = (spi, l.to_string());
            if let Some(first) = spis.get(&k) {
                let (line, _) = super::error::line_col(c.d_text(), first.start);
                c.d.err(
                    sp(&r.spi),
                    format!("inbound SPI {spi:#x} on {l} is already used on line {line}"),
                    "each inbound SA needs its own SPI",
                );
            } else {
                spis.insert(k, sp(&r.spi));
            }
        }
        let via = static_via(c, r, direction, remote, conns);
        let keepalive = c.duration(&r.keepalive, "keepalive", 0);
        if let Some(k) = &r.keepalive
            && keepalive > 0
        {
            if direction == Some(Direction::In) {
                c.d.err(
                    sp(k),
                    "`keepalive` on an inbound static SA",
                    "put it on the outbound SA to the same peer (keepalives are sent, not received, per SA)",
                );
            } else if !encap_on {
                c.d.err(
                    sp(k),
                    "`keepalive` without UDP encapsulation",
                    "NAT keepalives are UDP datagrams (RFC 3948): set encap = true or remove keepalive",
                );
            }
        }
        if let (Some(direction), Some(spi), Some(alg), Some(key), Some(local), Some(remote)) =
            (direction, spi, alg, key, local, remote)
        {
            out.push(StaticSa {
                name: r.name.get_ref().clone(),
                direction,
                spi,
                alg,
                key,
                esn,
                local,
                remote,
                encap,
                local_ts,
                remote_ts,
                replay_window,
                dscp,
                via,
                keepalive,
            });
        }
    }
    out
}

/// `child` (+ `gateway`): the connection child and gateway an outbound
/// static SA keys.
fn static_via(
    c: &mut Ctx,
    r: &RawStaticSa,
    direction: Option<Direction>,
    remote: Option<IpAddr>,
    conns: &[Connection],
) -> Option<StaticVia> {
    let Some(ch) = &r.child else {
        if let Some(g) = &r.gateway {
            c.d.err(
                sp(g),
                "`gateway` without `child`",
                "name the child this SA keys with child = \"CONN/CHILD\"",
            );
        }
        return None;
    };
    if direction == Some(Direction::In) {
        c.d.err(
            sp(ch),
            "`child` on an inbound static SA",
            "only outbound SAs key a child's gateway; remove `child`",
        );
        return None;
    }
    let text = ch.get_ref().trim();
    let found = conns.iter().enumerate().find_map(|(ci, conn)| {
        conn.children
            .iter()
            .position(|x| text == x.name || text == format!("{}/{}", conn.name, x.name))
            .map(|k| (ci, k))
    });
    let Some((conn, child)) = found else {
        let names: Vec<String> = conns
            .iter()
            .flat_map(|cn| cn.children.iter().map(move |x| format!("{}/{}", cn.name, x.name)))
            .collect();
        let help = match suggest(text, names.iter().map(String::as_str)) {
            Some(s) => format!("did you mean \"{s}\"?"),
            None => "name a child of a [[connections]] entry as \"CONN/CHILD\"".to_string(),
        };
        c.d.err(sp(ch), format!("no child named \"{text}\""), help);
        return None;
    };
    let gws = &conns[conn].gateways;
    let gateway = match &r.gateway {
        Some(g) => match gws.iter().position(|x| x.name == *g.get_ref()) {
            Some(i) => i,
            None => {
                let names: Vec<&str> = gws.iter().map(|x| x.name.as_str()).collect();
                c.d.err(
                    sp(g),
                    format!("no gateway named \"{}\" in connection \"{}\"", g.get_ref(), conns[conn].name),
                    format!("use one of: {}", names.join(", ")),
                );
                return None;
            }
        },
        None if gws.len() == 1 => 0,
        None => {
            c.d.err(
                sp(ch),
                "the child's connection has several gateways",
                "say which one with gateway = \"NAME\"",
            );
            return None;
        }
    };
    if let Some(rm) = remote
        && gws[gateway].address != rm
    {
        c.d.err(
            sp(&r.remote),
            format!(
                "remote {rm} is not the address of gateway \"{}\" ({})",
                gws[gateway].name, gws[gateway].address
            ),
            "make `remote` the gateway's address",
        );
    }
    Some(StaticVia { conn, child, gateway })
}

fn static_key(c: &mut Ctx, r: &RawStaticSa, alg: Option<AeadAlg>) -> Option<StaticKey> {
    match (&r.key, &r.key_file) {
        (Some(k), Some(_)) => {
            c.d.err(sp(k), "both `key` and `key_file` given", "keep one");
            None
        }
        (None, None) => {
            c.d.err(sp(&r.name), "static SA has no key", "add key_file = \"...\" (hex), or an inline `key`");
            None
        }
        (None, Some(_)) => c.path(&r.key_file, "key_file").map(StaticKey::File),
        (Some(k), None) => {
            if !c.settings.allow_inline_secrets {
                c.d.err(
                    sp(k),
                    "inline `key` refused",
                    "use key_file, or set allow_inline_secrets = true in [settings]",
                );
                return None;
            }
            let bytes = match super::model::decode_hex_key(k.get_ref()) {
                Ok(b) => b,
                Err(e) => {
                    c.d.err(sp(k), e, "write the key as hex digits");
                    return None;
                }
            };
            let alg = alg?;
            match KeyMaterial::new(alg, &bytes) {
                Ok(m) => Some(StaticKey::Inline(m)),
                Err(_) => {
                    c.d.err(
                        sp(k),
                        format!("key is {} bytes; {alg} needs {}", bytes.len(), alg.keymat_len()),
                        format!(
                            "give {} hex digits: the {}-byte key then the 4-byte salt",
                            alg.keymat_len() * 2,
                            alg.key_len()
                        ),
                    );
                    None
                }
            }
        }
    }
}

fn addr_list(c: &mut Ctx, list: &[Spanned<String>], key: &str) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for v in list {
        if v.get_ref().contains('[') {
            c.d.err(
                sp(v),
                format!("{key}: no [proto/port] here"),
                "use the rule's proto, src_port and dst_port keys",
            );
            continue;
        }
        match addr_range(v.get_ref())
            .and_then(|(a, b)| TrafficSelector::range(a, b).map_err(|e| e.to_string()))
        {
            Ok(t) => out.push(t),
            Err(e) => c.d.err(sp(v), format!("{key}: {e}"), "write a prefix, range (a-b) or address"),
        }
    }
    if list.is_empty() {
        out = vec![TrafficSelector::any(false), TrafficSelector::any(true)];
    }
    out
}

fn port_key(c: &mut Ctx, v: &Option<Spanned<NumOrStr>>, key: &str, proto: Option<u8>) -> (u16, u16) {
    let Some(v) = v else { return (0, u16::MAX) };
    let parsed = match v.get_ref() {
        NumOrStr::Num(n) => {
            u16::try_from(*n).map(|p| (p, p)).map_err(|_| format!("port {n} is out of range"))
        }
        NumOrStr::Str(s) => port_range(s),
    };
    let range = match parsed {
        Ok(r) => r,
        Err(e) => {
            c.d.err(
                sp(v),
                format!("{key}: {e}"),
                "write a port (443), a service name (https) or a range \"1000-2000\"",
            );
            return (0, u16::MAX);
        }
    };
    if range != (0, u16::MAX) && !matches!(proto, Some(6 | 17 | 33 | 132 | 136)) {
        let what = match proto {
            None | Some(0) => "any protocol".to_string(),
            Some(p) => format!("protocol {}", super::units::proto_name(p)),
        };
        c.d.err(
            sp(v),
            format!("{key} on {what}, which has no ports"),
            "set proto = \"tcp\", \"udp\" or \"sctp\"",
        );
        return (0, u16::MAX);
    }
    range
}

pub(crate) fn rules(c: &mut Ctx, raw: &[Spanned<RawRule>], static_sas: &[StaticSa]) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    for (i, rr) in raw.iter().enumerate() {
        let r = rr.get_ref();
        let (line, _) = super::error::line_col(c.d_text(), sp(rr).start);
        let name = match &r.name {
            Some(n) => {
                c.name(n, "rule", &mut seen);
                n.get_ref().clone()
            }
            None => format!("#{}", i + 1),
        };
        #[derive(Clone, Copy)]
        enum A {
            P,
            B,
            D,
        }
        let kind = c.choice(&r.action, "action", &[("protect", A::P), ("bypass", A::B), ("drop", A::D)]);
        let action = match (kind, &r.child) {
            (Some(A::P), None) => {
                c.d.err(
                    sp(&r.action),
                    "protect rule without `child`",
                    "add child = \"<child or static SA name>\"",
                );
                None
            }
            (Some(A::P), Some(ch)) => target(c, ch, static_sas).map(RuleAction::Protect),
            (Some(_), Some(ch)) => {
                c.d.err(sp(ch), "`child` is only used with action = \"protect\"", "remove it");
                None
            }
            (Some(A::B), None) => Some(RuleAction::Bypass),
            (Some(A::D), None) => Some(RuleAction::Drop),
            (None, _) => None,
        };
        let src = addr_list(c, &r.src, "src");
        let dst = addr_list(c, &r.dst, "dst");
        let fam = |l: &[TrafficSelector]| (l.iter().any(|t| !t.is_v6()), l.iter().any(|t| t.is_v6()));
        let ((s4, s6), (d4, d6)) = (fam(&src), fam(&dst));
        if !(src.is_empty() || dst.is_empty() || s4 && d4 || s6 && d6) {
            let at = r.dst.first().map(sp).unwrap_or(sp(&r.action));
            c.d.err(
                at,
                "src and dst have no address family in common",
                "pair IPv4 with IPv4, IPv6 with IPv6",
            );
        }
        let proto = r.proto.as_ref().and_then(|v| {
            let p = match v.get_ref() {
                NumOrStr::Num(n) => u8::try_from(*n).ok(),
                NumOrStr::Str(s) => proto_by_name(s),
            };
            if p.is_none() {
                c.d.err(
                    sp(v),
                    "unknown protocol",
                    "write tcp, udp, icmp, icmpv6, sctp, gre, esp or a number 0-255",
                );
            }
            p.filter(|p| *p != 0)
        });
        let src_ports = port_key(c, &r.src_port, "src_port", proto);
        let dst_ports = port_key(c, &r.dst_port, "dst_port", proto);
        let dscp = r.dscp.as_ref().and_then(|v| {
            let list = match v.get_ref() {
                DscpList::One(n) => vec![*n],
                DscpList::Many(l) => l.clone(),
            };
            if list.is_empty() || list.iter().any(|d| !(0..=63).contains(d)) {
                c.d.err(sp(v), "invalid dscp", "give DSCP values 0..=63, e.g. dscp = 46 or dscp = [34, 46]");
                return None;
            }
            Some(list.iter().fold(0u64, |m, d| m | 1 << d))
        });
        if let Some(action) = action {
            out.push(PolicyRule { name, line, action, src, dst, proto, src_ports, dst_ports, dscp });
        }
    }
    out
}

fn target(c: &mut Ctx, ch: &Spanned<String>, static_sas: &[StaticSa]) -> Option<Target> {
    match c.targets.get(ch.get_ref()).map(|(t, _)| *t) {
        Some(Target::StaticSa(_)) => {
            let sa = static_sas.iter().find(|s| s.name == *ch.get_ref());
            if sa.is_some_and(|s| s.direction == Direction::In) {
                c.d.err(
                    sp(ch),
                    format!("static SA \"{}\" is inbound", ch.get_ref()),
                    "protect with an outbound SA",
                );
                return None;
            }
            sa.and_then(|s| static_sas.iter().position(|x| x.name == s.name)).map(Target::StaticSa)
        }
        Some(t) => Some(t),
        None => {
            let help = match super::error::suggest(ch.get_ref(), c.targets.keys().map(String::as_str)) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => "name a child of a connection or an outbound static SA".to_string(),
            };
            c.d.err(sp(ch), format!("no child or static SA named \"{}\"", ch.get_ref()), help);
            None
        }
    }
}
