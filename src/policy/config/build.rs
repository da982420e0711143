//! From the raw TOML structs to the validated model: every check that
//! needs more than a TOML type, each error pinned to the offending value.
//! Errors are collected (not stopped at the first) so one run shows them
//! all. The static SA and rule sections live in `build_rules`.

use super::error::{Diag, suggest};
use super::model::*;
use super::proposal::{DEFAULT_ESP, DEFAULT_IKE, parse_esp, parse_ike};
use super::raw::*;
use super::selector::{TsSpec, parse_ts};
use super::units::{NumOrStr, duration_secs, size};
use crate::crypto::Backend;
use crate::policy::identity::{Authorizer, IdPattern, Identity, Profile};
use crate::ts::TrafficSelector;
use core::ops::Range;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use toml::Spanned;
use zeroize::Zeroizing;

/// Default CHILD SA anti-replay window (packets).
pub const DEFAULT_REPLAY_WINDOW: u32 = 1024;
/// Smallest accepted anti-replay window.
pub const MIN_REPLAY_WINDOW: u32 = 32;
/// Largest anti-replay window the ESP layer supports.
pub const MAX_REPLAY_WINDOW: u32 = 8192;

pub(crate) fn sp<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// Validation context: the diagnostics sink plus the global switches.
pub(crate) struct Ctx<'a> {
    pub d: Diag<'a>,
    pub settings: Settings,
    /// Names rules may refer to: children and static SAs share one
    /// namespace, with where each was defined.
    pub targets: HashMap<String, (Target, Range<usize>)>,
    pub pool_names: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(d: Diag<'a>) -> Self {
        Ctx { d, settings: Settings::default(), targets: HashMap::new(), pool_names: Vec::new() }
    }

    /// Picks one of `options` by name, with a suggestion on a typo.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = v.get_ref().trim();
        if let Some((_, t)) = options.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Some(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let help = match suggest(s, names.iter().copied()) {
            Some(x) => format!("did you mean \"{x}\"? (one of: {})", names.join(", ")),
            None => format!("use one of: {}", names.join(", ")),
        };
        self.d.err(sp(v), format!("unknown {key} \"{s}\""), help);
        None
    }

    pub(crate) fn opt_choice<T: Copy>(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        v.as_ref().and_then(|v| self.choice(v, key, options)).unwrap_or(default)
    }

    pub(crate) fn ip(&mut self, v: &Spanned<String>) -> Option<IpAddr> {
        match v.get_ref().trim().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.d.err(
                    sp(v),
                    format!("`{}` is not an IP address", v.get_ref()),
                    "write an IPv4 or IPv6 address such as 192.0.2.1 or 2001:db8::1",
                );
                None
            }
        }
    }

    /// An integer key within `range`, or `default` when absent.
    pub(crate) fn int(
        &mut self,
        v: &Option<Spanned<i64>>,
        key: &str,
        range: (i64, i64),
        default: i64,
    ) -> i64 {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if n < range.0 || n > range.1 {
            self.d.err(
                sp(v),
                format!("{key} = {n} is out of range"),
                format!("use {}..={}", range.0, range.1),
            );
            return default;
        }
        n
    }

    pub(crate) fn duration(&mut self, v: &Option<Spanned<NumOrStr>>, key: &str, default: u64) -> u64 {
        let Some(v) = v else { return default };
        match duration_secs(v.get_ref()) {
            Ok(n) => n,
            Err(e) => {
                self.d.err(
                    sp(v),
                    format!("{key}: {e}"),
                    "write seconds, or a number with s, m, h or d: \"30m\"",
                );
                default
            }
        }
    }

    pub(crate) fn size(&mut self, v: &Option<Spanned<NumOrStr>>, key: &str, default: u64) -> u64 {
        let Some(v) = v else { return default };
        match size(v.get_ref()) {
            Ok(n) => n,
            Err(e) => {
                self.d.err(
                    sp(v),
                    format!("{key}: {e}"),
                    "write a number, optionally with K, M, G or T: \"1G\"",
                );
                default
            }
        }
    }

    pub(crate) fn path(&mut self, v: &Option<Spanned<String>>, key: &str) -> Option<PathBuf> {
        let v = v.as_ref()?;
        if v.get_ref().trim().is_empty() {
            self.d.err(sp(v), format!("{key} is empty"), "give a file or directory path");
            return None;
        }
        Some(PathBuf::from(v.get_ref()))
    }

    /// Checks a name's syntax and uniqueness within `seen`.
    pub(crate) fn name(
        &mut self,
        v: &Spanned<String>,
        what: &str,
        seen: &mut HashMap<String, Range<usize>>,
    ) -> bool {
        let n = v.get_ref();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            self.d.err(
                sp(v),
                format!("invalid {what} name \"{n}\""),
                "use letters, digits, `-`, `_` and `.` only",
            );
            return false;
        }
        if let Some(first) = seen.get(n) {
            let (line, _) = super::error::line_col(self.d_text(), first.start);
            self.d.err(
                sp(v),
                format!("duplicate {what} name \"{n}\" (first defined on line {line})"),
                "give each one a different name",
            );
            return false;
        }
        seen.insert(n.clone(), sp(v));
        true
    }

    pub(crate) fn d_text(&self) -> &'a str {
        self.d.text()
    }

    pub(crate) fn dscp(&mut self, v: &Option<Spanned<NumOrStr>>) -> OuterDscp {
        match v.as_ref().map(|v| (v, v.get_ref())) {
            None => OuterDscp::Copy,
            Some((_, NumOrStr::Str(s))) if s.eq_ignore_ascii_case("copy") => OuterDscp::Copy,
            Some((_, NumOrStr::Num(n))) if (0..=63).contains(n) => OuterDscp::Fixed(*n as u8),
            Some((v, _)) => {
                self.d.err(sp(v), "invalid dscp", "write \"copy\" or a DSCP value 0..=63");
                OuterDscp::Copy
            }
        }
    }

    pub(crate) fn replay_window(&mut self, v: &Option<Spanned<i64>>) -> u32 {
        let r = (i64::from(MIN_REPLAY_WINDOW), i64::from(MAX_REPLAY_WINDOW));
        self.int(v, "replay_window", r, i64::from(DEFAULT_REPLAY_WINDOW)) as u32
    }

    /// Parses a selector list; `dynamic` only where allowed.
    pub(crate) fn ts_list(
        &mut self,
        list: &[Spanned<String>],
        key: &str,
        allow_dynamic: bool,
    ) -> Vec<TsSpec> {
        let mut out = Vec::new();
        for v in list {
            match parse_ts(v.get_ref()) {
                Ok(TsSpec::Dynamic { .. }) if !allow_dynamic => self.d.err(
                    sp(v),
                    format!("`dynamic` is not allowed in {key} here"),
                    "give a fixed prefix, range or address",
                ),
                Ok(t) => out.push(t),
                Err(e) => self.d.err(
                    sp(v),
                    format!("{key}: {e}"),
                    "write a prefix (198.51.100.0/24), range (192.0.2.10-192.0.2.20) or address, \
                     optionally with [proto/port]",
                ),
            }
        }
        out
    }

    /// Fixed selectors only.
    pub(crate) fn fixed_ts(&mut self, list: &[Spanned<String>], key: &str) -> Vec<TrafficSelector> {
        self.ts_list(list, key, false)
            .into_iter()
            .filter_map(|t| match t {
                TsSpec::Fixed(t) => Some(t),
                TsSpec::Dynamic { .. } => None,
            })
            .collect()
    }
}

