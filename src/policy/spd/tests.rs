//! SPD tests: edge cases by hand, and the compiled lookup checked against a
//! naive linear first-match scan over random rule sets.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> AddrRange {
    let (a, l) = s.split_once('/').unwrap();
    AddrRange::prefix(ip(a), l.parse().unwrap()).unwrap()
}

fn key(src: &str, dst: &str, proto: u8, sp: Option<u16>, dp: Option<u16>, dscp: u8) -> FlowKey {
    FlowKey { src: ip(src), dst: ip(dst), proto, src_port: sp, dst_port: dp, dscp }
}

fn udp(src: &str, dst: &str, dport: u16) -> FlowKey {
    key(src, dst, 17, Some(40000), Some(dport), 0)
}

fn rule(src: AddrRange, dst: AddrRange, action: Action) -> Rule {
    Rule { selector: RuleSelector::addrs(src, dst), action }
}

/// The reference: scan in order, first match wins.
fn linear(rules: &[Rule], default: Action, k: &FlowKey) -> (Action, Option<usize>) {
    match rules.iter().position(|r| r.selector.matches(k)) {
        Some(i) => (rules[i].action, Some(i)),
        None => (default, None),
    }
}

#[test]
fn empty_rule_set_gives_default() {
    for default in [Action::Drop, Action::Bypass, Action::Protect(7)] {
        let spd = Spd::compile(&[], default).unwrap();
        assert_eq!(spd.classify(&udp("198.51.100.1", "203.0.113.1", 53)), default);
        assert_eq!(spd.classify(&udp("2001:db8::1", "2001:db8:1::1", 53)), default);
        assert_eq!(spd.first_match(&udp("198.51.100.1", "203.0.113.1", 53)), None);
    }
}

#[test]
fn first_match_wins_over_later_broader_and_narrower() {
    let rules = [
        rule(AddrRange::Any, pfx("203.0.113.0/25"), Action::Protect(1)),
        rule(AddrRange::Any, pfx("203.0.113.0/24"), Action::Bypass),
        rule(AddrRange::Any, pfx("203.0.113.5/32"), Action::Protect(2)),
    ];
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    assert_eq!(spd.classify(&udp("198.51.100.1", "203.0.113.5", 1)), Action::Protect(1));
    assert_eq!(spd.classify(&udp("198.51.100.1", "203.0.113.127", 1)), Action::Protect(1));
    assert_eq!(spd.classify(&udp("198.51.100.1", "203.0.113.128", 1)), Action::Bypass);
    assert_eq!(spd.classify(&udp("198.51.100.1", "203.0.114.0", 1)), Action::Drop);
    assert_eq!(spd.classify(&udp("198.51.100.1", "203.0.112.255", 1)), Action::Drop);
    // Rule 2 lies inside rule 0: shadowed.
    assert_eq!(spd.shadowed(), vec![(2, 0)]);
}

