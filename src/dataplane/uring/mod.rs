//! The io_uring backend: one ring per worker. Receives use multishot
//! operations on provided-buffer rings where the kernel has them, else one
//! SQE per slot; sends push one SQE per packet (`SENDMSG` on the UDP
//! socket, `WRITE` on the TUN queue) and submit them with one
//! `io_uring_enter`.
//!
//! **Multishot receive** (Linux 6.7+ for both fds; see `multishot.rs`): at
//! the first receive call on an fd, in the worker thread (so the kernel's
//! task work runs there) and sized from the caller's batch, the backend
//! registers a provided-buffer ring (`IORING_REGISTER_PBUF_RING`, 5.19+)
//! of [`PacketBuf`](crate::esp::PacketBuf)s of the batch's slot size, owned
//! by the backend (`pbuf.rs`), and arms one `RECVMSG` with
//! `IORING_RECV_MULTISHOT` (6.0+) on the UDP socket and one
//! `READ_MULTISHOT` (6.7+, probed by opcode) on the TUN queue. The kernel
//! then receives into ring buffers whenever data arrives and posts a CQE
//! per datagram or packet; `recv_udp`/`read_tun`/`read_both` only reap the
//! CQ (no syscall unless something must be re-armed) and hand the packets
//! over by *exchanging* buffers: the filled ring buffer becomes the batch
//! slot and the slot's old buffer goes back to the ring under the same
//! buffer id (a copy only when the batch has another slot size). A UDP
//! buffer starts with `io_uring_recvmsg_out`, the peer address and the
//! control messages (TOS, `UDP_GRO` segment size), so the payload sits
//! `PREFIX` (116) bytes in, behind more than the sealing headroom;
//! TUN reads land at the batch headroom, virtio header first as before.
//! An operation the kernel ends (a CQE without `IORING_CQE_F_MORE`, e.g.
//! `-ENOBUFS` when the worker let the ring run dry) is re-armed by the next
//! receive call on that fd, after it gave buffers back. A kernel or fd
//! that refuses (no buffer rings, `-EINVAL` before the first packet, no
//! `READ_MULTISHOT`) or `ESPTUN_URING_MULTISHOT=0` in the environment puts
//! that fd on the per-slot path for good; stderr says which, once per
//! worker and fd. [`UringIo::mode`] and [`UringIo::stats`] show it too.
//!
//! **Task work**: an armed receive runs as io_uring task work of the
//! thread that armed it. The ring is set up with `DEFER_TASKRUN` (+
//! `SINGLE_ISSUER`, `TASKRUN_FLAG`; Linux 6.1+; created disabled and
//! enabled by its first call, so the worker thread is its submitter): the
//! kernel queues the work and flags it in the SQ ring, and a receive call
//! that sees the flag runs all of it with one `io_uring_enter`, so packets
//! are received in batches when the worker asks, never by interrupting
//! it. A kernel without those flags gets a plain ring (`TWA_SIGNAL`: task
//! work interrupts the thread, which measured slower, see below).
//! `ESPTUN_URING_TASKRUN=coop|signal` picks the other modes for
//! experiments. One consequence: a `UringIo` must be used from one thread.
//!
//! **Waiting**: with only multishot reads of interest, `wait` blocks in
//! `io_uring_enter` (`IORING_ENTER_EXT_ARG` timeout) for one CQE; that
//! wait also runs the task work that performs the receives. With a write
//! or a per-slot fd in the interest it polls those fds and the ring fd
//! together; with no multishot fd it is the shared `poll(2)`.
//!
//! **Figures** (2026-12-04, 05:15-05:56 UTC, Linux 6.18, 2 shared cores,
//! load average 3.5-6 from other jobs): iperf3 single-stream TCP A -> B in
//! the `scripts/demo --io uring` topology (static AES-128-GCM SAs, 8 s
//! runs, binaries run in turn in shuffled order per round, 22 runs each
//! over three sessions): main's per-slot path 3.62 Gbit/s median, multishot
//! with `DEFER_TASKRUN` 3.50 (paired ratio to main 0.96, range 0.66-1.49),
//! this build with `ESPTUN_URING_MULTISHOT=0` 3.74; CPU seconds of both
//! daemons per Gbit 0.290 / 0.293 / 0.269. The per-slot code of the two
//! binaries is the same and differed by 12 %, so multishot is neither
//! faster nor slower beyond the noise here. Multishot on a plain ring (task
//! work as signals) was slower: 2.63 against 3.35 Gbit/s (13 runs each,
//! load 5.5). 8, 16 or 64 buffers per ring made no difference (6 runs
//! each). In these runs every packet went by buffer exchange; the copy path
//! (a batch of another slot size) was not measured.
//!
//! **Soundness**: ring buffers are lent to the kernel from `publish` until
//! the CQE naming them; only then are they read or exchanged. `drop`
//! cancels the armed operations and waits (at most 2 s) for their final
//! CQEs before unregistering the rings and freeing the buffers; if the
//! kernel does not confirm, the buffers are leaked, never freed under it.
//!
//! **Per-slot receive** (the fallback): each call pushes one non-blocking
//! SQE per slot (`MSG_DONTWAIT` on socket ops, `RWF_NOWAIT` on TUN reads
//! and writes), so the kernel completes it at once with data or `-EAGAIN`
//! instead of arming a poll, and reaps every completion before returning.
//! That is what makes pointing SQEs at the caller's [`PacketBatch`] sound:
//! no operation outlives the borrow. Measured on Linux 6.18: `O_NONBLOCK`
//! on the TUN fd alone is NOT enough (io_uring arms a poll and the READ
//! waits for a packet), hence `RWF_NOWAIT`; a kernel that answers it with
//! `-EOPNOTSUPP` gets plain `read`/`write` on the TUN instead. Batches are
//! sized adaptively (start at 2 SQEs, double while batches come back full,
//! shrink toward twice the last count) so an idle fd does not cost a full
//! batch of `-EAGAIN` completions; a floor of 2 instead of 8 gave +40 %
//! single-stream TCP with offloads (interleaved iperf3 runs in the
//! `scripts/demo --io uring` setup, 2026-12-04, 2.0 -> 2.9 Gbit/s under
//! load average 5).

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, opcode, types};
use socket2::Socket;

