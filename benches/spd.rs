//! SPD classification cost per packet (issue 3: <= 100 ns with 10,000 rules
//! of a realistic mix, <= 20 ns on a flow-cache hit).
//!
//! Rule sets of 100, 1,000 and 10,000 rules are generated from a fixed
//! seed: IPv4 and IPv6 rules, source and destination prefixes of every
//! length (weighted the way routing tables and firewall rule sets are:
//! mostly /16../32 and /32../64, a few very short and host prefixes),
//! clustered in a few hundred "sites" so prefixes nest and overlap, some
//! wildcard sources, TCP/UDP/ICMP/any protocols, single ports and port
//! ranges, DSCP sets, and all three actions. Lookups walk 65,536 distinct
//! flow keys in turn (70 % drawn inside some rule, 30 % anywhere), so every
//! lookup is a different flow and nothing stays hot except the tables.
//!
//! Cases: `spd/classify/N` (the compiled SPD, no cache), `spd/linear/N`
//! (the reference first-match scan over the rule list), `spd/cache_hit`
//! (a warm per-worker `FlowCache` in front of the 10,000-rule SPD, cycling
//! 1,024 flows) and `spd/cache_miss` (the same cache cycling all 65,536
//! keys, so nearly every lookup misses, goes to the SPD and inserts).
//! Each criterion iteration is one packet, so criterion's time is ns per
//! packet. Before any timing, the compiled SPD is checked against the
//! linear scan on every key.
//!
//! `cargo bench --bench spd` runs criterion and then prints a summary table
//! (median of 11 timed passes per cell, wall clock and this thread's CPU
//! time); `cargo bench --bench spd -- --table-only` prints just the table;
//! `-- --lookups N [--rules R]` only runs N lookups, for cachegrind.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use esptun::policy::spd::{
    Action, AddrRange, DscpSet, FlowCache, FlowKey, PortRange, Rule, RuleSelector, Spd,
};

const SIZES: [usize; 3] = [100, 1_000, 10_000];
/// Distinct flow keys walked by the miss cases (a power of two).
const KEYS: usize = 1 << 16;
/// Flows cycled by the cache-hit case; well under the cache's 4,096.
const HOT_FLOWS: usize = 1_024;
/// The engine's default per-worker flow cache size.
const CACHE: usize = 4_096;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// splitmix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn u128(&mut self) -> u128 {
        u128::from(self.next()) << 64 | u128::from(self.next())
    }
}

/// Site bases addresses cluster around, so prefixes nest and overlap like
/// real rule sets (many rules per site, few sites).
struct Sites {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

impl Sites {
    fn new(rng: &mut Rng) -> Self {
        // 256 IPv4 /16 sites and 256 IPv6 /32 sites, random.
        let v4 = (0..256).map(|_| (rng.next() as u32) & 0xffff_0000).collect();
        let v6 = (0..256).map(|_| rng.u128() & !(u128::MAX >> 32)).collect();
        Sites { v4, v6 }
    }

    /// An address: 70 % inside a site, 30 % anywhere.
    fn addr(&self, rng: &mut Rng, v6: bool) -> u128 {
        let in_site = rng.pct(70);
        if v6 {
            let low = rng.u128() & (u128::MAX >> 32);
            if in_site { self.v6[rng.below(256) as usize] | low } else { rng.u128() }
        } else {
            let low = (rng.next() as u32) & 0xffff;
            u128::from(if in_site { self.v4[rng.below(256) as usize] | low } else { rng.next() as u32 })
        }
    }
}

/// A prefix length of every possible value, weighted towards what rule
/// sets hold.
fn prefix_len(rng: &mut Rng, v6: bool) -> u8 {
    let r = rng.below(100);
    let (lo, hi) = if v6 {
        match r {
            0..2 => (0, 15),
            2..8 => (16, 31),
            8..25 => (32, 47),
            25..50 => (48, 48),
            50..65 => (49, 63),
            65..85 => (64, 64),
            85..95 => (65, 127),
            _ => (128, 128),
        }
    } else {
        match r {
            0..2 => (0, 7),
            2..10 => (8, 15),
            10..35 => (16, 23),
            35..70 => (24, 24),
            70..85 => (25, 31),
            _ => (32, 32),
        }
    };
    rng.between(lo, hi) as u8
}

fn to_ip(x: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::from(x.to_be_bytes()) } else { IpAddr::from((x as u32).to_be_bytes()) }
}

fn prefix(rng: &mut Rng, sites: &Sites, v6: bool) -> AddrRange {
    let a = sites.addr(rng, v6);
    let len = prefix_len(rng, v6);
    // Cannot fail: the length fits the family.
    AddrRange::prefix(to_ip(a, v6), len).unwrap()
}

