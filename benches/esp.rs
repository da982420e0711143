//! ESP seal/open next to the raw AEAD on the same buffer sizes, per
//! algorithm and backend, plus the replay window.
//!
//! `cargo bench --bench esp` runs the criterion groups and then prints a
//! table of ESP/raw throughput ratios (the goal: >= 0.9 at 1420 B).
//! `cargo bench --bench esp -- --ratios-only` prints just the table.
//!
//! Both sides do the same work per iteration apart from ESP itself: the raw
//! AEAD seals the same number of bytes in place (the inner packet plus the
//! ESP trailer it would carry), and ESP restores only the 20-byte inner
//! header between iterations (the rest of the buffer may be ciphertext:
//! seal only reads the inner header).

use criterion::{BenchmarkId, Criterion, Throughput};
use esptun::crypto::{self, AeadAlg, Backend, KeyMaterial};
use esptun::esp::{Framing, InboundSa, OutboundSa, OuterPath, PacketBuf, ReplayWindow, SaConfig};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [64, 512, 1420, 8950];

fn inner_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[198, 51, 100, 1]);
    p[16..20].copy_from_slice(&[203, 0, 113, 1]);
    let c = esptun::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn sa_pair(alg: AeadAlg, backend: Backend) -> (OutboundSa, InboundSa) {
    let km: Vec<u8> = (0..alg.keymat_len() as u8).collect();
    let path = OuterPath {
        local: "192.0.2.1".parse().unwrap(),
        remote: "192.0.2.2".parse().unwrap(),
        encap: Some((4500, 4500)),
    };
    let mut c = SaConfig::new(0x1234_5678, alg, KeyMaterial::new(alg, &km).unwrap(), path);
    c.backend = backend;
    c.replay_window = 1024;
    (OutboundSa::new(c.clone()).unwrap(), InboundSa::new(c).unwrap())
}

/// Plaintext bytes ESP encrypts for an inner packet of `len` bytes.
fn esp_pt_len(len: usize) -> usize {
    (len + 2).div_ceil(4) * 4
}

fn raw_aead(alg: AeadAlg, backend: Backend) -> Box<dyn crypto::Aead> {
    let km: Vec<u8> = (0..alg.keymat_len() as u8).collect();
    crypto::new_aead(backend, alg, &km).unwrap()
}

/// One measured operation, run `iters` times; returns ns per op.
struct Cases {
    alg: AeadAlg,
    backend: Backend,
    size: usize,
}

impl Cases {
    fn raw_seal(&self, iters: u64) -> Duration {
        let aead = raw_aead(self.alg, self.backend);
        let mut buf = vec![0u8; esp_pt_len(self.size)];
        let aad = [0u8; 8];
        let start = Instant::now();
        for i in 0..iters {
            let icv = aead.seal_in_place(&i.to_be_bytes(), &aad, &mut buf).unwrap();
            black_box(icv);
        }
        start.elapsed()
    }

    fn esp_seal(&self, iters: u64) -> Duration {
        let (out, _) = sa_pair(self.alg, self.backend);
        let pkt = inner_packet(self.size);
        let mut buf = PacketBuf::from_packet(&pkt);
        let start = Instant::now();
        for _ in 0..iters {
            out.seal(&mut buf, Framing::Esp).unwrap();
            black_box(buf.data());
            // Back to the inner range; restore the inner header only.
            buf.trim_front(16);
            buf.truncate(self.size);
            buf.data_mut()[..20].copy_from_slice(&pkt[..20]);
        }
        start.elapsed()
    }

    /// Opens `n` packets, sealed beforehand in chunks outside the timing
    /// (so memory stays bounded); sequence numbers keep rising across
    /// chunks, so the replay window does real work.
    fn esp_open(&self, n: usize) -> Duration {
        let (out, mut inb) = sa_pair(self.alg, self.backend);
        let pkt = inner_packet(self.size);
        let mut bufs: Vec<PacketBuf> = (0..CHUNK.min(n)).map(|_| PacketBuf::from_packet(&pkt)).collect();
        let mut total = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            for b in &mut bufs[..k] {
                b.set(&pkt).unwrap();
                out.seal(b, Framing::Esp).unwrap();
            }
            let start = Instant::now();
            for b in &mut bufs[..k] {
                inb.open(b, 0).unwrap();
            }
            total += start.elapsed();
            left -= k;
        }
        total
    }

    fn raw_open(&self, n: usize) -> Duration {
        let aead = raw_aead(self.alg, self.backend);
        let aad = [0u8; 8];
        let plain = vec![0u8; esp_pt_len(self.size)];
        let mut bufs: Vec<Vec<u8>> =
            (0..CHUNK.min(n)).map(|_| Vec::with_capacity(plain.len() + 16)).collect();
        let mut total = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            for (i, v) in bufs[..k].iter_mut().enumerate() {
                v.clear();
                v.extend_from_slice(&plain);
                let icv = aead.seal_in_place(&(i as u64).to_be_bytes(), &aad, v).unwrap();
                v.extend_from_slice(&icv);
            }
            let start = Instant::now();
            for (i, v) in bufs[..k].iter_mut().enumerate() {
                aead.open_in_place(&(i as u64).to_be_bytes(), &aad, v).unwrap();
            }
            total += start.elapsed();
            left -= k;
        }
        total
    }
}