/// Families (v4, v6) a selector list can match; `dynamic` matches both.
pub(crate) fn families(list: &[TsSpec]) -> (bool, bool) {
    list.iter().fold((false, false), |(v4, v6), t| match t {
        TsSpec::Fixed(ts) => (v4 || !ts.is_v6(), v6 || ts.is_v6()),
        TsSpec::Dynamic { .. } => (true, true),
    })
}

pub(crate) fn settings(c: &mut Ctx, raw: &Option<Spanned<RawSettings>>) {
    let Some(raw) = raw else { return };
    let raw = raw.get_ref();
    let default_action = c.opt_choice(
        &raw.default_action,
        "default_action",
        &[("drop", DefaultAction::Drop), ("bypass", DefaultAction::Bypass)],
        DefaultAction::Drop,
    );
    let mut s = Settings {
        allow_weak: raw.allow_weak.as_ref().is_some_and(|v| *v.get_ref()),
        allow_inline_secrets: raw.allow_inline_secrets.as_ref().is_some_and(|v| *v.get_ref()),
        default_action,
        ..Settings::default()
    };
    if let Some(b) = &raw.backend {
        let opts: Vec<(&str, Backend)> = Backend::ALL.iter().map(|b| (b.name(), *b)).collect();
        s.backend = c.choice(b, "backend", &opts).unwrap_or_default();
    }
    c.settings = s;
}

