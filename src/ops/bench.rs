//! `esptun bench`: the whole packet pipeline in-process (synthetic inner
//! packets → SPD → gateway pick → PMTU → ESP seal → ESP open), no kernel
//! I/O, for 1..N worker threads and several packet sizes.
//!
//! Each worker owns a sending and a receiving [`Engine`] with its own SAs
//! (as SPI steering gives each worker its own inbound SAs), pinned to one
//! core. Efficiency compares the pipeline's packet rate on one worker with
//! the raw AEAD sealing and opening the same bytes on one core, so it shows
//! what everything but the cipher costs.

use crate::crypto::{self, AeadAlg, Backend, KeyMaterial};
use crate::engine::{Engine, EngineConfig, InVerdict, OutVerdict, Update};
use crate::esp::{InboundSa, OutboundSa, OuterPath, PacketBuf, SaConfig};
use crate::policy::multipath::{GatewayGroup, GatewaySpec, gateway_id};
use crate::policy::spd::{Action, AddrRange, Rule, RuleSelector, Spd};
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// AEAD to use.
    pub alg: AeadAlg,
    /// AEAD backend.
    pub backend: Backend,
    /// Worker counts to try (each a separate run).
    pub workers: Vec<usize>,
    /// Inner packet sizes in bytes (28..=9000).
    pub sizes: Vec<usize>,
    /// Duration of each run.
    pub duration: Duration,
    /// Packets per batch.
    pub batch: usize,
    /// Print a live progress line to stderr.
    pub progress: bool,
}

/// One result row.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// Worker threads.
    pub workers: usize,
    /// Inner packet size.
    pub size: usize,
    /// Million packets per second (each sealed and opened).
    pub mpps: f64,
    /// Inner Gbit/s.
    pub gbps: f64,
    /// Pipeline rate per worker / raw AEAD seal+open rate on one core.
    pub efficiency: f64,
}

/// Builds a synthetic IPv4/UDP packet of `len` bytes from flow `flow`.
fn packet(len: usize, flow: u16) -> Vec<u8> {
    let len = len.clamp(28, 9000);
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[198, 51, 100, 1]);
    p[16..20].copy_from_slice(&[203, 0, 113, 1]);
    let c = crate::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&(10_000 + flow).to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p
}

/// A sending and a receiving engine wired with one SA pair (SPI base
/// `spi`), MTU large enough for every size.
fn engines(alg: AeadAlg, backend: Backend, spi: u32) -> (Engine, Engine) {
    let rules = [Rule {
        selector: RuleSelector::addrs(
            AddrRange::prefix(IpAddr::from([198, 51, 100, 0]), 24).expect("valid prefix"),
            AddrRange::prefix(IpAddr::from([203, 0, 113, 0]), 24).expect("valid prefix"),
        ),
        action: Action::Protect(0),
    }];
    let spd = Arc::new(Spd::compile(&rules, Action::Drop).expect("static policy compiles"));
    let group = Arc::new(
        GatewayGroup::new(&[GatewaySpec { id: gateway_id(b"gw"), weight: 1 }]).expect("one gateway"),
    );
    let cfg = EngineConfig { path_mtu: 9216, ..EngineConfig::default() };
    let mut a = Engine::new(cfg.clone(), spd.clone());
    let mut b = Engine::new(cfg, spd);
    a.apply(Update::Child { id: 0, group, symmetric: false });
    let km: Vec<u8> = (0..alg.keymat_len()).map(|i| i as u8 ^ spi as u8).collect();
    let path = OuterPath {
        local: IpAddr::from([192, 0, 2, 1]),
        remote: IpAddr::from([192, 0, 2, 2]),
        encap: Some((4500, 4500)),
    };
    let mut sa = SaConfig::new(spi, alg, KeyMaterial::new(alg, &km).expect("key length"), path);
    sa.backend = backend;
    sa.esn = true;
    a.apply(Update::outbound(0, 0, Arc::new(OutboundSa::new(sa.clone()).expect("valid SA"))));
    b.apply(Update::Inbound(Box::new(InboundSa::new(sa).expect("valid SA"))));
    (a, b)
}