mod multishot;
mod pbuf;
mod slots;
#[cfg(test)]
mod tests;

use multishot::{BGID_TUN, BGID_UDP, PREFIX, Rx, UD_CANCEL, UD_TUN, UD_UDP};
pub use multishot::{RxMode, UringStats};
use pbuf::{BufRing, ring_entries};

use super::backend::{
    BackendKind, Interest, PacketIo, not_connected, poll_events, poll_fds, poll_hit, poll_wait,
};
use super::batch::PacketBatch;
use super::msg::MsgScratch;
use super::syscall::is_v6_socket;
use super::tun::TunQueue;

/// Submission queue entries per ring.
const RING_ENTRIES: u32 = 256;
/// Most per-slot SQEs in one submission (room is left for re-arms).
const PER_SLOT_MAX: usize = RING_ENTRIES as usize - 8;
/// Smallest adaptive receive batch.
const MIN_BATCH: usize = 2;
/// How long `drop` waits for the kernel to end armed operations.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Environment switch: `0` keeps every receive on the per-slot path.
pub const MULTISHOT_ENV: &str = "ESPTUN_URING_MULTISHOT";

/// Checks that a ring can be set up and supports the opcodes used here.
pub fn probe() -> io::Result<()> {
    let ring = IoUring::new(4)?;
    let mut p = Probe::new();
    ring.submitter().register_probe(&mut p)?;
    for code in [opcode::RecvMsg::CODE, opcode::SendMsg::CODE, opcode::Read::CODE, opcode::Write::CODE] {
        if !p.is_supported(code) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks opcode {code}")));
        }
    }
    Ok(())
}