pub(crate) fn pools(c: &mut Ctx, raw: &[Spanned<RawPool>]) -> Vec<Pool> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for p in raw {
        let p = p.get_ref();
        c.name(&p.name, "pool", &mut seen);
        if p.addrs.get_ref().is_empty() {
            c.d.err(
                sp(&p.addrs),
                "pool has no addresses",
                "add a prefix or range, e.g. \"198.51.100.64/26\"",
            );
        }
        let ranges = c.fixed_ts(p.addrs.get_ref(), "addrs");
        for (v, t) in p.addrs.get_ref().iter().zip(&ranges) {
            if t.proto != 0 || t.port_start != 0 || t.port_end != u16::MAX {
                c.d.err(sp(v), "a pool holds addresses only", "remove the [proto/port] part");
            }
        }
        let dns = p.dns.iter().filter_map(|v| c.ip(v)).collect();
        c.pool_names.push(p.name.get_ref().clone());
        out.push(Pool { name: p.name.get_ref().clone(), ranges, dns });
    }
    out
}

fn pool_ref(c: &mut Ctx, v: &Spanned<String>) -> bool {
    if c.pool_names.iter().any(|n| n == v.get_ref()) {
        return true;
    }
    let help = match suggest(v.get_ref(), c.pool_names.iter().map(String::as_str)) {
        Some(s) => format!("did you mean \"{s}\"? Pools are defined in [[pools]]"),
        None => "define it in a [[pools]] table, or fix the name".to_string(),
    };
    c.d.err(sp(v), format!("no pool named \"{}\"", v.get_ref()), help);
    false
}

fn secret(c: &mut Ctx, a: &RawAuth) -> Option<Secret> {
    let given: Vec<&Spanned<String>> = [&a.psk, &a.psk_file, &a.psk_env].into_iter().flatten().collect();
    if given.len() > 1 {
        c.d.err(sp(given[1]), "more than one PSK source", "keep one of psk, psk_file, psk_env");
    }
    if let Some(v) = &a.psk {
        if !c.settings.allow_inline_secrets {
            c.d.err(
                sp(v),
                "inline `psk` refused",
                "use psk_file or psk_env, or set allow_inline_secrets = true in [settings]",
            );
        } else if v.get_ref().len() < 16 {
            c.d.err(sp(v), "PSK shorter than 16 characters", "use a long random secret");
        }
        return Some(Secret::Inline(Zeroizing::new(v.get_ref().clone())));
    }
    if let Some(p) = c.path(&a.psk_file, "psk_file") {
        return Some(Secret::File(p));
    }
    if let Some(v) = &a.psk_env {
        let n = v.get_ref();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            c.d.err(sp(v), format!("`{n}` is not an environment variable name"), "use letters, digits and _");
        }
        return Some(Secret::Env(n.clone()));
    }
    None
}

const AUTH: &[(&str, AuthMethod)] = &[("psk", AuthMethod::Psk), ("pubkey", AuthMethod::Pubkey)];

fn not_with(c: &mut Ctx, v: &Option<Spanned<String>>, key: &str, method: &str) {
    if let Some(v) = v {
        c.d.err(
            sp(v),
            format!("`{key}` is not used with auth = \"{method}\""),
            "remove it, or change `auth`",
        );
    }
}

fn local_auth(c: &mut Ctx, a: &Spanned<RawAuth>) -> LocalAuth {
    let r = a.get_ref();
    let method = c.choice(&r.auth, "auth method", AUTH).unwrap_or(AuthMethod::Psk);
    let id = r.id.as_ref().and_then(|v| match Identity::parse(v.get_ref()) {
        Ok(i) => Some(i),
        Err(e) => {
            c.d.err(sp(v), format!("local id: {e}"), "write an FQDN, email, DN (CN=...) or address");
            None
        }
    });
    let psk = secret(c, r);
    not_with(c, &r.ca_dir, "ca_dir", "local side");
    not_with(c, &r.cacert, "cacert", "local side");
    let cert = c.path(&r.cert, "cert");
    let key = c.path(&r.key, "key");
    match method {
        AuthMethod::Pubkey => {
            if cert.is_none() || key.is_none() {
                c.d.err(
                    sp(&r.auth),
                    "pubkey auth needs `cert` and `key`",
                    "add cert = \"...\" and key = \"...\"",
                );
            }
        }
        AuthMethod::Psk => {
            not_with(c, &r.cert, "cert", "psk");
            not_with(c, &r.key, "key", "psk");
        }
    }
    LocalAuth { method, id, psk, cert, key }
}

