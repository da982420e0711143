//! One worker thread: joins a TUN queue and a UDP socket (through either
//! I/O backend) to an [`Engine`], batch by batch.
//!
//! The loop, per turn: apply the control thread's [`Update`]s (between
//! batches, never inside one), read a batch from the TUN queue and let the
//! engine seal it, send the ESP packets; receive a batch from UDP, let the
//! engine open it, write the inner packets to the TUN queue. When neither
//! fd had anything, block in [`PacketIo::wait`] (with a timeout, so updates
//! and the stop flag are seen).
//!
//! Buffers never move or get copied on the common path: a slot of a
//! [`PacketBatch`] is an ESP [`PacketBuf`](crate::esp::PacketBuf) with
//! headroom, the engine seals or opens it in place, and slots are reordered
//! by swapping pointers so what goes out is contiguous. Only rare packets
//! (ICMP errors for the sender, IPv4 fragments, IKE for the control thread)
//! are copied into small side batches.
//!
//! This module makes no protocol decision: it acts on the engine's verdicts.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

mod moves;

use moves::{fill_segments, hand_to_control, push_tun, send_all, send_gso, write_all_tun, write_coalesced};

use super::backend::{AnyIo, Interest, PacketIo};
use super::batch::{PacketBatch, PacketMeta};
use super::offload::{Coalescer, MAX_SUPER};
use super::vnet::VNET_HDR_LEN;
use crate::engine::{Counters, Engine, InVerdict, OutVerdict, Update};
use crate::esp::buf::{DEFAULT_CAPACITY, HEADROOM};

/// How long one blocked send waits for room before dropping the rest.
const SEND_PATIENCE: Duration = Duration::from_millis(20);
/// How often a worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Longest sleep in `wait` (bounds the delay to see updates and stop).
const WAIT_TIMEOUT: Duration = Duration::from_millis(50);

/// ICMP errors a worker sends per second at most, and the burst (Linux's
/// defaults: net.ipv4.icmp_msgs_per_sec = 1000, icmp_msgs_burst = 50).
const ICMP_PER_SEC: f64 = 1000.0;
/// See [`ICMP_PER_SEC`].
const ICMP_BURST: f64 = 50.0;

/// A token bucket (time passed in, so it is testable without a clock).
#[derive(Clone, Copy, Debug)]
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket { tokens: burst, rate, burst, last: now }
    }

    /// Takes one token if there is one at `now`.
    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Settings of one worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Worker index (its inbound SAs have `SPI mod N == index`).
    pub index: usize,
    /// Packets per batch.
    pub batch: usize,
    /// Core to pin the thread to.
    pub core: Option<core_affinity::CoreId>,
    /// The TUN queue carries virtio headers: split TSO super-packets
    /// before sealing and coalesce TCP segments before writing.
    pub vnet: bool,
    /// The UDP socket has UDP_SEGMENT: send equal-size ESP packets to one
    /// peer as one GSO datagram.
    pub gso: bool,
    /// The UDP socket has UDP_GRO: split coalesced datagrams before opening.
    pub gro: bool,
}

/// What the I/O layer itself dropped (the engine counts its own drops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Batches read from the TUN queue.
    pub tun_batches: u64,
    /// Batches received from UDP.
    pub udp_batches: u64,
    /// UDP datagrams that could not be sent (error or no room in time).
    pub udp_send_drops: u64,
    /// Packets that could not be written to the TUN queue.
    pub tun_write_drops: u64,
    /// Packets the policy bypasses but that reached the TUN device anyway
    /// (routing sent them here): dropped, since esptun has no clear path.
    pub bypass_on_tun: u64,
    /// Datagrams longer than a slot (cut by the kernel): dropped.
    pub truncated: u64,
    /// IKE datagrams dropped because the control queue was full.
    pub control_queue_full: u64,
    /// TUN packets with a virtio header esptun cannot split.
    pub offload_malformed: u64,
    /// UDP GSO sends (each several ESP packets).
    pub gso_sends: u64,
    /// TUN writes that carried a coalesced TCP super-packet.
    pub gro_writes: u64,
    /// ICMP "too big" errors not sent: over the rate limit.
    pub icmp_ratelimited: u64,
    /// TCP super-packets (TSO) read from the TUN and split.
    pub tso_packets: u64,
    /// UDP super-packets (USO) read from the TUN and split.
    pub uso_packets: u64,
    /// io_uring multishot receives the kernel ended because the provided
    /// buffer ring ran dry (re-armed at once; packets wait in the socket or
    /// TUN queue meanwhile, nothing is lost). Zero on the syscall backend.
    pub ring_nobufs: u64,
}

