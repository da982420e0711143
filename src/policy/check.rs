//! The readable report printed by `esptun check FILE`: the validated
//! configuration, the compiled SPD in match order, what goes into the
//! tunnel, and warnings (shadowed rules, notes from compilation).
//!
//! Secrets never appear: inline PSKs and keys print as `<redacted>`, file
//! and environment sources by name only.

use crate::policy::compile::{CompiledPolicy, compile};
use crate::policy::config::units::proto_name;
use crate::policy::config::{
    AuthMethod, Config, Connection, DefaultAction, Direction, FlowHashMode, OuterDscp, StartAction,
    StaticKey, Target,
};
use crate::policy::spd::{Action, RuleSelector};
use core::fmt::Write;

/// Seconds as the largest exact unit: `3600` -> `1h`, `90` -> `90s`.
pub fn fmt_secs(s: u64) -> String {
    match s {
        0 => "off".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A count with the largest exact binary suffix: `1073741824` -> `1G`.
pub fn fmt_size(n: u64) -> String {
    if n == 0 {
        return "-".into();
    }
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n % (1u64 << shift) == 0 {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

fn start(a: StartAction) -> &'static str {
    match a {
        StartAction::None => "none",
        StartAction::Trap => "trap",
        StartAction::Start => "start",
    }
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() { "-".into() } else { v.join(", ") }
}

fn target_name(cfg: &Config, t: Target) -> String {
    match t {
        Target::Child(c, i) => {
            let conn = cfg.connections.get(c);
            let child = conn.and_then(|x| x.children.get(i));
            format!("child {}/{}", conn.map_or("?", |x| &x.name), child.map_or("?", |x| &x.name))
        }
        Target::StaticSa(i) => format!("static SA {}", cfg.static_sas.get(i).map_or("?", |s| &s.name)),
    }
}

fn action(cfg: &Config, p: &CompiledPolicy, a: Action) -> String {
    match a {
        Action::Protect(id) => match p.target(id) {
            Some(t) => format!("protect via {}", target_name(cfg, t)),
            None => format!("protect via #{id}"),
        },
        Action::Bypass => "bypass".into(),
        Action::Drop => "drop".into(),
    }
}

fn selector(s: &RuleSelector) -> String {
    let mut out = format!("{} -> {}", s.src, s.dst);
    if let Some(p) = s.proto {
        let _ = write!(out, " {}", proto_name(p));
    }
    if !s.src_ports.is_any() {
        let _ = write!(out, " sport {}", s.src_ports);
    }
    if !s.dst_ports.is_any() {
        let _ = write!(out, " dport {}", s.dst_ports);
    }
    if !s.dscp.is_any() {
        let list: Vec<String> = (0..64u8).filter(|d| s.dscp.contains(*d)).map(|d| d.to_string()).collect();
        let _ = write!(out, " dscp {}", list.join(","));
    }
    out
}

fn connection(o: &mut String, cfg: &Config, c: &Connection) {
    let _ = writeln!(o, "connection \"{}\"", c.name);
    let method = |m: AuthMethod| if m == AuthMethod::Psk { "psk" } else { "pubkey" };
    let local_id = c.local.id.as_ref().map_or("(outer address)".to_string(), |i| i.to_string());
    let _ = write!(o, "  local:  {} as {local_id}", method(c.local.method));
    if let Some(s) = &c.local.psk {
        let _ = write!(o, ", psk {s}");
    }
    if let (Some(cert), Some(key)) = (&c.local.cert, &c.local.key) {
        let _ = write!(o, ", cert {}, key {}", cert.display(), key.display());
    }
    let _ = writeln!(o, ", addrs {}, port {}", join(&c.local_addrs), c.local_port);
    let _ = write!(o, "  remote: {} id {}", method(c.remote.method), c.remote.id);
    if let Some(s) = &c.remote.psk {
        let _ = write!(o, ", psk {s}");
    }
    if let Some(d) = &c.remote.ca_dir {
        let _ = write!(o, ", ca_dir {}", d.display());
    }
    if let Some(d) = &c.remote.cacert {
        let _ = write!(o, ", cacert {}", d.display());
    }
    let _ = writeln!(o);
    if c.gateways.is_empty() {
        let _ = writeln!(o, "  gateways: none (responder: peers connect to us)");
    } else {
        let total: u64 = c.gateways.iter().map(|g| u64::from(g.weight)).sum();
        let hash = if c.hash == FlowHashMode::Symmetric { "symmetric" } else { "5-tuple" };
        let _ = writeln!(o, "  gateways ({} hash, weighted rendezvous):", hash);
        for g in &c.gateways {
            let share = 100.0 * f64::from(g.weight) / total as f64;
            let _ = writeln!(o, "    {} {}:{} weight {} ({share:.1}%)", g.name, g.address, g.port, g.weight);
        }
    }
    let _ = writeln!(o, "  ike proposals: {}", join(&c.proposals));
    let _ = writeln!(
        o,
        "  ike rekey {} (rand {}), dpd delay {} timeout {}, keepalive {}, mtu {}",
        fmt_secs(c.rekey_time),
        fmt_secs(c.rand_time),
        fmt_secs(c.dpd_delay),
        fmt_secs(c.dpd_timeout),
        fmt_secs(c.keepalive),
        c.mtu.map_or("default".into(), |m| m.to_string())
    );
    if !c.vips.is_empty() || !c.pools.is_empty() {
        let _ = writeln!(o, "  virtual ips requested: {}; pools served: {}", join(&c.vips), join(&c.pools));
    }
    for ch in &c.children {
        let _ = writeln!(o, "  child \"{}\"", ch.name);
        let _ = writeln!(o, "    local_ts:  {}", join(&ch.local_ts));
        let _ = writeln!(o, "    remote_ts: {}", join(&ch.remote_ts));
        let _ = writeln!(o, "    esp proposals: {}", join(&ch.esp_proposals));
        let l = &ch.lifetime;
        let _ = writeln!(
            o,
            "    lifetime: rekey {} life {} rand {}; bytes rekey {} life {}; packets rekey {} life {}",
            fmt_secs(l.rekey_time),
            fmt_secs(l.life_time),
            fmt_secs(l.rand_time),
            fmt_size(l.rekey_bytes),
            fmt_size(l.life_bytes),
            fmt_size(l.rekey_packets),
            fmt_size(l.life_packets)
        );
        let dpd = format!("{:?}", ch.dpd_action).to_lowercase();
        let dscp = match ch.dscp {
            OuterDscp::Copy => "copy".to_string(),
            OuterDscp::Fixed(d) => d.to_string(),
        };
        let gw =
            ch.gateway.and_then(|i| c.gateways.get(i)).map_or("all (hashed)".to_string(), |g| g.name.clone());
        let _ = writeln!(
            o,
            "    start {}, close {}, dpd {dpd}, replay window {}, dscp {dscp}, mtu {}, gateway {gw}",
            start(ch.start_action),
            start(ch.close_action),
            ch.replay_window,
            ch.mtu.or(c.mtu).map_or("default".into(), |m| m.to_string())
        );
    }
    for p in &c.authorizer.profiles {
        let _ = writeln!(
            o,
            "  group \"{}\": peers matching {} may have children {}; local_ts {}; pool {}",
            p.name,
            join(&p.patterns),
            join(&p.children),
            if p.local_ts.is_empty() { "as the child".to_string() } else { join(&p.local_ts) },
            p.pool.as_deref().unwrap_or("-")
        );
    }
    if !c.authorizer.profiles.is_empty() {
        let _ = writeln!(o, "  peers matching no group are refused");
    }
    let _ = cfg;
}

/// Renders the report, or the SPD compile error.
pub fn render(cfg: &Config) -> Result<String, String> {
    let policy = compile(cfg);
    let spd = policy.to_spd().map_err(|e| format!("{}: the SPD could not be built: {e}", cfg.source))?;
    let mut o = String::new();
    let s = &cfg.settings;
    let _ = writeln!(o, "{}: OK", cfg.source);
    let _ = writeln!(
        o,
        "settings: unmatched traffic {}, backend {}, allow_weak {}, inline secrets {}",
        if s.default_action == DefaultAction::Bypass { "bypasses" } else { "is dropped" },
        s.backend,
        s.allow_weak,
        s.allow_inline_secrets
    );
    for p in &cfg.pools {
        let _ = writeln!(o, "pool \"{}\": {}; dns {}", p.name, join(&p.ranges), join(&p.dns));
    }
    for c in &cfg.connections {
        let _ = writeln!(o);
        connection(&mut o, cfg, c);
    }
    for sa in &cfg.static_sas {
        let key = match &sa.key {
            StaticKey::Inline(_) => "<redacted>".to_string(),
            StaticKey::File(p) => format!("from {}", p.display()),
        };
        let encap = sa.encap.map_or("plain ESP".to_string(), |(l, r)| format!("udp {l} -> {r}"));
        let dir = if sa.direction == Direction::In { "in" } else { "out" };
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "static SA \"{}\": {dir} spi {:#010x} {} key {key} esn {} {} -> {} ({encap})",
            sa.name, sa.spi, sa.alg, sa.esn, sa.local, sa.remote
        );
        let _ = writeln!(o, "  local_ts {}; remote_ts {}", join(&sa.local_ts), join(&sa.remote_ts));
        let _ = writeln!(o, "  replay window {}", sa.replay_window);
        if sa.keepalive > 0 {
            let _ = writeln!(o, "  NAT keepalive every {}s", sa.keepalive);
        }
        if let Some(v) = sa.via {
            let c = &cfg.connections[v.conn];
            let _ = writeln!(
                o,
                "  keys child {}/{} via gateway {}",
                c.name, c.children[v.child].name, c.gateways[v.gateway].name
            );
        }
    }
    let i = &cfg.interface;
    let pfx = |l: &[(std::net::IpAddr, u8)]| {
        l.iter().map(|(a, n)| format!("{a}/{n}")).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "interface \"{}\": addresses [{}], mtu {}, path_mtu {}, routes {}, workers {}, cpus {}, io {:?}, offloads {}, metrics {}",
        i.name,
        pfx(&i.addresses),
        i.mtu.map_or("auto".to_string(), |m| m.to_string()),
        i.path_mtu,
        i.routes.as_ref().map_or("auto (tunnel destinations)".to_string(), |r| format!("[{}]", pfx(r))),
        if i.workers == 0 { "one per core".to_string() } else { i.workers.to_string() },
        i.cpus,
        i.io,
        i.offloads,
        i.metrics.map_or("off".to_string(), |a| format!("http://{a}/metrics"))
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "SPD (outbound, first match wins):");
    for (i, e) in policy.entries.iter().enumerate() {
        let _ = writeln!(
            o,
            "  {:>3}. {}  => {}   [{}]",
            i + 1,
            selector(&e.rule.selector),
            action(cfg, &policy, e.rule.action),
            e.origin
        );
    }
    let _ = writeln!(o, "    *. anything else => {}", action(cfg, &policy, policy.default));
    let dests = policy.tunnel_destinations();
    let _ = writeln!(o, "tunnel destinations: {}", join(&dests));
    let warnings: Vec<String> = spd
        .shadowed()
        .into_iter()
        .filter_map(|(j, by)| {
            let (ej, eb) = (policy.entries.get(j)?, policy.entries.get(by)?);
            Some(format!(
                "entry {} ({}) never matches: entry {} ({}) before it covers it — reorder or remove it",
                j + 1,
                ej.origin,
                by + 1,
                eb.origin
            ))
        })
        .collect();
    for w in &warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    for n in &policy.notes {
        let _ = writeln!(o, "note: {n}");
    }
    Ok(o)
}

/// PSK sources that cannot be read now (unset environment variable,
/// missing or empty file), one line each. Reads the environment and files
/// (the rest of the report is a pure function of the text); the secrets
/// themselves are dropped at once (zeroized) and never shown.
pub fn secret_warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for c in &cfg.connections {
        for (side, secret) in [("local", &c.local.psk), ("remote", &c.remote.psk)] {
            if let Some(s) = secret
                && let Err(e) = s.resolve()
            {
                out.push(format!(
                    "connection \"{}\": {side} psk ({s}): {e} — the connection cannot authenticate until it can be read",
                    c.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(fmt_secs(3600), "1h");
        assert_eq!(fmt_secs(1980), "33m");
        assert_eq!(fmt_secs(90), "90s");
        assert_eq!(fmt_secs(0), "off");
        assert_eq!(fmt_size(1 << 30), "1G");
        assert_eq!(fmt_size(1500), "1500");
        assert_eq!(fmt_size(0), "-");
    }
}