const WELL_KNOWN: [u16; 10] = [22, 53, 80, 123, 443, 500, 3389, 4500, 5201, 8443];

fn dst_ports(rng: &mut Rng) -> PortRange {
    match rng.below(100) {
        0..45 => PortRange::single(WELL_KNOWN[rng.below(10) as usize]),
        45..55 => PortRange::single(rng.between(1, 65535) as u16),
        55..65 => {
            let lo = rng.between(1, 60000) as u16;
            PortRange { start: lo, end: lo.saturating_add(rng.between(1, 2048) as u16) }
        }
        _ => PortRange::ANY,
    }
}

fn src_ports(rng: &mut Rng) -> PortRange {
    match rng.below(100) {
        0..8 => PortRange { start: 1024, end: 65535 },
        8..12 => PortRange::single(rng.between(1, 65535) as u16),
        _ => PortRange::ANY,
    }
}

fn dscp(rng: &mut Rng) -> DscpSet {
    match rng.below(100) {
        0..10 => DscpSet(1 << [46u64, 34, 26, 8, 0][rng.below(5) as usize]),
        10..15 => DscpSet(rng.next() | 1),
        _ => DscpSet::ANY,
    }
}

/// One rule of the mix: 60 % IPv4, 40 % IPv6.
fn rule(rng: &mut Rng, sites: &Sites) -> Rule {
    let v6 = rng.pct(40);
    let src = if rng.pct(35) { AddrRange::Any } else { prefix(rng, sites, v6) };
    let dst = prefix(rng, sites, v6);
    let proto = match rng.below(100) {
        0..40 => None,
        40..70 => Some(TCP),
        70..92 => Some(UDP),
        92..97 => Some(if v6 { ICMPV6 } else { ICMP }),
        _ => Some([50u8, 47, 132][rng.below(3) as usize]),
    };
    let (sp, dp) = match proto {
        Some(TCP | UDP) => (src_ports(rng), dst_ports(rng)),
        // Echo request, type 8 / 128, any code.
        Some(ICMP) if rng.pct(50) => (PortRange::ANY, PortRange { start: 0x0800, end: 0x08ff }),
        Some(ICMPV6) if rng.pct(50) => (PortRange::ANY, PortRange { start: 0x8000, end: 0x80ff }),
        _ => (PortRange::ANY, PortRange::ANY),
    };
    let selector = RuleSelector { src, dst, proto, src_ports: sp, dst_ports: dp, dscp: dscp(rng) };
    let action = match rng.below(100) {
        0..60 => Action::Protect(rng.below(64) as u32),
        60..85 => Action::Bypass,
        _ => Action::Drop,
    };
    Rule { selector, action }
}

/// `n` rules; broad ones (destination shorter than /8, or /16 in IPv6)
/// moved to the end in their generated order, as rule sets put exceptions
/// before the catch-alls (otherwise a random early /0 would shadow the rest
/// and most lookups would stop in the first few rules).
fn rules(n: usize, seed: u64) -> Vec<Rule> {
    let mut rng = Rng(seed);
    let sites = Sites::new(&mut rng);
    let all: Vec<Rule> = (0..n).map(|_| rule(&mut rng, &sites)).collect();
    let broad = |r: &Rule| match r.selector.dst {
        AddrRange::V4 { start, end } => end - start >= 1 << 24,
        AddrRange::V6 { start, end } => end - start >= 1 << 112,
        AddrRange::Any => true,
    };
    let (mut narrow, wide): (Vec<Rule>, Vec<Rule>) = all.into_iter().partition(|r| !broad(r));
    narrow.extend(wide);
    narrow
}

/// A value inside `lo..=hi`.
fn inside(rng: &mut Rng, lo: u128, hi: u128) -> u128 {
    let span = hi - lo;
    if span == u128::MAX { rng.u128() } else { lo + rng.u128() % (span + 1) }
}