/// How each fd's receives go (see [`RxMode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UringMode {
    /// The UDP socket.
    pub udp: RxMode,
    /// The TUN queue.
    pub tun: RxMode,
}

/// How the kernel runs the task work of armed operations (the receives
/// themselves): `ESPTUN_URING_TASKRUN` = defer (the default), coop or
/// signal. Figures in the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskRun {
    /// No setup flag: task work interrupts the thread (TWA_SIGNAL, an IPI
    /// when it runs elsewhere).
    Signal,
    /// IORING_SETUP_COOP_TASKRUN | TASKRUN_FLAG (5.19+): no interrupt; it
    /// runs at the thread's next syscall, the SQ flag says it is pending.
    Coop,
    /// SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG (6.1+), created disabled
    /// and enabled by the first call (in the worker thread, which becomes
    /// the only submitter): task work runs only in an io_uring_enter with
    /// GETEVENTS, i.e. once per receive call when the SQ flag says so.
    Defer,
}

impl TaskRun {
    fn from_env() -> TaskRun {
        match std::env::var("ESPTUN_URING_TASKRUN").as_deref() {
            Ok("coop") => TaskRun::Coop,
            Ok("signal") => TaskRun::Signal,
            _ => TaskRun::Defer,
        }
    }

    /// A ring set up for this mode, or for [`TaskRun::Signal`] when the
    /// kernel refuses the flags (older than 6.1 / 5.19).
    fn ring(self) -> io::Result<(IoUring, TaskRun)> {
        let mut b = IoUring::builder();
        match self {
            TaskRun::Signal => return Ok((IoUring::new(RING_ENTRIES)?, TaskRun::Signal)),
            TaskRun::Coop => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            TaskRun::Defer => {
                b.setup_single_issuer().setup_defer_taskrun().setup_taskrun_flag().setup_r_disabled();
            }
        }
        match b.build(RING_ENTRIES) {
            Ok(r) => Ok((r, self)),
            Err(_) => TaskRun::Signal.ring(),
        }
    }
}

/// The header a multishot recvmsg is armed with: only the name and control
/// lengths are read (they size the areas in front of each payload).
struct MsgHdr(Box<libc::msghdr>);

// SAFETY: the header's pointers are all null (only its lengths are used);
// it is plain data that no thread owns.
unsafe impl Send for MsgHdr {}

/// io_uring backend over one worker's socket and TUN queue.
pub struct UringIo {
    ring: IoUring,
    udp: Option<Socket>,
    tun: Option<TunQueue>,
    scratch: MsgScratch,
    /// Per-SQE result of the last per-slot batch (index = user_data).
    results: Vec<i32>,
    udp_batch: usize,
    tun_batch: usize,
    /// The TUN fd accepts RWF_NOWAIT (else TUN I/O falls back to read/write).
    tun_nowait: bool,
    /// Multishot is wanted (not switched off by [`MULTISHOT_ENV`]).
    multishot: bool,
    /// The kernel has IORING_OP_READ_MULTISHOT (Linux 6.7+).
    read_multi: bool,
    udp_rx: Rx,
    tun_rx: Rx,
    ms_hdr: MsgHdr,
    stats: UringStats,
    taskrun: TaskRun,
    /// The ring was enabled (Defer: by the first call, in the worker).
    enabled: bool,
}

