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

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::backend::{AnyIo, Interest, PacketIo};
use super::batch::{PacketBatch, PacketMeta};
use crate::engine::{Counters, Engine, InVerdict, OutVerdict, Update};
use crate::esp::buf::{DEFAULT_CAPACITY, HEADROOM};

/// How long one blocked send waits for room before dropping the rest.
const SEND_PATIENCE: Duration = Duration::from_millis(20);
/// How often a worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Longest sleep in `wait` (bounds the delay to see updates and stop).
const WAIT_TIMEOUT: Duration = Duration::from_millis(50);

/// Settings of one worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Worker index (its inbound SAs have `SPI mod N == index`).
    pub index: usize,
    /// Packets per batch.
    pub batch: usize,
    /// Core to pin the thread to.
    pub core: Option<core_affinity::CoreId>,
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
    }

    /// The drop counters as (label, count).
    pub fn drops(&self) -> [(&'static str, u64); 5] {
        [
            ("udp_send", self.udp_send_drops),
            ("tun_write", self.tun_write_drops),
            ("bypass_on_tun", self.bypass_on_tun),
            ("truncated", self.truncated),
            ("control_queue_full", self.control_queue_full),
        ]
    }
}

/// A worker's published counters (copied every [`PUBLISH_EVERY`]).
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
    tun_in: PacketBatch,
    udp_in: PacketBatch,
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
        Worker {
            io,
            engine,
            updates,
            control,
            stop,
            stats,
            counters: IoCounters::default(),
            tun_in: PacketBatch::with_headroom(b, DEFAULT_CAPACITY, HEADROOM),
            udp_in: PacketBatch::with_headroom(b, DEFAULT_CAPACITY, HEADROOM),
            side: PacketBatch::with_headroom(b.max(8), DEFAULT_CAPACITY, HEADROOM),
            out_v: vec![OutVerdict::Bypass; b],
            in_v: vec![InVerdict::Control; b],
            ecn: vec![0; b],
            cfg,
        }
    }

    /// Runs until the stop flag is set; returns the final counters. An I/O
    /// error that is not about one packet ends the worker with that error.
    pub fn run(mut self) -> io::Result<WorkerStats> {
        if let Some(core) = self.cfg.core {
            core_affinity::set_for_current(core);
        }
        let mut last_publish = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(u) = self.updates.try_recv() {
                self.engine.apply(u);
            }
            let mut busy = false;
            if self.io.read_tun(&mut self.tun_in)? > 0 {
                busy = true;
                self.outbound()?;
            }
            if self.io.recv_udp(&mut self.udp_in)? > 0 {
                busy = true;
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
        WorkerStats { engine: self.engine.counters().clone(), io: self.counters, inbound }
    }

    /// Copies the counters out (every [`PUBLISH_EVERY`], not per packet;
    /// the lock is uncontended but for the control thread's reads).
    fn publish(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.engine.clone_from(self.engine.counters());
            s.io = self.counters;
            self.engine.inbound_usage(&mut s.inbound);
        }
    }

    /// TUN batch → seal → UDP.
    fn outbound(&mut self) -> io::Result<()> {
        self.counters.tun_batches += 1;
        let n = self.tun_in.len();
        let bufs = self.tun_in.bufs_mut();
        self.engine.outbound_batch(bufs, &mut self.out_v[..n]);
        self.tun_in.sync_meta();
        // Sends to the front (pointer swaps); ICMP errors to the side batch.
        let mut k = 0;
        self.side.clear();
        for i in 0..n {
            match self.out_v[i] {
                OutVerdict::Send { to, port, tos } => {
                    if let Some(m) = self.tun_in.meta_mut(i) {
                        m.addr = SocketAddr::new(to, port);
                        m.tos = tos;
                        m.segment_size = 0;
                    }
                    self.tun_in.swap(i, k);
                    k += 1;
                }
                OutVerdict::Reply => {
                    if let Some(p) = self.tun_in.packet(i) {
                        self.side.push(p, PacketMeta::EMPTY);
                    }
                }
                OutVerdict::Bypass => self.counters.bypass_on_tun += 1,
                OutVerdict::Drop(_) => {}
            }
        }
        self.tun_in.set_len(k);
        send_all(&mut self.io, &self.tun_in, &mut self.counters.udp_send_drops)?;
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
        self.tun_in.clear();
        Ok(())
    }

    /// UDP batch → open → TUN.
    fn inbound(&mut self) -> io::Result<()> {
        self.counters.udp_batches += 1;
        let n = self.udp_in.len();
        for i in 0..n {
            let m = self.udp_in.meta(i).copied().unwrap_or(PacketMeta::EMPTY);
            if m.truncated {
                // An empty packet is dropped as truncated by the engine too.
                self.counters.truncated += 1;
                if let Some(mm) = self.udp_in.meta_mut(i) {
                    mm.len = 0;
                }
            }
            self.ecn[i] = m.tos & 0x03;
        }
        let bufs = self.udp_in.bufs_mut();
        self.engine.inbound_batch(bufs, &self.ecn[..n], &mut self.in_v[..n]);
        self.udp_in.sync_meta();
        let mut k = 0;
        for i in 0..n {
            match self.in_v[i] {
                InVerdict::Deliver => {
                    self.udp_in.swap(i, k);
                    k += 1;
                }
                InVerdict::Control => self.hand_to_control(i),
                InVerdict::Drop(_) => {}
            }
        }
        self.udp_in.set_len(k);
        write_all_tun(&mut self.io, &self.udp_in, &mut self.counters.tun_write_drops)?;
        self.udp_in.clear();
        Ok(())
    }

    fn hand_to_control(&mut self, i: usize) {
        let (Some(tx), Some(p), Some(m)) = (&self.control, self.udp_in.packet(i), self.udp_in.meta(i)) else {
            return;
        };
        // Rare (IKE only): the copy is fine. Full queue: drop, never block.
        if let Err(TrySendError::Full(_)) = tx.try_send(ControlDatagram { from: m.addr, bytes: p.to_vec() }) {
            self.counters.control_queue_full += 1;
        }
    }
}