impl IoCounters {
    /// Adds another worker's counters to these.
    pub fn merge(&mut self, o: &IoCounters) {
        self.tun_batches += o.tun_batches;
        self.udp_batches += o.udp_batches;
        self.udp_send_drops += o.udp_send_drops;
        self.tun_write_drops += o.tun_write_drops;
        self.bypass_on_tun += o.bypass_on_tun;
        self.truncated += o.truncated;
        self.control_queue_full += o.control_queue_full;
        self.offload_malformed += o.offload_malformed;
        self.gso_sends += o.gso_sends;
        self.gro_writes += o.gro_writes;
        self.icmp_ratelimited += o.icmp_ratelimited;
        self.tso_packets += o.tso_packets;
        self.uso_packets += o.uso_packets;
        self.ring_nobufs += o.ring_nobufs;
    }

    /// The drop counters as (label, count).
    pub fn drops(&self) -> [(&'static str, u64); 7] {
        [
            ("udp_send", self.udp_send_drops),
            ("tun_write", self.tun_write_drops),
            ("bypass_on_tun", self.bypass_on_tun),
            ("truncated", self.truncated),
            ("control_queue_full", self.control_queue_full),
            ("offload_malformed", self.offload_malformed),
            ("icmp_ratelimited", self.icmp_ratelimited),
        ]
    }
}

/// A worker's published counters (copied every `PUBLISH_EVERY` (100 ms)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// The engine's counters.
    pub engine: Counters,
    /// The I/O layer's counters.
    pub io: IoCounters,
    /// (SPI, inner bytes, packets) of this worker's inbound SAs.
    pub inbound: Vec<(u32, u64, u64)>,
}

impl WorkerStats {
    /// Adds another worker's stats to these.
    pub fn merge(&mut self, o: &WorkerStats) {
        self.engine.merge(&o.engine);
        self.io.merge(&o.io);
        self.inbound.extend_from_slice(&o.inbound);
        self.inbound.sort_unstable();
    }
}

/// An IKE datagram (behind the non-ESP marker) for the control thread.
#[derive(Clone, Debug)]
pub struct ControlDatagram {
    /// The sender.
    pub from: SocketAddr,
    /// The UDP payload, marker included.
    pub bytes: Vec<u8>,
}

/// Everything a worker thread owns.
pub struct Worker {
    cfg: WorkerConfig,
    io: AnyIo,
    engine: Engine,
    updates: Receiver<Update>,
    control: Option<Sender<ControlDatagram>>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<WorkerStats>>,
    counters: IoCounters,
    /// TUN reads (super-packets behind virtio headers when `vnet`).
    tun_in: PacketBatch,
    /// `vnet`: segments split from `tun_in`, sealed in place.
    seg: PacketBatch,
    /// UDP receives (GRO-coalesced when `gro`).
    udp_in: PacketBatch,
    /// `gro`: datagrams split from `udp_in`, opened in place.
    open: PacketBatch,
    /// `gso`: ESP packets concatenated per peer for UDP_SEGMENT sends.
    gso_out: PacketBatch,
    /// `vnet`: TUN writes (virtio header + packet or super-packet).
    tun_out: PacketBatch,
    coalescer: Coalescer,
    icmp: TokenBucket,
    side: PacketBatch,
    out_v: Vec<OutVerdict>,
    in_v: Vec<InVerdict>,
    ecn: Vec<u8>,
}

impl Worker {
    /// A worker over `io` (one UDP socket and one TUN queue) and `engine`.
    /// `stats` receives its counters; `control` gets IKE datagrams.
    pub fn new(
        cfg: WorkerConfig,
        io: AnyIo,
        engine: Engine,
        updates: Receiver<Update>,
        control: Option<Sender<ControlDatagram>>,
        stop: Arc<AtomicBool>,
        stats: Arc<Mutex<WorkerStats>>,
    ) -> Worker {
        let b = cfg.batch.max(1);
        let big = MAX_SUPER + VNET_HDR_LEN + HEADROOM + 64;
        let small = |n: usize| PacketBatch::with_headroom(n, DEFAULT_CAPACITY, HEADROOM);
        let sized = |on: bool, n: usize, len: usize| {
            PacketBatch::with_headroom(if on { n } else { 1 }, len, HEADROOM)
        };
        Worker {
            io,
            engine,
            updates,
            control,
            stop,
            stats,
            counters: IoCounters::default(),
            tun_in: PacketBatch::with_headroom(b, if cfg.vnet { big } else { DEFAULT_CAPACITY }, HEADROOM),
            seg: sized(cfg.vnet, b, DEFAULT_CAPACITY),
            udp_in: PacketBatch::with_headroom(b, if cfg.gro { big } else { DEFAULT_CAPACITY }, HEADROOM),
            open: sized(cfg.gro, b, DEFAULT_CAPACITY),
            gso_out: sized(cfg.gso, 8, big),
            tun_out: sized(cfg.vnet, 8, big),
            coalescer: Coalescer::default(),
            icmp: TokenBucket::new(ICMP_PER_SEC, ICMP_BURST, Instant::now()),
            side: small(b.max(8)),
            out_v: vec![OutVerdict::Bypass; b],
            in_v: vec![InVerdict::Control; b],
            ecn: vec![0; b],
            cfg,
        }
    }