/// A flow key: 70 % inside a random rule's selector (it may still match an
/// earlier rule first), 30 % drawn like rule addresses with common ports.
fn key(rng: &mut Rng, sites: &Sites, rules: &[Rule]) -> FlowKey {
    if !rules.is_empty() && rng.pct(70) {
        let s = rules[rng.below(rules.len() as u64) as usize].selector;
        let v6 = if s.has_v4() && s.has_v6() { rng.pct(40) } else { s.has_v6() };
        // A rule of the key's family has bounds in it.
        let (sl, sh) = s.src.bounds_for(v6).unwrap_or((0, 0));
        let (dl, dh) = s.dst.bounds_for(v6).unwrap_or((0, 0));
        let proto = s.proto.unwrap_or([TCP, UDP, ICMP][rng.below(3) as usize]);
        let proto = if proto == ICMP && v6 { ICMPV6 } else { proto };
        let port = |rng: &mut Rng, p: PortRange| rng.between(p.start.into(), p.end.into()) as u16;
        let (sp, dp) = match proto {
            TCP | UDP => (Some(port(rng, s.src_ports)), Some(port(rng, s.dst_ports))),
            // ICMP: both "ports" are type << 8 | code.
            ICMP | ICMPV6 => {
                let t = port(rng, s.dst_ports);
                (Some(t), Some(t))
            }
            _ => (None, None),
        };
        let dscp = (0..64u8).cycle().skip(rng.below(64) as usize).take(64).find(|d| s.dscp.contains(*d));
        FlowKey {
            src: to_ip(inside(rng, sl, sh), v6),
            dst: to_ip(inside(rng, dl, dh), v6),
            proto,
            src_port: sp,
            dst_port: dp,
            dscp: dscp.unwrap_or(0),
        }
    } else {
        let v6 = rng.pct(40);
        let proto = [TCP, TCP, UDP, if v6 { ICMPV6 } else { ICMP }][rng.below(4) as usize];
        let dport = WELL_KNOWN[rng.below(10) as usize];
        FlowKey {
            src: to_ip(sites.addr(rng, v6), v6),
            dst: to_ip(sites.addr(rng, v6), v6),
            proto,
            src_port: Some(rng.between(1024, 65535) as u16),
            dst_port: Some(dport),
            dscp: if rng.pct(90) { 0 } else { 46 },
        }
    }
}

fn keys(rules: &[Rule], n: usize, seed: u64) -> Vec<FlowKey> {
    let mut rng = Rng(seed);
    let sites = Sites::new(&mut Rng(1)); // the same sites as the rules
    (0..n).map(|_| key(&mut rng, &sites, rules)).collect()
}

/// Bounds of an address range for one family (the bench's own copy of the
/// crate-private helper).
trait Bounds {
    fn bounds_for(&self, v6: bool) -> Option<(u128, u128)>;
}

impl Bounds for AddrRange {
    fn bounds_for(&self, v6: bool) -> Option<(u128, u128)> {
        match (*self, v6) {
            (AddrRange::Any, false) => Some((0, u128::from(u32::MAX))),
            (AddrRange::Any, true) => Some((0, u128::MAX)),
            (AddrRange::V4 { start, end }, false) => Some((start.into(), end.into())),
            (AddrRange::V6 { start, end }, true) => Some((start, end)),
            _ => None,
        }
    }
}

/// The reference: scan in order, first match wins.
fn linear(rules: &[Rule], default: Action, k: &FlowKey) -> Action {
    rules.iter().find(|r| r.selector.matches(k)).map_or(default, |r| r.action)
}

/// One compiled case with its keys, checked against the linear scan.
struct Case {
    rules: Vec<Rule>,
    spd: Spd,
    keys: Vec<FlowKey>,
    compile: Duration,
    matched: usize,
    mean_index: f64,
}

impl Case {
    fn new(n: usize) -> Case {
        let rules = rules(n, 1);
        let t = Instant::now();
        let spd = Spd::compile(&rules, Action::Drop).expect("the generated rules compile");
        let compile = t.elapsed();
        let keys = keys(&rules, KEYS, 2);
        let (mut matched, mut sum) = (0usize, 0usize);
        for k in &keys {
            let want = linear(&rules, Action::Drop, k);
            assert_eq!(spd.classify(k), want, "compiled SPD disagrees with the linear scan on {k:?}");
            if let Some(i) = spd.first_match(k) {
                matched += 1;
                sum += i;
            }
        }
        let mean_index = if matched == 0 { 0.0 } else { sum as f64 / matched as f64 };
        Case { rules, spd, keys, compile, matched, mean_index }
    }
}

fn criterion_groups(c: &mut Criterion, cases: &[Case]) {
    let mut g = c.benchmark_group("spd");
    for case in cases {
        let n = case.rules.len();
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("classify", n), |b| {
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                case.spd.classify(black_box(&case.keys[i]))
            })
        });
    }
    for case in cases {
        let n = case.rules.len();
        let mut i = 0usize;
        if n >= 10_000 {
            g.sample_size(20);
        }
        g.bench_function(BenchmarkId::new("linear", n), |b| {
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                linear(&case.rules, Action::Drop, black_box(&case.keys[i]))
            })
        });
    }
    g.sample_size(100);
    let big = cases.last().expect("at least one case");
    let mut cache = FlowCache::new(CACHE);
    let hot = &big.keys[..HOT_FLOWS];
    for k in hot {
        cache.classify(&big.spd, k);
    }
    let mut i = 0usize;
    g.bench_function("cache_hit", |b| {
        b.iter(|| {
            i = (i + 1) & (HOT_FLOWS - 1);
            cache.classify(&big.spd, black_box(&hot[i]))
        })
    });
    let mut i = 0usize;
    g.bench_function("cache_miss", |b| {
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            cache.classify(&big.spd, black_box(&big.keys[i]))
        })
    });
    g.finish();
}