/// Sends `batch` whole; waits up to [`SEND_PATIENCE`] for room, then drops
/// what is left (counted). Only errors of the socket itself are returned.
fn send_all(io: &mut AnyIo, batch: &PacketBatch, drops: &mut u64) -> io::Result<()> {
    let mut from = 0;
    let mut deadline: Option<Instant> = None;
    while from < batch.len() {
        match io.send_udp(batch, from) {
            Ok(0) | Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                *drops += (batch.len() - from) as u64;
                return Ok(());
            }
            Ok(0) => wait_writable(io, Interest { udp_write: true, ..Interest::default() }, &mut deadline)?,
            Ok(k) => from += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(io, Interest { udp_write: true, ..Interest::default() }, &mut deadline)?
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(_) => {
                // About this datagram (no route, message too long, ...).
                *drops += 1;
                from += 1;
            }
        }
    }
    Ok(())
}

/// Writes `batch` whole to the TUN queue, like [`send_all`].
fn write_all_tun(io: &mut AnyIo, batch: &PacketBatch, drops: &mut u64) -> io::Result<()> {
    let mut from = 0;
    let mut deadline: Option<Instant> = None;
    while from < batch.len() {
        match io.write_tun(batch, from) {
            Ok(0) | Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                *drops += (batch.len() - from) as u64;
                return Ok(());
            }
            Ok(0) => wait_writable(io, Interest { tun_write: true, ..Interest::default() }, &mut deadline)?,
            Ok(k) => from += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(io, Interest { tun_write: true, ..Interest::default() }, &mut deadline)?
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(_) => {
                *drops += 1;
                from += 1;
            }
        }
    }
    Ok(())
}

fn wait_writable(io: &mut AnyIo, what: Interest, deadline: &mut Option<Instant>) -> io::Result<()> {
    let d = *deadline.get_or_insert_with(|| Instant::now() + SEND_PATIENCE);
    let left = d.saturating_duration_since(Instant::now());
    io.wait(what, Some(left.max(Duration::from_millis(1)))).map(|_| ())
}

/// Errors that mean the fd itself is unusable (not one bad packet).
fn is_fatal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK | libc::EFAULT))
        || e.kind() == io::ErrorKind::NotConnected
}