fn remote_auth(c: &mut Ctx, a: &Spanned<RawAuth>, local_psk: bool) -> RemoteAuth {
    let r = a.get_ref();
    let method = c.choice(&r.auth, "auth method", AUTH).unwrap_or(AuthMethod::Psk);
    let id = match &r.id {
        None => IdPattern::Any,
        Some(v) => IdPattern::parse(v.get_ref()).unwrap_or_else(|e| {
            c.d.err(sp(v), format!("remote id: {e}"), "write an identity or pattern (*.example.com, OU=eng)");
            IdPattern::Any
        }),
    };
    let psk = secret(c, r);
    not_with(c, &r.cert, "cert", "remote side");
    not_with(c, &r.key, "key", "remote side");
    let ca_dir = c.path(&r.ca_dir, "ca_dir");
    let cacert = c.path(&r.cacert, "cacert");
    match method {
        AuthMethod::Psk => {
            if psk.is_none() && !local_psk {
                c.d.err(
                    sp(&r.auth),
                    "psk auth but no PSK given",
                    "add psk_file or psk_env to [connections.local]",
                );
            }
            not_with(c, &r.ca_dir, "ca_dir", "psk");
            not_with(c, &r.cacert, "cacert", "psk");
        }
        AuthMethod::Pubkey => {
            if ca_dir.is_none() && cacert.is_none() {
                c.d.err(
                    sp(&r.auth),
                    "pubkey auth needs a trust anchor",
                    "add ca_dir = \"...\" or cacert = \"...\"",
                );
            }
        }
    }
    RemoteAuth { method, id, psk, ca_dir, cacert }
}

fn gateways(c: &mut Ctx, raw: &[Spanned<RawGateway>]) -> Vec<Gateway> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (i, g) in raw.iter().enumerate() {
        let g = g.get_ref();
        let name = match &g.name {
            Some(n) => {
                c.name(n, "gateway", &mut seen);
                n.get_ref().clone()
            }
            None => format!("gw{}", i + 1),
        };
        let port = c.int(&g.port, "port", (1, 65535), 500) as u16;
        let weight = c.int(&g.weight, "weight", (1, i64::from(u32::MAX)), 1) as u32;
        if let Some(address) = c.ip(&g.address) {
            out.push(Gateway { name, address, port, weight });
        }
    }
    out
}

const START: &[(&str, StartAction)] =
    &[("none", StartAction::None), ("trap", StartAction::Trap), ("start", StartAction::Start)];

fn lifetime(c: &mut Ctx, ch: &RawChild) -> ChildLifetime {
    let rekey_time = c.duration(&ch.rekey_time, "rekey_time", 3600);
    let life_time = c.duration(&ch.life_time, "life_time", rekey_time + rekey_time / 10);
    let rand_time = c.duration(&ch.rand_time, "rand_time", life_time.saturating_sub(rekey_time));
    let rekey_bytes = c.size(&ch.rekey_bytes, "rekey_bytes", 0);
    let life_bytes = c.size(&ch.life_bytes, "life_bytes", rekey_bytes.saturating_add(rekey_bytes / 10));
    let rekey_packets = c.size(&ch.rekey_packets, "rekey_packets", 0);
    let life_packets =
        c.size(&ch.life_packets, "life_packets", rekey_packets.saturating_add(rekey_packets / 10));
    for (what, rekey, life, at) in [
        ("time", rekey_time, life_time, &ch.life_time),
        ("bytes", rekey_bytes, life_bytes, &ch.life_bytes),
        ("packets", rekey_packets, life_packets, &ch.life_packets),
    ] {
        if rekey != 0 && life != 0 && life <= rekey {
            let at = at.as_ref().map(sp).unwrap_or(sp(&ch.name));
            c.d.err(
                at,
                format!("life_{what} ({life}) must be larger than rekey_{what} ({rekey})"),
                format!("raise life_{what} or lower rekey_{what}, so rekeying happens before expiry"),
            );
        }
    }
    if rekey_time != 0 && life_time > rekey_time && rand_time > life_time - rekey_time {
        let at = ch.rand_time.as_ref().map(sp).unwrap_or(sp(&ch.name));
        c.d.err(
            at,
            format!("rand_time ({rand_time}s) exceeds life_time - rekey_time ({}s)", life_time - rekey_time),
            "lower rand_time so a rekey always starts before the SA expires",
        );
    }
    ChildLifetime { rekey_time, life_time, rand_time, rekey_bytes, life_bytes, rekey_packets, life_packets }
}