impl UringIo {
    /// Sets up a ring over the fds (both non-blocking). Multishot receives
    /// are set up at the first receive call on each fd (in the thread that
    /// will reap them, and sized from its batch).
    pub fn new(udp: Option<Socket>, tun: Option<TunQueue>) -> io::Result<UringIo> {
        probe()?;
        let v6 = is_v6_socket(udp.as_ref())?;
        let (ring, taskrun) = TaskRun::from_env().ring()?;
        let mut p = Probe::new();
        let read_multi =
            ring.submitter().register_probe(&mut p).is_ok() && p.is_supported(opcode::ReadMulti::CODE);
        // SAFETY: msghdr is a plain C struct; all-zero is a valid value.
        let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        hdr.msg_namelen = multishot::NAME_LEN as libc::socklen_t;
        hdr.msg_controllen = multishot::CTRL_LEN as _;
        Ok(UringIo {
            ring,
            udp,
            tun,
            scratch: MsgScratch::new(v6),
            results: Vec::new(),
            udp_batch: MIN_BATCH,
            tun_batch: MIN_BATCH,
            tun_nowait: true,
            multishot: std::env::var(MULTISHOT_ENV).map_or(true, |v| v != "0"),
            read_multi,
            udp_rx: Rx::new("udp"),
            tun_rx: Rx::new("tun"),
            ms_hdr: MsgHdr(hdr),
            stats: UringStats::default(),
            enabled: taskrun != TaskRun::Defer,
            taskrun,
        })
    }

    /// Enables a ring created disabled, from the calling thread (which
    /// becomes its only submitter).
    fn enable(&mut self) -> io::Result<()> {
        if !self.enabled {
            self.ring.submitter().register_enable_rings()?;
            self.enabled = true;
        }
        Ok(())
    }

    /// Runs pending task work (the kernel's receives for armed operations)
    /// when the ring says there is some: one io_uring_enter, else nothing.
    fn run_task_work(&mut self) {
        if self.taskrun != TaskRun::Signal && self.ring.submission().taskrun() {
            let _ = self.ring.submit_and_wait(0);
        }
    }

    /// How each fd's receives go now.
    pub fn mode(&self) -> UringMode {
        UringMode { udp: self.udp_rx.mode, tun: self.tun_rx.mode }
    }

    /// Multishot counters so far.
    pub fn stats(&self) -> UringStats {
        self.stats
    }