/// This thread's CPU time in ns: unlike the wall clock it does not count
/// time the thread was descheduled, which on a shared 2-core machine is
/// most of the noise.
fn cpu_ns() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// Medians over 11 passes of ns per lookup, `n` lookups a pass: (wall
/// clock, thread CPU time).
fn per_packet(n: usize, mut pass: impl FnMut(usize)) -> (f64, f64) {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        let (t, c) = (Instant::now(), cpu_ns());
        pass(n);
        cpu.push((cpu_ns() - c) / n as f64);
        wall.push(t.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut wall), median(&mut cpu))
}

fn table(cases: &[Case]) {
    println!(
        "\nSPD classify, one core, ns per packet, median of 11 passes as wall/CPU time; {KEYS} distinct flow keys"
    );
    println!(
        "{:>7} {:>10} {:>9} {:>8} {:>9} {:>16} {:>20}",
        "rules", "compile", "tables", "matched", "mean idx", "compiled", "linear"
    );
    for case in cases {
        let walk = |n: usize, f: &dyn Fn(&FlowKey) -> Action| {
            for i in 0..n {
                black_box(f(black_box(&case.keys[i & (KEYS - 1)])));
            }
        };
        let (cw, cc) = per_packet(500_000, |n| walk(n, &|k| case.spd.classify(k)));
        let lin_n = (50_000_000 / case.rules.len()).clamp(5_000, 500_000);
        let (lw, lc) = per_packet(lin_n, |n| walk(n, &|k| linear(&case.rules, Action::Drop, k)));
        println!(
            "{:>7} {:>8.1}ms {:>7.1}MB {:>7.1}% {:>9.0} {:>7.1}/{:<7.1}ns {:>9.1}/{:<9.1}ns",
            case.rules.len(),
            case.compile.as_secs_f64() * 1e3,
            case.spd.table_bytes() as f64 / 1e6,
            100.0 * case.matched as f64 / KEYS as f64,
            case.mean_index,
            cw,
            cc,
            lw,
            lc
        );
    }
    let big = cases.last().expect("at least one case");
    let mut cache = FlowCache::new(CACHE);
    let hot = &big.keys[..HOT_FLOWS];
    for k in hot {
        cache.classify(&big.spd, k);
    }
    let before = (cache.hits(), cache.misses());
    let (hw, hc) = per_packet(1_000_000, |n| {
        for i in 0..n {
            black_box(cache.classify(&big.spd, black_box(&hot[i & (HOT_FLOWS - 1)])));
        }
    });
    let (hits, misses) = (cache.hits() - before.0, cache.misses() - before.1);
    let (mw, mc) = per_packet(500_000, |n| {
        for i in 0..n {
            black_box(cache.classify(&big.spd, black_box(&big.keys[i & (KEYS - 1)])));
        }
    });
    println!(
        "flow cache ({CACHE} entries) in front of {} rules: hit {hw:.1}/{hc:.1}ns ({HOT_FLOWS} flows, \
         {:.2}% hits), miss+insert {mw:.1}/{mc:.1}ns ({KEYS} flows)",
        big.rules.len(),
        100.0 * hits as f64 / (hits + misses) as f64
    );
}

/// `--lookups N [--rules R]`: compile the R-rule case (default 10,000)
/// and run N lookups over its keys, nothing else (no linear check, no
/// timing), for deterministic counts: run it under `valgrind
/// --tool=cachegrind` for two values of N and take the difference.
fn lookups_only(args: &[String]) -> bool {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let Some(n) = arg("--lookups") else { return false };
    let rules = rules(arg("--rules").unwrap_or(10_000), 1);
    let spd = Spd::compile(&rules, Action::Drop).expect("the generated rules compile");
    let keys = keys(&rules, KEYS, 2);
    let mut protect = 0usize;
    for i in 0..n {
        protect += usize::from(matches!(spd.classify(black_box(&keys[i & (KEYS - 1)])), Action::Protect(_)));
    }
    println!("{n} lookups, {protect} protected, tables {} bytes", spd.table_bytes());
    true
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if lookups_only(&args) {
        return;
    }
    let cases: Vec<Case> = SIZES.iter().map(|&n| Case::new(n)).collect();
    if !std::env::args().any(|a| a == "--table-only") {
        let mut c = Criterion::default().configure_from_args();
        criterion_groups(&mut c, &cases);
        c.final_summary();
    }
    table(&cases);
}