fn child(c: &mut Ctx, ch: &Spanned<RawChild>, conn: usize, idx: usize, gws: &[Gateway]) -> Child {
    let span = sp(ch);
    let ch = ch.get_ref();
    let name = ch.name.get_ref().clone();
    let dynamic = [TsSpec::Dynamic { proto: 0, port_start: 0, port_end: u16::MAX }];
    let mut local_ts = c.ts_list(&ch.local_ts, "local_ts", true);
    let mut remote_ts = c.ts_list(&ch.remote_ts, "remote_ts", true);
    if ch.local_ts.is_empty() {
        local_ts = dynamic.to_vec();
    }
    if ch.remote_ts.is_empty() {
        remote_ts = dynamic.to_vec();
    }
    let (l4, l6) = families(&local_ts);
    let (r4, r6) = families(&remote_ts);
    if !(local_ts.is_empty() || remote_ts.is_empty() || l4 && r4 || l6 && r6) {
        let at = ch.remote_ts.first().map(sp).unwrap_or(span);
        c.d.err(
            at,
            format!("child \"{name}\": local_ts and remote_ts have no address family in common"),
            "pair IPv4 with IPv4 and IPv6 with IPv6 selectors",
        );
    }
    let allow_weak = c.settings.allow_weak;
    let mut esp_proposals = Vec::new();
    for v in &ch.esp_proposals {
        match parse_esp(v.get_ref(), allow_weak) {
            Ok(p) => esp_proposals.push(p),
            Err((m, h)) => c.d.err(sp(v), m, h),
        }
    }
    if ch.esp_proposals.is_empty()
        && let Ok(p) = parse_esp(DEFAULT_ESP, false)
    {
        esp_proposals.push(p);
    }
    let lifetime = lifetime(c, ch);
    let start_action = c.opt_choice(&ch.start_action, "start_action", START, StartAction::None);
    let close_action = c.opt_choice(&ch.close_action, "close_action", START, StartAction::None);
    let dpd_action = c.opt_choice(
        &ch.dpd_action,
        "dpd_action",
        &[("clear", DpdAction::Clear), ("trap", DpdAction::Trap), ("restart", DpdAction::Restart)],
        DpdAction::Clear,
    );
    let replay_window = c.replay_window(&ch.replay_window);
    let dscp = c.dscp(&ch.dscp);
    let mtu = ch.mtu.as_ref().map(|_| c.int(&ch.mtu, "mtu", (576, 9216), 1400) as u16);
    let gateway = ch.gateway.as_ref().and_then(|g| {
        let found = gws.iter().position(|x| x.name == *g.get_ref());
        if found.is_none() {
            let help = match suggest(g.get_ref(), gws.iter().map(|x| x.name.as_str())) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None if gws.is_empty() => "this connection has no gateways; remove `gateway`".to_string(),
                None => format!(
                    "use one of: {}",
                    gws.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            };
            c.d.err(sp(g), format!("no gateway named \"{}\" in this connection", g.get_ref()), help);
        }
        found
    });
    let mut seen: HashMap<String, Range<usize>> =
        c.targets.iter().map(|(k, (_, r))| (k.clone(), r.clone())).collect();
    if c.name(&ch.name, "child/static SA", &mut seen) {
        c.targets.insert(name.clone(), (Target::Child(conn, idx), sp(&ch.name)));
    }
    Child {
        name,
        local_ts,
        remote_ts,
        esp_proposals,
        lifetime,
        start_action,
        close_action,
        dpd_action,
        replay_window,
        dscp,
        mtu,
        gateway,
    }
}