    /// Moves every completion in the CQ into the fds' queues (no syscall).
    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            let _ = multishot::stage(
                &mut self.udp_rx,
                &mut self.tun_rx,
                cqe.user_data(),
                cqe.result(),
                cqe.flags(),
            );
        }
    }

    /// Decides the mode of the UDP (`tun` false) or TUN fd at its first
    /// receive, from `b`'s geometry; sets up and arms multishot if it can.
    fn setup(&mut self, tun: bool, b: &PacketBatch) {
        let rx = if tun { &self.tun_rx } else { &self.udp_rx };
        if rx.mode != RxMode::Undecided {
            return;
        }
        let (bgid, off) = if tun { (BGID_TUN, b.headroom()) } else { (BGID_UDP, 0) };
        let why = if !self.multishot {
            Some(format!("multishot switched off by {MULTISHOT_ENV}=0"))
        } else if tun && !self.read_multi {
            Some("the kernel lacks IORING_OP_READ_MULTISHOT".to_owned())
        } else if !tun && b.slot_len() <= PREFIX + b.headroom() {
            Some("slots too small for a recvmsg header".to_owned())
        } else {
            let n = ring_entries(b.capacity(), b.slot_len());
            match BufRing::new(&self.ring.submitter(), bgid, n, b.slot_len(), b.headroom(), off) {
                Ok(r) => {
                    let rx = if tun { &mut self.tun_rx } else { &mut self.udp_rx };
                    rx.start(r);
                    None
                }
                Err(e) => Some(format!("provided-buffer ring: {e}")),
            }
        };
        let rx = if tun { &mut self.tun_rx } else { &mut self.udp_rx };
        match why {
            Some(w) => rx.fall_back(&w),
            None => self.arm(tun),
        }
    }

    /// Arms the fd's multishot operation if it is in multishot mode and not
    /// armed, and submits it (one `io_uring_enter`, only when arming).
    fn arm(&mut self, tun: bool) {
        let rx = if tun { &mut self.tun_rx } else { &mut self.udp_rx };
        let (Some(ring), RxMode::Multishot, false) = (rx.ring.as_ref(), rx.mode, rx.live) else { return };
        let e = if tun {
            let Some(q) = self.tun.as_ref() else { return };
            opcode::ReadMulti::new(types::Fd(q.as_raw_fd()), 0, ring.bgid()).build().user_data(UD_TUN)
        } else {
            let Some(s) = self.udp.as_ref() else { return };
            let hdr: *const libc::msghdr = &raw const *self.ms_hdr.0;
            opcode::RecvMsgMulti::new(types::Fd(s.as_raw_fd()), hdr, ring.bgid()).build().user_data(UD_UDP)
        };
        // SAFETY: the operation writes only into buffers of the fd's ring,
        // which `self` owns and keeps alive until `drop` has seen the
        // operation end (or leaks them); it reads the boxed header, which
        // lives as long as `self`. The fd is owned by `self` too.
        if unsafe { self.ring.submission().push(&e) }.is_ok() {
            rx.live = true;
            self.stats.arms += 1;
        }
        // A transient failure leaves the entry queued for the next enter.
        let _ = self.ring.submit();
    }

    /// Receives into `tun` and/or `udp`: per-slot fds with one
    /// `io_uring_enter` for both, multishot fds from what was reaped. Each
    /// batch is filled from slot 0. An error is returned only when nothing
    /// arrived.
    fn receive(
        &mut self,
        mut tun: Option<&mut PacketBatch>,
        mut udp: Option<&mut PacketBatch>,
    ) -> io::Result<(usize, usize)> {
        self.enable()?;
        if let Some(b) = tun.as_deref() {
            self.tun.as_ref().ok_or_else(|| not_connected("TUN queue"))?;
            self.setup(true, b);
        }
        if let Some(b) = udp.as_deref() {
            self.udp.as_ref().ok_or_else(|| not_connected("UDP socket"))?;
            self.setup(false, b);
        }
        let tun_ms = self.tun_rx.mode == RxMode::Multishot;
        let udp_ms = self.udp_rx.mode == RxMode::Multishot;
        let slots_t = tun.as_deref_mut().filter(|_| !tun_ms);
        let slots_u = udp.as_deref_mut().filter(|_| !udp_ms);
        let (gt, gu, mut err) = if slots_t.is_none() && slots_u.is_none() {
            (0, 0, None)
        } else {
            match self.receive_slots(slots_t, slots_u) {
                Ok((t, u)) => (t, u, None),
                Err(e) => (0, 0, Some(e)),
            }
        };
        let (mut mt, mut mu) = (0, 0);
        if tun_ms || udp_ms {
            self.run_task_work();
            self.reap();
            // Twice at most: a re-arm finds waiting data at once.
            for _ in 0..2 {
                if let Some(b) = tun.as_deref_mut().filter(|_| tun_ms) {
                    if mt == 0 {
                        b.clear();
                    }
                    err = err.or(multishot::deliver_tun(&mut self.tun_rx, b, &mut self.stats));
                    mt = b.len();
                }
                if let Some(b) = udp.as_deref_mut().filter(|_| udp_ms) {
                    if mu == 0 {
                        b.clear();
                    }
                    err = err.or(multishot::deliver_udp(
                        &mut self.udp_rx,
                        &mut self.scratch,
                        b,
                        &mut self.stats,
                    ));
                    mu = b.len();
                }
                let rearm_t = tun.is_some() && tun_ms && !self.tun_rx.live;
                let rearm_u = udp.is_some() && udp_ms && !self.udp_rx.live;
                if !(rearm_t || rearm_u) {
                    break;
                }
                if rearm_t {
                    self.arm(true);
                }
                if rearm_u {
                    self.arm(false);
                }
                self.reap();
            }
        }
        let (nt, nu) = (if tun_ms { mt } else { gt }, if udp_ms { mu } else { gu });
        match err {
            Some(e) if nt == 0 && nu == 0 => Err(e),
            _ => Ok((nt, nu)),
        }
    }

    /// Which of the multishot fds in `interest` have staged completions.
    fn staged_ready(&self, interest: Interest) -> Interest {
        Interest {
            udp_read: interest.udp_read && self.udp_rx.ready(),
            tun_read: interest.tun_read && self.tun_rx.ready(),
            ..Interest::default()
        }
    }

    /// Blocks in `io_uring_enter` until a completion or `timeout`.
    fn wait_ring(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            Some(d) => {
                let ts = Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos());
                self.ring.submitter().submit_with_args(1, &SubmitArgs::new().timespec(&ts))
            }
            None => self.ring.submit_and_wait(1),
        };
        match r {
            Err(e) if !(transient(&e) || e.raw_os_error() == Some(libc::ETIME)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Ends the armed operations and waits (bounded) until the kernel says
    /// they are over; then unregisters the buffer rings. Returns whether
    /// the kernel is done with every buffer (false: the buffers must not be
    /// freed).
    fn shutdown(&mut self) -> bool {
        for (live, ud) in [(self.udp_rx.live, UD_UDP), (self.tun_rx.live, UD_TUN)] {
            if live {
                let e = opcode::AsyncCancel::new(ud).build().user_data(UD_CANCEL);
                // SAFETY: a cancellation points at no memory.
                let _ = unsafe { self.ring.submission().push(&e) };
            }
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        loop {
            self.reap();
            if !self.udp_rx.live && !self.tun_rx.live {
                break;
            }
            if Instant::now() >= deadline || self.wait_ring(Some(Duration::from_millis(20))).is_err() {
                return false;
            }
        }
        for rx in [&self.udp_rx, &self.tun_rx] {
            if let Some(r) = &rx.ring {
                // An error here (the group is not registered) leaves nothing
                // for the kernel to write into either.
                let _ = self.ring.submitter().unregister_buf_ring(r.bgid());
            }
        }
        true
    }
}

/// `io_uring_enter` errors that leave the ring intact.
fn transient(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|c| [libc::EINTR, libc::EBUSY, libc::EAGAIN].contains(&c))
}

impl Drop for UringIo {
    fn drop(&mut self) {
        if !self.shutdown() {
            // The kernel may still write into the pools: leak them rather
            // than free memory it could touch.
            std::mem::forget(self.udp_rx.ring.take());
            std::mem::forget(self.tun_rx.ring.take());
        }
    }
}

/// Maps a completion result to a length or an OS error.
fn cqe_len(r: i32) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::from_raw_os_error(-r))
}