    /// Runs until the stop flag is set; returns the final counters. An I/O
    /// error that is not about one packet ends the worker with that error.
    pub fn run(self) -> io::Result<WorkerStats> {
        self.run_then(|| {})
    }

    /// [`run`](Self::run), calling `ready` once the thread is pinned to its
    /// CPU, before the first batch (so a caller can say "up" truthfully).
    pub fn run_then(mut self, ready: impl FnOnce()) -> io::Result<WorkerStats> {
        if let Some(core) = self.cfg.core {
            core_affinity::set_for_current(core);
        }
        ready();
        let mut last_publish = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(u) = self.updates.try_recv() {
                self.engine.apply(u);
            }
            let (nt, nu) = self.io.read_both(&mut self.tun_in, &mut self.udp_in)?;
            let busy = nt > 0 || nu > 0;
            if nt > 0 {
                self.outbound()?;
            }
            if nu > 0 {
                self.inbound()?;
            }
            if last_publish.elapsed() >= PUBLISH_EVERY {
                self.publish();
                last_publish = Instant::now();
            }
            if !busy {
                self.io.wait(Interest::READ, Some(WAIT_TIMEOUT))?;
            }
        }
        while let Ok(u) = self.updates.try_recv() {
            self.engine.apply(u);
        }
        self.publish();
        Ok(self.snapshot())
    }

    fn snapshot(&self) -> WorkerStats {
        let mut inbound = Vec::new();
        self.engine.inbound_usage(&mut inbound);
        WorkerStats { engine: self.engine.counters().clone(), io: self.io_counters(), inbound }
    }

    /// The I/O counters, with the backend's own (ring exhaustion) filled in.
    fn io_counters(&self) -> IoCounters {
        IoCounters { ring_nobufs: self.io.ring_nobufs(), ..self.counters }
    }

    /// Copies the counters out (every `PUBLISH_EVERY` (100 ms), not per packet;
    /// the lock is uncontended but for the control thread's reads).
    fn publish(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.engine.clone_from(self.engine.counters());
            s.io = self.io_counters();
            self.engine.inbound_usage(&mut s.inbound);
        }
    }

    /// TUN batch → (split) → seal → UDP.
    fn outbound(&mut self) -> io::Result<()> {
        self.counters.tun_batches += 1;
        if !self.cfg.vnet {
            self.seal_send(false)?;
            self.tun_in.clear();
            return Ok(());
        }
        // Split super-packets into the segment batch; seal whenever full.
        let n = self.tun_in.len();
        self.seg.clear();
        let (mut i, mut s) = (0, 0);
        while i < n {
            if self.seg.len() == self.seg.capacity() {
                self.seal_send(true)?;
                self.seg.clear();
            }
            let Some(p) = self.tun_in.packet(i) else { break };
            match fill_segments(p, s, &mut self.seg, &mut self.counters) {
                Ok(Some(next)) => s = next,
                Ok(None) => (i, s) = (i + 1, 0),
                Err(_) => {
                    self.counters.offload_malformed += 1;
                    (i, s) = (i + 1, 0);
                }
            }
        }
        self.seal_send(true)?;
        self.seg.clear();
        self.tun_in.clear();
        Ok(())
    }

    /// Seals the inner packets of `tun_in` (or `seg`) in place and sends
    /// them: ESP packets by UDP (GSO when it can), ICMP errors to the TUN.
    fn seal_send(&mut self, from_seg: bool) -> io::Result<()> {
        let batch = if from_seg { &mut self.seg } else { &mut self.tun_in };
        let n = batch.len();
        self.engine.outbound_batch(batch.bufs_mut(), &mut self.out_v[..n]);
        batch.sync_meta();
        // Sends to the front (pointer swaps); ICMP errors to the side batch.
        let mut k = 0;
        self.side.clear();
        for i in 0..n {
            match self.out_v[i] {
                OutVerdict::Send { to, port, tos } => {
                    if let Some(m) = batch.meta_mut(i) {
                        m.addr = SocketAddr::new(to, port);
                        m.tos = tos;
                        m.segment_size = 0;
                    }
                    batch.swap(i, k);
                    k += 1;
                }
                OutVerdict::Reply => {
                    // The clock is read only here, on the rare error path.
                    if !self.icmp.take(Instant::now()) {
                        self.counters.icmp_ratelimited += 1;
                    } else if let Some(p) = batch.packet(i) {
                        push_tun(&mut self.side, p, self.cfg.vnet);
                    }
                }
                OutVerdict::Bypass => self.counters.bypass_on_tun += 1,
                OutVerdict::Drop(_) => {}
            }
        }
        batch.set_len(k);
        if self.cfg.gso {
            send_gso(&mut self.io, batch, &mut self.gso_out, &mut self.counters)?;
        } else {
            send_all(&mut self.io, batch, &mut self.counters.udp_send_drops)?;
        }
        if !self.side.is_empty() {
            write_all_tun(&mut self.io, &self.side, &mut self.counters.tun_write_drops)?;
            self.side.clear();
        }
        // IPv4 fragments beyond the first (rare): copied into the side batch.
        if !self.engine.extra().is_empty() {
            for (buf, v) in self.engine.extra().iter() {
                if let OutVerdict::Send { to, port, tos } = *v {
                    let meta = PacketMeta { addr: SocketAddr::new(to, port), tos, ..PacketMeta::EMPTY };
                    if !self.side.push(buf.data(), meta) {
                        self.counters.udp_send_drops += 1;
                    }
                }
            }
            self.engine.recycle_extra();
            send_all(&mut self.io, &self.side, &mut self.counters.udp_send_drops)?;
            self.side.clear();
        }
        Ok(())
    }

    /// UDP batch → (split GRO) → open → (coalesce) → TUN.
    fn inbound(&mut self) -> io::Result<()> {
        self.counters.udp_batches += 1;
        let n = self.udp_in.len();
        for i in 0..n {
            if let Some(m) = self.udp_in.meta_mut(i)
                && m.truncated
            {
                // An empty packet is then dropped as truncated by the engine.
                self.counters.truncated += 1;
                (m.len, m.segment_size) = (0, 0);
            }
        }
        if !self.cfg.gro {
            self.open_deliver(false)?;
            self.udp_in.clear();
            return Ok(());
        }
        self.open.clear();
        for i in 0..n {
            let mut at = 0;
            loop {
                if self.open.len() == self.open.capacity() {
                    self.open_deliver(true)?;
                    self.open.clear();
                }
                let (Some(p), Some(m)) = (self.udp_in.packet(i), self.udp_in.meta(i)) else { break };
                let seg = if m.segment_size == 0 { p.len().max(1) } else { usize::from(m.segment_size) };
                let Some(chunk) = p.get(at..(at + seg).min(p.len())).filter(|c| !c.is_empty()) else { break };
                let meta = PacketMeta { segment_size: 0, ..*m };
                if !self.open.push(chunk, meta) {
                    self.counters.truncated += 1;
                }
                at += seg;
            }
        }
        self.open_deliver(true)?;
        self.open.clear();
        self.udp_in.clear();
        Ok(())
    }

    /// Opens `udp_in` (or `open`) in place and writes the inner packets.
    fn open_deliver(&mut self, from_open: bool) -> io::Result<()> {
        let batch = if from_open { &mut self.open } else { &mut self.udp_in };
        let n = batch.len();
        for i in 0..n {
            self.ecn[i] = batch.meta(i).map_or(0, |m| m.tos & 0x03);
        }
        self.engine.inbound_batch(batch.bufs_mut(), &self.ecn[..n], &mut self.in_v[..n]);
        batch.sync_meta();
        let mut k = 0;
        for i in 0..n {
            match self.in_v[i] {
                InVerdict::Deliver => {
                    batch.swap(i, k);
                    k += 1;
                }
                InVerdict::Control => {
                    if let (Some(tx), Some(p), Some(m)) = (&self.control, batch.packet(i), batch.meta(i)) {
                        hand_to_control(tx, m.addr, p, &mut self.counters);
                    }
                }
                InVerdict::Drop(_) => {}
            }
        }
        batch.set_len(k);
        if self.cfg.vnet {
            write_coalesced(&mut self.io, batch, &mut self.tun_out, &mut self.coalescer, &mut self.counters)
        } else {
            write_all_tun(&mut self.io, batch, &mut self.counters.tun_write_drops)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 50.0, t0);
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), 50, "burst");
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!((0..100).filter(|_| b.take(t1)).count(), 10, "1000/s for 10 ms");
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), 50, "refill capped at the burst");
        // A clock that goes backwards takes nothing and adds nothing.
        assert!(!(0..10).all(|_| b.take(t0)));
    }
}
