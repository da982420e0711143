//! From a validated [`Config`] to the ordered rule list the SPD is built
//! from, and the table of protect targets the rules point at.
//!
//! Order (first match wins, RFC 4301 §4.4.1 "ordered SPD"):
//! 1. the explicit `[[rules]]`, in file order;
//! 2. one protect entry per child and (local_ts, remote_ts) pair, in file
//!    order (outbound: source in `local_ts`, destination in `remote_ts`);
//! 3. one protect entry per outbound static SA selector pair;
//! 4. the default action (`settings.default_action`) for everything else.
//!
//! `dynamic` selectors: a dynamic local side becomes "any address of the
//! peer side's family" (our virtual or outer address is only known once
//! connected); a dynamic remote side becomes the connection's address pools
//! (and its groups' pools) on a responder, and is otherwise left to the
//! control plane, which installs the entry when the SA comes up (reported
//! as a note).
//!
//! Pairs that can never match (different families, different protocols)
//! are skipped. A protect target's [`ChildId`] is its index in
//! [`CompiledPolicy::targets`].

use crate::policy::config::{Config, DefaultAction, RuleAction, Target, TsSpec};
use crate::policy::spd::{self, Action, AddrRange, ChildId, DscpSet, PortRange, RuleSelector, Spd, SpdError};
use crate::ts::{PROTO_ANY, TrafficSelector};

/// Where an entry came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An explicit `[[rules]]` entry.
    Rule {
        /// Rule name.
        name: String,
        /// Line of its `[[rules]]` header.
        line: usize,
    },
    /// A child's traffic selectors.
    Child {
        /// Connection name.
        conn: String,
        /// Child name.
        child: String,
        /// The group (profile) whose pool and `local_ts` shaped the entry.
        group: Option<String>,
    },
    /// An outbound static SA's selectors.
    StaticSa {
        /// SA name.
        name: String,
    },
}

impl core::fmt::Display for Origin {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Origin::Rule { name, line } => write!(f, "rule \"{name}\" (line {line})"),
            Origin::Child { conn, child, group: None } => write!(f, "child \"{conn}/{child}\""),
            Origin::Child { conn, child, group: Some(g) } => {
                write!(f, "child \"{conn}/{child}\" for group \"{g}\"")
            }
            Origin::StaticSa { name } => write!(f, "static SA \"{name}\""),
        }
    }
}

/// One SPD entry with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Source of the entry.
    pub origin: Origin,
    /// The SPD rule.
    pub rule: spd::Rule,
}

/// The compiled policy: targets, ordered entries, default action, notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// Protect targets; a [`ChildId`] indexes this list.
    pub targets: Vec<Target>,
    /// Entries in match order.
    pub entries: Vec<Entry>,
    /// Action for packets no entry matches.
    pub default: Action,
    /// Remarks for the reader (skipped pairs, runtime-installed entries).
    pub notes: Vec<String>,
}

impl CompiledPolicy {
    /// The SPD rules in order.
    pub fn rules(&self) -> Vec<spd::Rule> {
        self.entries.iter().map(|e| e.rule).collect()
    }

    /// Builds the SPD.
    pub fn to_spd(&self) -> Result<Spd, SpdError> {
        Spd::compile(&self.rules(), self.default)
    }

    /// The target a [`ChildId`] stands for.
    pub fn target(&self, id: ChildId) -> Option<Target> {
        self.targets.get(id as usize).copied()
    }

    /// Destination ranges whose traffic some entry protects (the split
    /// tunnel's "inside" list, before earlier bypass/drop entries).
    pub fn tunnel_destinations(&self) -> Vec<AddrRange> {
        let mut out: Vec<AddrRange> = Vec::new();
        for e in &self.entries {
            if matches!(e.rule.action, Action::Protect(_)) && !out.contains(&e.rule.selector.dst) {
                out.push(e.rule.selector.dst);
            }
        }
        out
    }
}

fn addr(ts: &TrafficSelector) -> AddrRange {
    // Cannot fail: a validated selector has ordered bounds of one family.
    AddrRange::from_ts(ts).unwrap_or(AddrRange::all_of(ts.is_v6()))
}

/// The protocol both sides agree on: `Some(None)` = any, `None` = conflict.
fn merge_proto(a: u8, b: u8) -> Option<Option<u8>> {
    match (a, b) {
        (PROTO_ANY, PROTO_ANY) => Some(None),
        (PROTO_ANY, p) | (p, PROTO_ANY) => Some(Some(p)),
        (p, q) if p == q => Some(Some(p)),
        _ => None,
    }
}