impl PacketIo for UringIo {
    fn recv_udp(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        self.receive(None, Some(batch)).map(|(_, u)| u)
    }

    fn send_udp(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize> {
        self.enable()?;
        let fd = types::Fd(self.udp.as_ref().ok_or_else(|| not_connected("UDP socket"))?.as_raw_fd());
        let mut sent = 0;
        while from + sent < batch.len() {
            let n = (batch.len() - from - sent).min(PER_SLOT_MAX);
            self.scratch.prepare_send(batch, from + sent, n);
            // SAFETY: each SQE points at scratch header `i` and through it at
            // a slot of `batch` (read only); both outlive `run`, which reaps
            // every completion before returning.
            unsafe {
                self.run(n, |i, s| {
                    opcode::SendMsg::new(fd, &raw const s.hdrs[i].msg_hdr)
                        .flags(libc::MSG_DONTWAIT as u32)
                        .build()
                })?;
            }
            // Ops run in order but independently: report the prefix that
            // went out; the first failure ends it.
            for i in 0..n {
                if let Err(e) = cqe_len(self.results[i]) {
                    return if sent == 0 { Err(e) } else { Ok(sent) };
                }
                sent += 1;
            }
        }
        Ok(sent)
    }

    fn read_both(&mut self, tun: &mut PacketBatch, udp: &mut PacketBatch) -> io::Result<(usize, usize)> {
        self.receive(Some(tun), Some(udp))
    }

    fn read_tun(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        self.receive(Some(batch), None).map(|(t, _)| t)
    }

    fn write_tun(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize> {
        self.enable()?;
        let tun = self.tun.as_ref().ok_or_else(|| not_connected("TUN queue"))?;
        if !self.tun_nowait {
            return tun.write_batch(batch, from);
        }
        let fd = types::Fd(tun.as_raw_fd());
        let mut done = 0;
        while from + done < batch.len() {
            let n = (batch.len() - from - done).min(PER_SLOT_MAX);
            let base = from + done;
            // SAFETY: each SQE points at a slot of `batch` (read only), which
            // outlives `run`; `run` reaps every completion before returning.
            unsafe {
                self.run(n, |i, _| {
                    let pkt = batch.packet(base + i).unwrap_or(&[]);
                    opcode::Write::new(fd, pkt.as_ptr(), pkt.len() as u32).rw_flags(libc::RWF_NOWAIT).build()
                })?;
            }
            for i in 0..n {
                if let Err(e) = cqe_len(self.results[i]) {
                    if done == 0 && e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                        self.tun_nowait = false;
                        return self.write_tun(batch, from);
                    }
                    return if done == 0 { Err(e) } else { Ok(done) };
                }
                done += 1;
            }
        }
        Ok(done)
    }

    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Interest> {
        self.enable()?;
        let ms_udp = interest.udp_read && self.udp_rx.mode == RxMode::Multishot;
        let ms_tun = interest.tun_read && self.tun_rx.mode == RxMode::Multishot;
        if !(ms_udp || ms_tun) {
            return poll_wait(
                self.udp.as_ref().map(AsRawFd::as_raw_fd),
                self.tun.as_ref().map(AsRawFd::as_raw_fd),
                interest,
                timeout,
            );
        }
        self.run_task_work();
        self.reap();
        let ready = self.staged_ready(interest);
        if !ready.is_empty() {
            return Ok(ready);
        }
        // Reads of absent fds are never ready: leave them out.
        let (has_udp, has_tun) = (self.udp.is_some(), self.tun.is_some());
        let rest = Interest {
            udp_read: interest.udp_read && !ms_udp && has_udp,
            udp_write: interest.udp_write && has_udp,
            tun_read: interest.tun_read && !ms_tun && has_tun,
            tun_write: interest.tun_write && has_tun,
        };
        if rest.is_empty() {
            // Only multishot reads: their completions land in the CQ, so
            // wait for one in io_uring_enter (which also runs the task work
            // that performs the receive).
            self.wait_ring(timeout)?;
            self.reap();
            return Ok(self.staged_ready(interest));
        }
        // Mixed (a write, or an fd on the per-slot path): poll those fds
        // and the ring fd together.
        let _ = self.ring.submit();
        // The ring fd is readable when the CQ has entries.
        let fd = |o: Option<i32>| o.unwrap_or(-1);
        let revents = poll_fds(
            [
                (fd(self.udp.as_ref().map(AsRawFd::as_raw_fd)), poll_events(rest.udp_read, rest.udp_write)),
                (fd(self.tun.as_ref().map(AsRawFd::as_raw_fd)), poll_events(rest.tun_read, rest.tun_write)),
                (self.ring.as_raw_fd(), libc::POLLIN),
            ],
            timeout,
        )?;
        self.run_task_work();
        self.reap();
        let staged = self.staged_ready(interest);
        Ok(Interest {
            udp_read: staged.udp_read || (rest.udp_read && poll_hit(revents[0], libc::POLLIN)),
            udp_write: rest.udp_write && poll_hit(revents[0], libc::POLLOUT),
            tun_read: staged.tun_read || (rest.tun_read && poll_hit(revents[1], libc::POLLIN)),
            tun_write: rest.tun_write && poll_hit(revents[1], libc::POLLOUT),
        })
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }
}