fn groups(c: &mut Ctx, raw: &[Spanned<RawGroup>], children: &[Child]) -> Authorizer {
    let mut seen = HashMap::new();
    let mut profiles = Vec::new();
    for g in raw {
        let g = g.get_ref();
        c.name(&g.name, "group", &mut seen);
        if g.patterns.get_ref().is_empty() {
            c.d.err(sp(&g.patterns), "group matches nobody", "add identity patterns such as \"OU=eng\"");
        }
        let mut patterns = Vec::new();
        for p in g.patterns.get_ref() {
            match IdPattern::parse(p.get_ref()) {
                Ok(x) => patterns.push(x),
                Err(e) => {
                    c.d.err(sp(p), format!("identity pattern: {e}"), "see docs/CONFIG.md, \"Identities\"")
                }
            }
        }
        let mut names = Vec::new();
        for ch in g.children.get_ref() {
            if children.iter().any(|x| x.name == *ch.get_ref()) {
                names.push(ch.get_ref().clone());
            } else {
                let help = match suggest(ch.get_ref(), children.iter().map(|x| x.name.as_str())) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => "name a child of this connection".to_string(),
                };
                c.d.err(sp(ch), format!("no child named \"{}\" in this connection", ch.get_ref()), help);
            }
        }
        let local_ts = c.fixed_ts(&g.local_ts, "local_ts");
        let pool = g.pool.as_ref().filter(|p| pool_ref(c, p)).map(|p| p.get_ref().clone());
        profiles.push(Profile { name: g.name.get_ref().clone(), patterns, children: names, local_ts, pool });
    }
    Authorizer { profiles }
}

pub(crate) fn connections(c: &mut Ctx, raw: &[Spanned<RawConnection>]) -> Vec<Connection> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (ci, rc) in raw.iter().enumerate() {
        let r = rc.get_ref();
        c.name(&r.name, "connection", &mut seen);
        let local_addrs = r.local_addrs.iter().filter_map(|v| c.ip(v)).collect();
        let local_port = c.int(&r.local_port, "local_port", (1, 65535), 500) as u16;
        let gateways = gateways(c, &r.gateways);
        let hash = c.opt_choice(
            &r.hash,
            "hash",
            &[("5tuple", FlowHashMode::FiveTuple), ("symmetric", FlowHashMode::Symmetric)],
            FlowHashMode::FiveTuple,
        );
        let allow_weak = c.settings.allow_weak;
        let mut proposals = Vec::new();
        for v in &r.proposals {
            match parse_ike(v.get_ref(), allow_weak) {
                Ok(p) => proposals.push(p),
                Err((m, h)) => c.d.err(sp(v), m, h),
            }
        }
        if r.proposals.is_empty()
            && let Ok(p) = parse_ike(DEFAULT_IKE, false)
        {
            proposals.push(p);
        }
        let rekey_time = c.duration(&r.rekey_time, "rekey_time", 4 * 3600);
        let rand_time = c.duration(&r.rand_time, "rand_time", rekey_time / 10);
        if rekey_time != 0 && rand_time >= rekey_time {
            let at = r.rand_time.as_ref().map(sp).unwrap_or(sp(&r.name));
            c.d.err(at, "rand_time must be smaller than rekey_time", "lower rand_time");
        }
        let dpd_delay = c.duration(&r.dpd_delay, "dpd_delay", 0);
        let dpd_timeout = c.duration(&r.dpd_timeout, "dpd_timeout", 150);
        let keepalive = c.duration(&r.keepalive, "keepalive", 20);
        let vips = r.vips.iter().filter_map(|v| c.ip(v)).collect();
        let pools = r.pools.iter().filter(|p| pool_ref(c, p)).map(|p| p.get_ref().clone()).collect();
        let mtu = r.mtu.as_ref().map(|_| c.int(&r.mtu, "mtu", (576, 9216), 1400) as u16);
        let local = local_auth(c, &r.local);
        let remote = remote_auth(c, &r.remote, local.psk.is_some());
        if local.method == AuthMethod::Psk && local.psk.is_none() && remote.psk.is_none() {
            c.d.err(sp(&r.local.get_ref().auth), "psk auth but no PSK given", "add psk_file or psk_env here");
        }
        let children: Vec<Child> =
            r.children.iter().enumerate().map(|(i, ch)| child(c, ch, ci, i, &gateways)).collect();
        let authorizer = groups(c, &r.groups, &children);
        out.push(Connection {
            name: r.name.get_ref().clone(),
            local_addrs,
            local_port,
            gateways,
            hash,
            proposals,
            rekey_time,
            rand_time,
            dpd_delay,
            dpd_timeout,
            keepalive,
            vips,
            pools,
            mtu,
            local,
            remote,
            children,
            authorizer,
        });
    }
    out
}