/// One selector pair to a protect entry, if the pair can match at all.
fn pair(local: &TrafficSelector, remote: &TrafficSelector, action: Action) -> Option<spd::Rule> {
    if local.is_v6() != remote.is_v6() {
        return None;
    }
    let proto = merge_proto(local.proto, remote.proto)?;
    let selector = RuleSelector {
        src: addr(local),
        dst: addr(remote),
        proto,
        src_ports: PortRange { start: local.port_start, end: local.port_end },
        dst_ports: PortRange { start: remote.port_start, end: remote.port_end },
        dscp: DscpSet::ANY,
    };
    Some(spd::Rule { selector, action })
}

/// Replaces a dynamic spec by concrete selectors (see the module docs).
fn resolve(spec: &TsSpec, other_v6: Option<bool>, pools: &[TrafficSelector]) -> Vec<TrafficSelector> {
    match spec {
        TsSpec::Fixed(t) => vec![*t],
        TsSpec::Dynamic { proto, port_start, port_end } => {
            let with = |t: TrafficSelector| TrafficSelector {
                proto: *proto,
                port_start: *port_start,
                port_end: *port_end,
                ..t
            };
            if pools.is_empty() {
                other_v6.map(|v6| vec![with(TrafficSelector::any(v6))]).unwrap_or_default()
            } else {
                pools.iter().map(|p| with(*p)).collect()
            }
        }
    }
}