/// Raw AEAD seal+open pairs per second on this core for `size` bytes.
fn raw_rate(alg: AeadAlg, backend: Backend, size: usize, dur: Duration) -> f64 {
    let km: Vec<u8> = (0..alg.keymat_len() as u8).collect();
    let Ok(aead) = crypto::new_aead(backend, alg, &km) else { return 0.0 };
    let mut buf = vec![0u8; size + 16];
    let aad = [0u8; 8];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            let iv = n.to_be_bytes();
            let (pt, tag) = buf.split_at_mut(size);
            if let Ok(icv) = aead.seal_in_place(&iv, &aad, pt) {
                tag.copy_from_slice(&icv);
            }
            let _ = aead.open_in_place(&iv, &aad, &mut buf);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn worker(cfg: &BenchConfig, size: usize, id: usize, stop: &AtomicBool, done: &AtomicU64) -> u64 {
    let (mut a, mut b) = engines(cfg.alg, cfg.backend, 0x1000 + id as u32);
    let templates: Vec<Vec<u8>> = (0..cfg.batch as u16).map(|f| packet(size, f)).collect();
    let mut bufs: Vec<PacketBuf> = templates.iter().map(|t| PacketBuf::from_packet(t)).collect();
    let mut out = vec![OutVerdict::Bypass; cfg.batch];
    let mut res = vec![InVerdict::Control; cfg.batch];
    let mut packets = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for (buf, t) in bufs.iter_mut().zip(&templates) {
            // The copy stands in for the TUN read.
            let _ = buf.set(t);
        }
        a.outbound_batch(&mut bufs, &mut out);
        b.inbound_batch(&mut bufs, &[], &mut res);
        let ok = res.iter().filter(|r| **r == InVerdict::Deliver).count() as u64;
        packets += ok;
        done.fetch_add(ok, Ordering::Relaxed);
    }
    packets
}

/// Runs every (workers, size) combination and returns the rows.
pub fn run(cfg: &BenchConfig) -> Vec<BenchRow> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut rows = Vec::new();
    for &size in &cfg.sizes {
        let raw = raw_rate(cfg.alg, cfg.backend, size, cfg.duration.min(Duration::from_secs(1)));
        for &n in &cfg.workers {
            let stop = AtomicBool::new(false);
            let done = AtomicU64::new(0);
            let start = Instant::now();
            let total: u64 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..n)
                    .map(|i| {
                        let core = cores.get(i % cores.len().max(1)).copied();
                        let (stop, done) = (&stop, &done);
                        s.spawn(move || {
                            if let Some(c) = core {
                                core_affinity::set_for_current(c);
                            }
                            worker(cfg, size, i, stop, done)
                        })
                    })
                    .collect();
                while start.elapsed() < cfg.duration {
                    std::thread::sleep(Duration::from_millis(200));
                    if cfg.progress {
                        let t = start.elapsed().as_secs_f64();
                        let p = done.load(Ordering::Relaxed) as f64;
                        eprint!(
                            "\r  {n} worker(s), {size} B: {:5.1}s  {:7.3} Mpps  {:7.2} Gbit/s   ",
                            t,
                            p / t / 1e6,
                            p * size as f64 * 8.0 / t / 1e9
                        );
                        let _ = std::io::stderr().flush();
                    }
                }
                stop.store(true, Ordering::Relaxed);
                handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            });
            let secs = start.elapsed().as_secs_f64();
            if cfg.progress {
                eprint!("\r{:70}\r", "");
            }
            let pps = total as f64 / secs;
            rows.push(BenchRow {
                workers: n,
                size,
                mpps: pps / 1e6,
                gbps: pps * size as f64 * 8.0 / 1e9,
                efficiency: if raw > 0.0 { pps / n as f64 / raw } else { 0.0 },
            });
        }
    }
    rows
}

/// Formats rows as a table, with scaling relative to one worker.
pub fn table(cfg: &BenchConfig, rows: &[BenchRow]) -> String {
    let mut s = format!(
        "esptun bench: {} ({}), batch {}, {:.1}s per run; each packet sealed and opened\n",
        cfg.alg.name(),
        cfg.backend.name(),
        cfg.batch,
        cfg.duration.as_secs_f64()
    );
    s.push_str(&format!(
        "{:>7} {:>6} {:>9} {:>10} {:>11} {:>8}\n",
        "workers", "bytes", "Mpps", "Gbit/s", "efficiency", "scaling"
    ));
    for r in rows {
        let one = rows.iter().find(|o| o.size == r.size && o.workers == 1).map(|o| o.mpps);
        let scaling = one.map_or(String::from("-"), |o| format!("{:.2}", r.mpps / (o * r.workers as f64)));
        s.push_str(&format!(
            "{:>7} {:>6} {:>9.3} {:>10.2} {:>11.2} {:>8}\n",
            r.workers, r.size, r.mpps, r.gbps, r.efficiency, scaling
        ));
    }
    s.push_str("efficiency = per-worker rate / raw AEAD seal+open rate on one core; scaling = rate / (workers x 1-worker rate)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_run_moves_packets() {
        let cfg = BenchConfig {
            alg: AeadAlg::AesGcm128,
            backend: Backend::default(),
            workers: vec![1],
            sizes: vec![200],
            duration: Duration::from_millis(300),
            batch: 16,
            progress: false,
        };
        let rows = run(&cfg);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].mpps > 0.0);
        assert!(rows[0].efficiency > 0.0);
        assert!(table(&cfg, &rows).contains("200"));
    }
}