#[test]
fn whole_space_and_host_prefixes() {
    let rules = [
        rule(pfx("198.51.100.9/32"), pfx("203.0.113.9/32"), Action::Protect(0)),
        rule(pfx("2001:db8::9/128"), pfx("2001:db8:1::9/128"), Action::Protect(1)),
        rule(pfx("0.0.0.0/0"), pfx("0.0.0.0/0"), Action::Bypass),
        rule(pfx("::/0"), pfx("::/0"), Action::Protect(3)),
    ];
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    assert_eq!(spd.classify(&udp("198.51.100.9", "203.0.113.9", 1)), Action::Protect(0));
    assert_eq!(spd.classify(&udp("198.51.100.9", "203.0.113.8", 1)), Action::Bypass);
    assert_eq!(spd.classify(&udp("255.255.255.255", "0.0.0.0", 1)), Action::Bypass);
    assert_eq!(spd.classify(&udp("2001:db8::9", "2001:db8:1::9", 1)), Action::Protect(1));
    assert_eq!(spd.classify(&udp("2001:db8::9", "2001:db8:1::8", 1)), Action::Protect(3));
    assert_eq!(spd.classify(&udp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::", 1)), Action::Protect(3));
    assert!(spd.shadowed().is_empty());
}

#[test]
fn ports_at_the_edges_and_opaque() {
    let tcp = |lo, hi| RuleSelector {
        proto: Some(6),
        dst_ports: PortRange::new(lo, hi).unwrap(),
        ..RuleSelector::addrs(AddrRange::Any, AddrRange::Any)
    };
    let rules = [
        Rule { selector: tcp(0, 0), action: Action::Protect(0) },
        Rule { selector: tcp(65535, 65535), action: Action::Protect(1) },
        Rule { selector: tcp(1, 1023), action: Action::Protect(2) },
        Rule { selector: RuleSelector { proto: Some(6), ..RuleSelector::ANY }, action: Action::Bypass },
    ];
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    let t = |dp| key("198.51.100.1", "203.0.113.1", 6, Some(1), dp, 0);
    assert_eq!(spd.classify(&t(Some(0))), Action::Protect(0));
    assert_eq!(spd.classify(&t(Some(65535))), Action::Protect(1));
    assert_eq!(spd.classify(&t(Some(1023))), Action::Protect(2));
    assert_eq!(spd.classify(&t(Some(1024))), Action::Bypass);
    // Opaque ports only match the rule whose ports are "any".
    assert_eq!(spd.classify(&t(None)), Action::Bypass);
    // Other protocol: no rule.
    assert_eq!(spd.classify(&key("198.51.100.1", "203.0.113.1", 17, Some(1), Some(0), 0)), Action::Drop);
}

#[test]
fn dscp_and_icmp_type_code() {
    let ef = DscpSet::single(46).unwrap();
    let rules = [
        Rule { selector: RuleSelector { dscp: ef, ..RuleSelector::ANY }, action: Action::Protect(9) },
        // ICMP echo request: type 8 code 0 -> "port" 0x0800.
        Rule {
            selector: RuleSelector {
                proto: Some(1),
                dst_ports: PortRange::single(0x0800),
                ..RuleSelector::ANY
            },
            action: Action::Bypass,
        },
    ];
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    assert_eq!(
        spd.classify(&key("198.51.100.1", "203.0.113.1", 17, Some(1), Some(2), 46)),
        Action::Protect(9)
    );
    assert_eq!(
        spd.classify(&key("2001:db8::1", "2001:db8::2", 17, Some(1), Some(2), 46)),
        Action::Protect(9)
    );
    assert_eq!(spd.classify(&key("198.51.100.1", "203.0.113.1", 17, Some(1), Some(2), 0)), Action::Drop);
    assert_eq!(
        spd.classify(&key("198.51.100.1", "203.0.113.1", 1, Some(0x800), Some(0x800), 0)),
        Action::Bypass
    );
    assert_eq!(spd.classify(&key("198.51.100.1", "203.0.113.1", 1, Some(0), Some(0), 0)), Action::Drop);
}

#[test]
fn family_rules() {
    // Any source with a v4 destination is an IPv4-only rule.
    let rules = [rule(AddrRange::Any, pfx("203.0.113.0/24"), Action::Bypass)];
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    assert_eq!(spd.classify(&udp("198.51.100.1", "203.0.113.1", 1)), Action::Bypass);
    assert_eq!(spd.classify(&udp("2001:db8::1", "2001:db8::2", 1)), Action::Drop);
    // Mixed families within one key never match anything.
    let any =
        Spd::compile(&[Rule { selector: RuleSelector::ANY, action: Action::Bypass }], Action::Drop).unwrap();
    assert_eq!(any.classify(&udp("198.51.100.1", "2001:db8::2", 1)), Action::Drop);
    assert_eq!(any.classify(&udp("2001:db8::2", "198.51.100.1", 1)), Action::Drop);
}

#[test]
fn invalid_rules_are_refused_with_their_position() {
    let ok = rule(AddrRange::Any, AddrRange::Any, Action::Bypass);
    let mixed = rule(pfx("198.51.100.0/24"), pfx("2001:db8::/32"), Action::Bypass);
    assert_eq!(
        Spd::compile(&[ok, mixed], Action::Drop).unwrap_err(),
        SpdError::Rule { index: 1, reason: SelectorError::MixedFamily }
    );
    let ports = Rule {
        selector: RuleSelector { dst_ports: PortRange::single(53), ..RuleSelector::ANY },
        action: Action::Drop,
    };
    assert_eq!(
        Spd::compile(&[ports], Action::Drop).unwrap_err(),
        SpdError::Rule { index: 0, reason: SelectorError::PortsWithoutProto }
    );
    let inverted = Rule {
        selector: RuleSelector {
            proto: Some(6),
            src_ports: PortRange { start: 9, end: 3 },
            ..RuleSelector::ANY
        },
        action: Action::Drop,
    };
    assert_eq!(
        Spd::compile(&[inverted], Action::Drop).unwrap_err(),
        SpdError::Rule { index: 0, reason: SelectorError::Inverted }
    );
    let nodscp =
        Rule { selector: RuleSelector { dscp: DscpSet(0), ..RuleSelector::ANY }, action: Action::Drop };
    assert!(Spd::compile(&[nodscp], Action::Drop).is_err());
    assert_eq!(AddrRange::range(ip("198.51.100.9"), ip("198.51.100.1")), Err(SelectorError::Inverted));
    assert_eq!(AddrRange::prefix(ip("2001:db8::"), 129), Err(SelectorError::BadPrefix));
    assert_eq!(DscpSet::single(64), Err(SelectorError::BadDscp));
}

#[test]
fn shadowing_cases() {
    let web = |ports: PortRange, dst: &str| Rule {
        selector: RuleSelector {
            proto: Some(6),
            dst_ports: ports,
            ..RuleSelector::addrs(AddrRange::Any, pfx(dst))
        },
        action: Action::Protect(0),
    };
    let rules = [
        web(PortRange::new(80, 443).unwrap(), "203.0.113.0/24"),
        web(PortRange::single(443), "203.0.113.64/26"), // inside 0
        web(PortRange::single(8080), "203.0.113.64/26"), // port outside 0
        rule(AddrRange::Any, pfx("198.51.100.0/24"), Action::Bypass),
        web(PortRange::single(22), "198.51.100.0/25"), // inside 3 (any proto)
        rule(AddrRange::Any, AddrRange::Any, Action::Drop),
        rule(pfx("2001:db8::/32"), pfx("2001:db8::/32"), Action::Bypass), // inside 5 (v6 part)
    ];
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    assert_eq!(spd.shadowed(), vec![(1, 0), (4, 3), (6, 5)]);
    // A rule covered only by a union of two earlier rules is not reported.
    let split = [
        rule(AddrRange::Any, pfx("203.0.113.0/25"), Action::Bypass),
        rule(AddrRange::Any, pfx("203.0.113.128/25"), Action::Bypass),
        rule(AddrRange::Any, pfx("203.0.113.0/24"), Action::Drop),
    ];
    assert!(Spd::compile(&split, Action::Drop).unwrap().shadowed().is_empty());
}

#[test]
fn flow_cache_hits_and_generation_invalidates() {
    let a = Spd::compile(&[rule(AddrRange::Any, pfx("203.0.113.0/24"), Action::Protect(1))], Action::Drop)
        .unwrap();
    let b =
        Spd::compile(&[rule(AddrRange::Any, pfx("203.0.113.0/24"), Action::Bypass)], Action::Drop).unwrap();
    assert_ne!(a.generation(), b.generation());
    let mut c = FlowCache::new(64);
    let k = udp("198.51.100.1", "203.0.113.1", 53);
    assert_eq!(c.classify(&a, &k), Action::Protect(1));
    assert_eq!((c.hits(), c.misses()), (0, 1));
    assert_eq!(c.classify(&a, &k), Action::Protect(1));
    assert_eq!((c.hits(), c.misses()), (1, 1));
    // New policy: the stale entry is a miss and the new answer is returned.
    assert_eq!(c.classify(&b, &k), Action::Bypass);
    assert_eq!((c.hits(), c.misses()), (1, 2));
    // Same addresses, other port / opaque / other family: distinct flows.
    assert_eq!(c.classify(&b, &udp("198.51.100.1", "203.0.113.1", 54)), Action::Bypass);
    assert_eq!(c.classify(&b, &key("198.51.100.1", "203.0.113.1", 17, None, None, 0)), Action::Bypass);
    assert_eq!(c.misses(), 4);
}

#[test]
fn flow_cache_full_still_correct() {
    let rules: Vec<Rule> = (0..=255u8)
        .map(|i| {
            let dst = AddrRange::prefix(IpAddr::from([203, 0, 113, i]), 32).unwrap();
            rule(AddrRange::Any, dst, Action::Protect(u32::from(i)))
        })
        .collect();
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    let mut c = FlowCache::new(8);
    assert_eq!(c.capacity(), 8);
    for round in 0..3 {
        for i in 0..=255u8 {
            let k = FlowKey {
                src: ip("198.51.100.1"),
                dst: IpAddr::from([203, 0, 113, i]),
                proto: 6,
                src_port: Some(round),
                dst_port: Some(443),
                dscp: 0,
            };
            assert_eq!(c.classify(&spd, &k), Action::Protect(u32::from(i)));
        }
    }
}

// ---- randomized comparison with the linear reference ----

/// Addresses drawn from a small pool of bases so rules overlap and keys hit
/// rule edges; every prefix length is possible.
fn addr_range(v6: bool) -> impl Strategy<Value = AddrRange> {
    let bases4 = [0u32, 0xc633_6400, 0xcb00_7100, 0xc000_0200, u32::MAX];
    let bases6 = [0u128, 0x2001_0db8u128 << 96, (0x2001_0db8u128 << 96) | 0xffff, u128::MAX];
    prop_oneof![
        1 => Just(AddrRange::Any),
        3 => (0usize..5, 0u8..=32, any::<u32>()).prop_map(move |(b, l, j)| {
            let base = bases4[b] ^ (j & 0xff);
            AddrRange::prefix(IpAddr::from(base.to_be_bytes()), l).unwrap()
        }),
        3 => (0usize..4, 0u8..=128, any::<u128>()).prop_map(move |(b, l, j)| {
            let base = bases6[b] ^ (j & 0xffff);
            AddrRange::prefix(IpAddr::from(base.to_be_bytes()), l).unwrap()
        }),
        1 => (0usize..5, any::<u16>(), any::<u16>()).prop_map(move |(b, x, y)| {
            let (s, e) = (bases4[b].wrapping_add(x.min(y).into()), bases4[b].wrapping_add(x.max(y).into()));
            AddrRange::V4 { start: s.min(e), end: s.max(e) }
        }),
    ]
    .prop_filter("family", move |r| if v6 { r.has_v6() } else { r.has_v4() })
}

fn ports() -> impl Strategy<Value = PortRange> {
    let edge = prop_oneof![
        Just(0u16),
        Just(1),
        Just(53),
        Just(443),
        Just(1024),
        Just(65534),
        Just(65535),
        any::<u16>()
    ];
    prop_oneof![
        2 => Just(PortRange::ANY),
        2 => edge.clone().prop_map(PortRange::single),
        1 => (edge.clone(), edge).prop_map(|(a, b)| PortRange { start: a.min(b), end: a.max(b) }),
    ]
}

fn selector() -> impl Strategy<Value = RuleSelector> {
    let dscp = prop_oneof![4 => Just(DscpSet::ANY), 1 => (0u8..64).prop_map(|d| DscpSet::single(d).unwrap()),
        1 => any::<u64>().prop_filter("nonempty", |m| *m != 0).prop_map(DscpSet)];
    (any::<bool>(), any::<bool>()).prop_flat_map(move |(v6, any_pair)| {
        let addrs = if any_pair {
            Just((AddrRange::Any, AddrRange::Any)).boxed()
        } else {
            (addr_range(v6), addr_range(v6))
                .prop_filter("not both any", |(s, d)| *s != *d || *s != AddrRange::Any)
                .boxed()
        };
        (
            addrs,
            prop::option::of(prop_oneof![Just(6u8), Just(17), Just(1), Just(58), Just(50)]),
            ports(),
            ports(),
            dscp.clone(),
        )
            .prop_map(|((src, dst), proto, sp, dp, dscp)| {
                let (sp, dp) = if proto.is_some() { (sp, dp) } else { (PortRange::ANY, PortRange::ANY) };
                RuleSelector { src, dst, proto, src_ports: sp, dst_ports: dp, dscp }
            })
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![(0u32..8).prop_map(Action::Protect), Just(Action::Bypass), Just(Action::Drop)]
}

/// A key near a rule's edges (or anywhere).
fn key_for(
    rules: &[Rule],
    pick: usize,
    off: (u64, u64),
    fields: (bool, u8, Option<u16>, Option<u16>, u8),
) -> FlowKey {
    let (v6, proto, sp, dp, dscp) = fields;
    let v6 = rules
        .get(pick % rules.len().max(1))
        .map_or(v6, |r| if r.selector.has_v4() && r.selector.has_v6() { v6 } else { r.selector.has_v6() });
    let near = |a: AddrRange, o: u64| -> IpAddr {
        let (s, e) = a.bounds(v6).unwrap_or((0, if v6 { u128::MAX } else { u32::MAX.into() }));
        let x = match o % 5 {
            0 => s,
            1 => e,
            2 => s.wrapping_sub(1),
            3 => e.wrapping_add(1),
            _ => s.wrapping_add(u128::from(o >> 3) % (e - s).saturating_add(1).max(1)),
        };
        if v6 { IpAddr::from(x.to_be_bytes()) } else { IpAddr::from((x as u32).to_be_bytes()) }
    };
    match rules.get(pick % rules.len().max(1)) {
        Some(r) => {
            let sel = &r.selector;
            let port = |p: PortRange, q: Option<u16>, o: u64| match (q, o % 4) {
                (None, _) => None,
                (_, 0) => Some(p.start),
                (_, 1) => Some(p.end),
                (_, 2) => Some(p.end.wrapping_add(1)),
                (Some(q), _) => Some(q),
            };
            FlowKey {
                src: near(sel.src, off.0),
                dst: near(sel.dst, off.1),
                proto: sel.proto.filter(|_| off.0 % 3 != 0).unwrap_or(proto),
                src_port: port(sel.src_ports, sp, off.1 >> 8),
                dst_port: port(sel.dst_ports, dp, off.0 >> 8),
                dscp: if off.1 % 2 == 0 { sel.dscp.0.trailing_zeros() as u8 } else { dscp },
            }
        }
        None => FlowKey {
            src: near(AddrRange::Any, off.0),
            dst: near(AddrRange::Any, off.1),
            proto,
            src_port: sp,
            dst_port: dp,
            dscp,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compiled_matches_linear(
        rules in prop::collection::vec((selector(), action()).prop_map(|(selector, action)| Rule { selector, action }), 0..150),
        default in action(),
        keys in prop::collection::vec(
            (any::<usize>(), any::<(u64, u64)>(), (any::<bool>(), prop_oneof![Just(6u8), Just(17), Just(1), any::<u8>()],
             prop::option::of(any::<u16>()), prop::option::of(any::<u16>()), 0u8..64)),
            1..64),
    ) {
        let spd = Spd::compile(&rules, default).unwrap();
        let mut cache = FlowCache::new(16);
        for (pick, off, fields) in keys {
            let k = key_for(&rules, pick, off, fields);
            let (want, idx) = linear(&rules, default, &k);
            prop_assert_eq!(spd.first_match(&k), idx, "key {:?}", k);
            prop_assert_eq!(spd.classify(&k), want);
            prop_assert_eq!(cache.classify(&spd, &k), want);
            prop_assert_eq!(cache.classify(&spd, &k), want);
        }
    }

    #[test]
    fn shadowed_matches_pairwise_reference(
        rules in prop::collection::vec((selector(), action()).prop_map(|(selector, action)| Rule { selector, action }), 0..60),
    ) {
        let spd = Spd::compile(&rules, Action::Drop).unwrap();
        let want: Vec<(usize, usize)> = (0..rules.len())
            .filter_map(|j| (0..j).find(|&i| rules[i].selector.covers(&rules[j].selector)).map(|i| (j, i)))
            .collect();
        prop_assert_eq!(spd.shadowed(), want);
    }
}

/// More than 4,096 rules in one family: rows span several aggregate words,
/// which the proptest above (at most 150 rules) never reaches. Fixed seed.
#[test]
fn many_rules_span_several_aggregates() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut rules = Vec::new();
    for i in 0..9000u64 {
        let r = next();
        // Clustered addresses (16 sites) so rules overlap; some wildcards.
        let addr = |r: u64| {
            IpAddr::from(
                (0xcb00_0000u32 | ((r as u32 & 0xf) << 16) | (r as u32 >> 16 & 0xffff)).to_be_bytes(),
            )
        };
        let src = if r % 3 == 0 {
            AddrRange::Any
        } else {
            AddrRange::prefix(addr(r >> 8), 12 + (r % 21) as u8).unwrap()
        };
        let dst = AddrRange::prefix(addr(r >> 24), 20 + (r >> 40) as u8 % 13).unwrap();
        let proto = [None, Some(6), Some(17)][(r >> 50) as usize % 3];
        let dst_ports = match (proto, r >> 52 & 3) {
            (Some(_), 0) => PortRange::single((r >> 32) as u16 % 1024),
            (Some(_), 1) => PortRange::new(1024, 1024 + (r >> 20) as u16 % 4096).unwrap(),
            _ => PortRange::ANY,
        };
        let dscp = if r >> 60 == 0 { DscpSet::single(46).unwrap() } else { DscpSet::ANY };
        let selector = RuleSelector { src, dst, proto, dst_ports, dscp, ..RuleSelector::ANY };
        let action = if i % 2 == 0 { Action::Protect(i as u32) } else { Action::Bypass };
        rules.push(Rule { selector, action });
    }
    let spd = Spd::compile(&rules, Action::Drop).unwrap();
    let mut matched_late = 0;
    for _ in 0..4000 {
        let r = next();
        let sel = rules[(r % 9000) as usize].selector;
        let (s, e) = sel.dst.bounds(false).unwrap();
        let dst = (s + u128::from(r >> 20) % (e - s + 1)) as u32;
        let (ss, se) = sel.src.bounds(false).unwrap();
        let src = (ss + u128::from(r >> 8) % (se - ss + 1)) as u32;
        let k = FlowKey {
            src: IpAddr::from(src.to_be_bytes()),
            dst: IpAddr::from(dst.to_be_bytes()),
            proto: sel.proto.unwrap_or(17),
            src_port: Some(40000),
            dst_port: Some(sel.dst_ports.start.wrapping_add((r >> 40) as u16 % 3)),
            dscp: if r >> 62 == 0 { 46 } else { 0 },
        };
        let (want, idx) = linear(&rules, Action::Drop, &k);
        assert_eq!(spd.first_match(&k), idx, "key {k:?}");
        assert_eq!(spd.classify(&k), want, "key {k:?}");
        matched_late += usize::from(idx.is_some_and(|i| i >= 4096));
    }
    assert!(matched_late > 100, "keys whose first match is past the first aggregate: {matched_late}");
}

/// Fixed-seed rule sets large enough to be split by destination, and one
/// that no split helps (destinations all wide), checked against the linear
/// scan on keys inside and around the rules.
#[test]
fn split_and_flat_families_match_linear() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (n, wide) in [(3000usize, false), (1500, true)] {
        let mut rules = Vec::new();
        for i in 0..n {
            let r = next();
            let v6 = r % 5 < 2;
            let base = |r: u64| -> IpAddr {
                if v6 {
                    IpAddr::from(((u128::from(r % 64) << 120) | u128::from(r >> 8) << 64).to_be_bytes())
                } else {
                    IpAddr::from((((r % 64) as u32) << 26 | (r >> 40) as u32 & 0x3ff_ffff).to_be_bytes())
                }
            };
            let len = |lo: u64, hi: u64, r: u64| (lo + r % (hi - lo + 1)) as u8;
            let dst = if wide {
                AddrRange::prefix(base(r >> 3), len(0, 1, r >> 20)).unwrap()
            } else if v6 {
                AddrRange::prefix(base(r >> 3), len(4, 128, r >> 20)).unwrap()
            } else {
                AddrRange::prefix(base(r >> 3), len(4, 32, r >> 20)).unwrap()
            };
            let src = if r >> 60 < 6 {
                AddrRange::Any
            } else {
                AddrRange::prefix(base(r >> 11), len(8, if v6 { 128 } else { 32 }, r >> 28)).unwrap()
            };
            let proto = [None, Some(6), Some(17), Some(1)][(r >> 34) as usize % 4];
            let dst_ports = match (proto, r >> 36 & 3) {
                (Some(6 | 17), 0) => PortRange::single((r >> 40) as u16 % 2048),
                (Some(6 | 17), 1) => PortRange::new(1024, 1024 + (r >> 44) as u16 % 8192).unwrap(),
                _ => PortRange::ANY,
            };
            let dscp = if r >> 58 & 7 == 0 { DscpSet::single(46).unwrap() } else { DscpSet::ANY };
            let selector = RuleSelector { src, dst, proto, dst_ports, dscp, ..RuleSelector::ANY };
            rules.push(Rule { selector, action: Action::Protect(i as u32) });
        }
        let spd = Spd::compile(&rules, Action::Drop).unwrap();
        assert_eq!(spd.v4.split_bits().is_some(), !wide, "v4, wide {wide}");
        assert_eq!(spd.v6.split_bits().is_some(), !wide, "v6, wide {wide}");
        let mut matched = 0;
        for _ in 0..6000 {
            let r = next();
            let k = key_for(
                &rules,
                r as usize,
                (next(), next()),
                (
                    r >> 63 == 1,
                    [6, 17, 1, 50][(r >> 8) as usize % 4],
                    Some(40000),
                    Some((r >> 16) as u16 % 2048),
                    0,
                ),
            );
            let (want, idx) = linear(&rules, Action::Drop, &k);
            assert_eq!(spd.first_match(&k), idx, "key {k:?}");
            assert_eq!(spd.classify(&k), want, "key {k:?}");
            matched += usize::from(idx.is_some());
        }
        assert!(matched > 1000, "keys that match some rule: {matched}");
    }
}