/// Compiles the policy.
pub fn compile(cfg: &Config) -> CompiledPolicy {
    let mut targets = Vec::new();
    for (ci, c) in cfg.connections.iter().enumerate() {
        targets.extend((0..c.children.len()).map(|i| Target::Child(ci, i)));
    }
    targets.extend(
        cfg.static_sas
            .iter()
            .enumerate()
            .filter(|(_, s)| s.direction == crate::policy::config::Direction::Out && s.via.is_none())
            .map(|(i, _)| Target::StaticSa(i)),
    );
    let id_of = |t: Target| targets.iter().position(|x| *x == t).map(|i| i as ChildId);
    let mut entries = Vec::new();
    let mut notes = Vec::new();

    for r in &cfg.rules {
        let action = match r.action {
            RuleAction::Bypass => Action::Bypass,
            RuleAction::Drop => Action::Drop,
            RuleAction::Protect(t) => match id_of(t) {
                Some(id) => Action::Protect(id),
                None => continue,
            },
        };
        let origin = Origin::Rule { name: r.name.clone(), line: r.line };
        for s in &r.src {
            for d in r.dst.iter().filter(|d| d.is_v6() == s.is_v6()) {
                let selector = RuleSelector {
                    src: addr(s),
                    dst: addr(d),
                    proto: r.proto,
                    src_ports: PortRange { start: r.src_ports.0, end: r.src_ports.1 },
                    dst_ports: PortRange { start: r.dst_ports.0, end: r.dst_ports.1 },
                    dscp: r.dscp.map_or(DscpSet::ANY, DscpSet),
                };
                entries.push(Entry { origin: origin.clone(), rule: spd::Rule { selector, action } });
            }
        }
    }

    for (ci, c) in cfg.connections.iter().enumerate() {
        let ranges = |names: &mut dyn Iterator<Item = &String>| {
            let mut out: Vec<TrafficSelector> = Vec::new();
            for name in names {
                for t in cfg.pool(name).map(|p| p.ranges.as_slice()).unwrap_or(&[]) {
                    if !out.contains(t) {
                        out.push(*t);
                    }
                }
            }
            out
        };
        for (i, ch) in c.children.iter().enumerate() {
            let Some(id) = id_of(Target::Child(ci, i)) else { continue };
            // Peers reach this child with addresses from the pools of the
            // groups granting it, each group's entries narrowed to its
            // `local_ts`; without such groups, from the connection's pools.
            let mut grants: Vec<(Option<&String>, &[TrafficSelector], Vec<TrafficSelector>)> = c
                .authorizer
                .profiles
                .iter()
                .filter(|p| p.children.contains(&ch.name))
                .filter_map(|p| {
                    p.pool.as_ref().map(|pool| {
                        (Some(&p.name), p.local_ts.as_slice(), ranges(&mut std::iter::once(pool)))
                    })
                })
                .collect();
            if grants.is_empty() {
                grants.push((None, &[], ranges(&mut c.pools.iter())));
            }
            let before = entries.len();
            for (group, narrow, pools) in &grants {
                let origin =
                    Origin::Child { conn: c.name.clone(), child: ch.name.clone(), group: group.cloned() };
                for l in &ch.local_ts {
                    for r in &ch.remote_ts {
                        let fam = |t: &TsSpec| match t {
                            TsSpec::Fixed(t) => Some(t.is_v6()),
                            TsSpec::Dynamic { .. } => None,
                        };
                        if let TsSpec::Dynamic { .. } = r
                            && pools.is_empty()
                        {
                            notes.push(format!(
                                "{origin}: remote_ts `{r}` is the peer's address; its entry is installed when the SA is up"
                            ));
                            continue;
                        }
                        for r in &resolve(r, fam(l), pools) {
                            for l in resolve(l, Some(r.is_v6()), &[]) {
                                let locals: Vec<TrafficSelector> = if narrow.is_empty() {
                                    vec![l]
                                } else {
                                    narrow.iter().filter_map(|n| l.intersect(n)).collect()
                                };
                                for l in &locals {
                                    if let Some(rule) = pair(l, r, Action::Protect(id)) {
                                        // Two groups sharing a pool give the same entry once.
                                        if !entries[before..].iter().any(|e: &Entry| e.rule == rule) {
                                            entries.push(Entry { origin: origin.clone(), rule });
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let origin = Origin::Child { conn: c.name.clone(), child: ch.name.clone(), group: None };
            if entries.len() == before && ch.remote_ts.iter().all(|r| matches!(r, TsSpec::Fixed(_))) {
                notes.push(format!("{origin}: no selector pair can match (families or protocols differ)"));
            }
        }
    }

    for (i, sa) in cfg.static_sas.iter().enumerate() {
        let Some(id) = id_of(Target::StaticSa(i)) else { continue };
        let origin = Origin::StaticSa { name: sa.name.clone() };
        for l in &sa.local_ts {
            for r in &sa.remote_ts {
                if let Some(rule) = pair(l, r, Action::Protect(id)) {
                    entries.push(Entry { origin: origin.clone(), rule });
                }
            }
        }
    }

    let default = match cfg.settings.default_action {
        DefaultAction::Bypass => Action::Bypass,
        DefaultAction::Drop => Action::Drop,
    };
    CompiledPolicy { targets, entries, default, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::spd::FlowKey;
    use std::net::IpAddr;

    fn key(src: &str, dst: &str, proto: u8, dport: Option<u16>, dscp: u8) -> FlowKey {
        FlowKey {
            src: src.parse::<IpAddr>().unwrap(),
            dst: dst.parse::<IpAddr>().unwrap(),
            proto,
            src_port: dport.map(|_| 40000),
            dst_port: dport,
            dscp,
        }
    }

    const SPLIT: &str = r#"
[settings]
default_action = "bypass"
[[connections]]
name = "corp"
gateways = [{ address = "192.0.2.1" }]
local = { auth = "psk", psk_env = "K" }
remote = { auth = "psk" }
[[connections.children]]
name = "nets"
local_ts = ["dynamic"]
remote_ts = ["203.0.113.0/24", "2001:db8:100::/48[tcp/22]"]
[[rules]]
action = "bypass"
dst = ["203.0.113.80"]
proto = "tcp"
dst_port = 443
[[rules]]
action = "drop"
dst = ["203.0.113.0/24"]
dscp = 8
"#;

    #[test]
    fn split_tunnel_classifies_as_written() {
        let cfg = Config::from_str(SPLIT, "t").unwrap();
        let p = compile(&cfg);
        assert_eq!(p.targets, vec![Target::Child(0, 0)]);
        let spd = p.to_spd().unwrap();
        let protect = Action::Protect(0);
        // The bypass rule wins for its exact flow only.
        assert_eq!(spd.classify(&key("198.51.100.7", "203.0.113.80", 6, Some(443), 0)), Action::Bypass);
        assert_eq!(spd.classify(&key("198.51.100.7", "203.0.113.80", 6, Some(80), 0)), protect);
        // DSCP 8 (CS1) to the company range is dropped, others protected.
        assert_eq!(spd.classify(&key("198.51.100.7", "203.0.113.9", 17, Some(53), 8)), Action::Drop);
        assert_eq!(spd.classify(&key("198.51.100.7", "203.0.113.9", 17, Some(53), 0)), protect);
        // Outside the tunnel prefixes: the default, bypass.
        assert_eq!(spd.classify(&key("198.51.100.7", "192.0.2.99", 6, Some(443), 0)), Action::Bypass);
        // IPv6: only ssh goes in.
        assert_eq!(spd.classify(&key("2001:db8::5", "2001:db8:100::1", 6, Some(22), 0)), protect);
        assert_eq!(spd.classify(&key("2001:db8::5", "2001:db8:100::1", 6, Some(23), 0)), Action::Bypass);
        assert_eq!(p.entries.len(), 4);
        assert!(matches!(p.entries[0].origin, Origin::Rule { line: 13, .. }), "{:?}", p.entries[0].origin);
    }

    #[test]
    fn pools_stand_for_dynamic_remote_and_static_sas_follow_children() {
        let text = r#"
[settings]
allow_inline_secrets = true
[[pools]]
name = "p"
addrs = ["198.51.100.64/26"]
[[connections]]
name = "rw"
pools = ["p"]
local = { auth = "psk", psk_env = "K" }
remote = { auth = "psk" }
[[connections.children]]
name = "c"
local_ts = ["203.0.113.0/24"]
[[static_sas]]
name = "in"
direction = "in"
spi = 4096
alg = "aes256gcm16"
key = "0000000000000000000000000000000000000000000000000000000000000000aabbccdd"
local = "192.0.2.1"
remote = "192.0.2.2"
[[static_sas]]
name = "out"
direction = "out"
spi = 4097
alg = "aes256gcm16"
key = "0000000000000000000000000000000000000000000000000000000000000000aabbccdd"
local = "192.0.2.1"
remote = "192.0.2.2"
local_ts = ["198.51.100.0/24"]
remote_ts = ["203.0.113.0/24"]
"#;
        let cfg = Config::from_str(text, "t").unwrap();
        let p = compile(&cfg);
        // Only the outbound static SA becomes a target, after the child.
        assert_eq!(p.targets, vec![Target::Child(0, 0), Target::StaticSa(1)]);
        let spd = p.to_spd().unwrap();
        assert_eq!(spd.classify(&key("203.0.113.1", "198.51.100.70", 6, Some(80), 0)), Action::Protect(0));
        assert_eq!(spd.classify(&key("203.0.113.1", "198.51.100.1", 6, Some(80), 0)), Action::Drop);
        assert_eq!(spd.classify(&key("198.51.100.1", "203.0.113.1", 6, Some(80), 0)), Action::Protect(1));
    }

    /// Two groups share one child: staff reach all of its `local_ts` from
    /// their pool; contractors only the part their group's `local_ts`
    /// allows, from theirs. A third group with the staff pool adds nothing.
    #[test]
    fn group_local_ts_narrows_that_groups_entries() {
        let text = r#"
[[pools]]
name = "staff"
addrs = ["198.51.100.64/26"]
[[pools]]
name = "contractors"
addrs = ["198.51.100.128/26"]
[[connections]]
name = "rw"
pools = ["staff", "contractors"]
local = { auth = "psk", psk_env = "K" }
remote = { auth = "psk" }
[[connections.children]]
name = "net"
local_ts = ["203.0.113.0/24", "2001:db8:100::/48"]
remote_ts = ["dynamic"]
[[connections.groups]]
name = "staff"
match = ["*@staff.example.com"]
children = ["net"]
pool = "staff"
[[connections.groups]]
name = "contractors"
match = ["*@contractors.example.com"]
children = ["net"]
local_ts = ["203.0.113.64/26[tcp/443]", "198.51.100.0/25"]
pool = "contractors"
[[connections.groups]]
name = "admins"
match = ["*@admins.example.com"]
children = ["net"]
pool = "staff"
"#;
        let cfg = Config::from_str(text, "t").unwrap();
        let p = compile(&cfg);
        let shown: Vec<String> = p.entries.iter().map(|e| e.origin.to_string()).collect();
        assert_eq!(
            shown,
            ["child \"rw/net\" for group \"staff\"", "child \"rw/net\" for group \"contractors\"",],
            "staff: one v4 entry (its pool has no v6); contractors: the one overlap; admins: a duplicate of staff's"
        );
        let spd = p.to_spd().unwrap();
        let staff = "198.51.100.70";
        let contractor = "198.51.100.130";
        assert_eq!(spd.classify(&key("203.0.113.1", staff, 6, Some(80), 0)), Action::Protect(0));
        // Outbound, our side is the source: replies from local port 443.
        let from = |src: &str, proto: u8, sport: u16| FlowKey {
            src_port: Some(sport),
            dst_port: Some(50000),
            ..key(src, contractor, proto, Some(0), 0)
        };
        assert_eq!(spd.classify(&from("203.0.113.70", 6, 443)), Action::Protect(0));
        // Outside the contractors' narrowed local_ts: other port, protocol, address.
        assert_eq!(spd.classify(&from("203.0.113.70", 6, 80)), Action::Drop);
        assert_eq!(spd.classify(&from("203.0.113.70", 17, 443)), Action::Drop);
        assert_eq!(spd.classify(&from("203.0.113.1", 6, 443)), Action::Drop);
    }
}