/// Packets sealed ahead of each timed open loop.
const CHUNK: usize = 256;

fn criterion_groups(c: &mut Criterion) {
    for &backend in Backend::ALL {
        for &alg in &AeadAlg::ALL {
            let mut g = c.benchmark_group(format!("seal/{}/{}", backend.name(), alg.name()));
            g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
            for size in SIZES {
                let cs = Cases { alg, backend, size };
                g.throughput(Throughput::Bytes(size as u64));
                g.bench_with_input(BenchmarkId::new("raw", size), &size, |b, _| {
                    b.iter_custom(|n| cs.raw_seal(n))
                });
                g.bench_with_input(BenchmarkId::new("esp", size), &size, |b, _| {
                    b.iter_custom(|n| cs.esp_seal(n))
                });
            }
            g.finish();
            let mut g = c.benchmark_group(format!("open/{}/{}", backend.name(), alg.name()));
            g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
            for size in SIZES {
                let cs = Cases { alg, backend, size };
                g.throughput(Throughput::Bytes(size as u64));
                g.bench_with_input(BenchmarkId::new("raw", size), &size, |b, _| {
                    b.iter_custom(|n| cs.raw_open(n as usize))
                });
                g.bench_with_input(BenchmarkId::new("esp", size), &size, |b, _| {
                    b.iter_custom(|n| cs.esp_open(n as usize))
                });
            }
            g.finish();
        }
    }
    let mut g = c.benchmark_group("replay");
    for window in [1024u32, 8192] {
        g.bench_function(BenchmarkId::new("in_order", window), |b| {
            let mut w = ReplayWindow::new(window, true).unwrap();
            let mut s = 0u32;
            b.iter(|| {
                s = s.wrapping_add(1).max(1);
                black_box(w.check_and_commit(s)).ok();
            })
        });
        g.bench_function(BenchmarkId::new("reordered", window), |b| {
            let mut w = ReplayWindow::new(window, false).unwrap();
            let mut s = 0u32;
            b.iter(|| {
                s = s.wrapping_add(1);
                // Every second packet swapped with its neighbour.
                let seq = if s % 2 == 0 { s + 1 } else { s - 1 }.max(1);
                black_box(w.check_and_commit(seq)).ok();
            })
        });
    }
    g.finish();
}

/// Median-of-5 ratio table, one line per (backend, alg, size).
fn ratio_table() {
    println!("\nESP vs raw AEAD, one core (median of 5 runs); ratio = ESP throughput / raw throughput");
    println!(
        "{:<12} {:<18} {:>6} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6}",
        "backend", "alg", "bytes", "raw seal", "esp seal", "ratio", "raw open", "esp open", "ratio"
    );
    for &backend in Backend::ALL {
        for &alg in &AeadAlg::ALL {
            for size in SIZES {
                let cs = Cases { alg, backend, size };
                let n = (20_000_000 / size).clamp(2_000, 200_000);
                let med = |f: &dyn Fn() -> Duration| {
                    let mut v: Vec<f64> = (0..5).map(|_| f().as_secs_f64()).collect();
                    v.sort_by(f64::total_cmp);
                    v[2]
                };
                let gbps = |t: f64| (n * size) as f64 / t / 1e9;
                let rs = med(&|| cs.raw_seal(n as u64));
                let es = med(&|| cs.esp_seal(n as u64));
                let ro = med(&|| cs.raw_open(n));
                let eo = med(&|| cs.esp_open(n));
                println!(
                    "{:<12} {:<18} {:>6} {:>8.2}GB {:>8.2}GB {:>6.2} {:>8.2}GB {:>8.2}GB {:>6.2}",
                    backend.name(),
                    alg.name(),
                    size,
                    gbps(rs),
                    gbps(es),
                    rs / es,
                    gbps(ro),
                    gbps(eo),
                    ro / eo
                );
            }
        }
    }
}

fn main() {
    let ratios_only = std::env::args().any(|a| a == "--ratios-only");
    if !ratios_only {
        let mut c = Criterion::default().configure_from_args();
        criterion_groups(&mut c);
        c.final_summary();
    }
    ratio_table();
}
