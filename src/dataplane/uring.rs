//! The io_uring backend: one ring per worker; each batch call pushes one
//! SQE per packet (`RECVMSG`/`SENDMSG` on the UDP socket, `READ`/`WRITE` on
//! the TUN queue) and submits them all with one `io_uring_enter`.
//!
//! Every SQE is non-blocking (`MSG_DONTWAIT` on socket ops, `RWF_NOWAIT`
//! on TUN reads and writes), so the kernel completes it at once with data
//! or `-EAGAIN` instead of arming a poll, and each call reaps the completion
//! of every SQE it pushed before returning. That is what makes pointing
//! SQEs at the caller's [`PacketBatch`] sound: no operation outlives the
//! borrow. Measured on Linux 6.18: `O_NONBLOCK` on the TUN fd alone is NOT
//! enough (io_uring arms a poll and the READ waits for a packet), hence
//! `RWF_NOWAIT`; a kernel that answers it with `-EOPNOTSUPP` gets plain
//! `read`/`write` on the TUN instead.
//!
//! Receive batches are sized adaptively (start at 2 SQEs, double while
//! batches come back full, shrink toward twice the last count) so an idle
//! fd does not cost a full batch of `-EAGAIN` completions. With offloads a
//! TUN read or a GRO receive carries up to 64 KiB, so a few SQEs are enough:
//! a floor of 2 instead of 8 gave +40 % single-stream TCP here (interleaved
//! iperf3 runs in the `scripts/demo --io uring` setup, 2026-12-04, 2.0 ->
//! 2.9 Gbit/s under load average 5).
//!
//! Not used (yet): provided-buffer rings and multishot receive. They need
//! buffers owned by the ring rather than by the caller's batch; the trait
//! would hand out ring buffers by id. Waiting uses `poll(2)`.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{IoUring, Probe, opcode, types};
use socket2::Socket;

use super::backend::{BackendKind, Interest, PacketIo, not_connected, poll_wait};
use super::batch::{PacketBatch, PacketMeta};
use super::msg::MsgScratch;
use super::syscall::is_v6_socket;
use super::tun::TunQueue;

/// Submission queue entries per ring (batches larger than this are split).
const RING_ENTRIES: u32 = 256;
/// Smallest adaptive receive batch.
const MIN_BATCH: usize = 2;

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

/// io_uring backend over one worker's socket and TUN queue.
pub struct UringIo {
    ring: IoUring,
    udp: Option<Socket>,
    tun: Option<TunQueue>,
    scratch: MsgScratch,
    /// Per-SQE result of the last batch (index = user_data).
    results: Vec<i32>,
    udp_batch: usize,
    tun_batch: usize,
    /// The TUN fd accepts RWF_NOWAIT (else TUN I/O falls back to read/write).
    tun_nowait: bool,
}

impl UringIo {
    /// Sets up a ring over the fds (both non-blocking).
    pub fn new(udp: Option<Socket>, tun: Option<TunQueue>) -> io::Result<UringIo> {
        probe()?;
        let v6 = is_v6_socket(udp.as_ref())?;
        Ok(UringIo {
            ring: IoUring::new(RING_ENTRIES)?,
            udp,
            tun,
            scratch: MsgScratch::new(v6),
            results: Vec::new(),
            udp_batch: MIN_BATCH,
            tun_batch: MIN_BATCH,
            tun_nowait: true,
        })
    }

    /// Pushes the SQEs `make(0..n)` (user_data = index), submits them, and
    /// reaps all `n` completions into `self.results[..n]`.
    ///
    /// # Panics
    /// If `io_uring_enter` fails with a non-transient error while operations
    /// are pending (a broken ring; returning would be unsound).
    ///
    /// # Safety
    /// Every entry `make` builds must point only at memory that stays valid
    /// and unaliased until this function returns (it does not return before
    /// all `n` operations have completed).
    unsafe fn run(
        &mut self,
        n: usize,
        mut make: impl FnMut(usize, &mut MsgScratch) -> io_uring::squeue::Entry,
    ) -> io::Result<()> {
        debug_assert!(n <= RING_ENTRIES as usize);
        if self.results.len() < n {
            self.results.resize(n, 0);
        }
        {
            let mut sq = self.ring.submission();
            for i in 0..n {
                let e = make(i, &mut self.scratch).user_data(i as u64);
                // SAFETY: the caller guarantees the entry's buffers outlive the
                // operation; the queue has room since n <= RING_ENTRIES and the
                // ring is empty at the start of every call.
                if unsafe { sq.push(&e) }.is_err() {
                    return Err(io::Error::other("io_uring submission queue full"));
                }
            }
        }
        let mut reaped = 0;
        while reaped < n {
            if let Err(e) = self.ring.submit_and_wait(n - reaped) {
                let transient = [libc::EINTR, libc::EBUSY, libc::EAGAIN];
                // Pushed entries point at caller memory; returning before they
                // complete would let the kernel touch it later. A non-transient
                // io_uring_enter error means the ring itself is broken.
                assert!(
                    e.raw_os_error().is_some_and(|c| transient.contains(&c)),
                    "io_uring_enter failed with operations pending: {e}"
                );
            }
            for cqe in self.ring.completion() {
                if let Some(r) = self.results.get_mut(cqe.user_data() as usize) {
                    *r = cqe.result();
                }
                reaped += 1;
            }
        }
        Ok(())
    }

    /// Receives into `tun` (TUN reads) and/or `udp` (RecvMsg) with one
    /// `io_uring_enter` for both; each batch is filled from slot 0 with
    /// what was ready. An error is returned only when nothing arrived.
    fn receive(
        &mut self,
        mut tun: Option<&mut PacketBatch>,
        mut udp: Option<&mut PacketBatch>,
    ) -> io::Result<(usize, usize)> {
        let cap =
            if tun.is_some() && udp.is_some() { RING_ENTRIES as usize / 2 } else { RING_ENTRIES as usize };
        let mut err = None;
        // TUN: through the ring when it takes RWF_NOWAIT, else plain reads.
        let (mut tfd, mut nt, mut recv_len) = (types::Fd(-1), 0, 0u32);
        if let Some(b) = tun.as_deref_mut() {
            b.clear();
            let q = self.tun.as_ref().ok_or_else(|| not_connected("TUN queue"))?;
            if self.tun_nowait {
                (tfd, nt) = (types::Fd(q.as_raw_fd()), self.tun_batch.min(b.capacity()).min(cap));
                recv_len = u32::try_from(b.recv_len()).unwrap_or(u32::MAX);
            } else if let Err(e) = q.read_batch(b) {
                err = Some(e);
            }
        }
        let mut ptrs = [std::ptr::null_mut::<u8>(); RING_ENTRIES as usize];
        if let Some(b) = tun.as_deref_mut() {
            for (i, p) in ptrs.iter_mut().enumerate().take(nt) {
                *p = b.recv_ptr(i);
            }
        }
        let (mut ufd, mut nu) = (types::Fd(-1), 0);
        if let Some(b) = udp.as_deref_mut() {
            b.clear();
            ufd = types::Fd(self.udp.as_ref().ok_or_else(|| not_connected("UDP socket"))?.as_raw_fd());
            nu = self.udp_batch.min(b.capacity()).min(cap);
            self.scratch.prepare_recv(b, nu);
        }
        if nt + nu > 0 {
            // SAFETY: SQEs 0..nt point at slots of `tun`, nt..nt+nu at
            // scratch headers (and through them at slots of `udp`); all are
            // exclusively borrowed until `run` returns after reaping every
            // completion.
            unsafe {
                self.run(nt + nu, |i, s| {
                    if i < nt {
                        opcode::Read::new(tfd, ptrs[i], recv_len).rw_flags(libc::RWF_NOWAIT).build()
                    } else {
                        opcode::RecvMsg::new(ufd, &raw mut s.hdrs[i - nt].msg_hdr)
                            .flags(libc::MSG_DONTWAIT as u32)
                            .build()
                    }
                })?;
            }
        }
        let mut gt = tun.as_deref().map_or(0, PacketBatch::len);
        let mut no_nowait = false;
        if let Some(b) = tun.as_deref_mut().filter(|_| nt > 0) {
            for i in 0..nt {
                match cqe_len(self.results[i]) {
                    Ok(len) => {
                        b.set_received(i, PacketMeta { len, ..PacketMeta::EMPTY });
                        if i != gt {
                            b.move_slot(i, gt);
                        }
                        gt += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // A kernel whose TUN lacks FMODE_NOWAIT: never submit a
                    // TUN op that could block holding the caller's buffer.
                    Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => no_nowait = true,
                    Err(e) => err = err.or(Some(e)),
                }
            }
            self.tun_batch = Self::adapt(nt, gt, b.capacity().min(cap));
            b.set_len(gt);
        }
        let mut gu = 0;
        if let Some(b) = udp {
            for i in 0..nu {
                match cqe_len(self.results[nt + i]) {
                    Ok(len) => {
                        self.scratch.finish_recv(i, len, b);
                        if i != gu {
                            b.move_slot(i, gu);
                        }
                        gu += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => err = err.or(Some(e)),
                }
            }
            self.udp_batch = Self::adapt(nu, gu, b.capacity().min(cap));
            b.set_len(gu);
        }
        if no_nowait {
            // From now on plain reads; this turn's read happens at once.
            self.tun_nowait = false;
            if let (Some(b), Some(q)) = (tun.filter(|_| gt == 0), self.tun.as_ref()) {
                gt = q.read_batch(b).unwrap_or(0);
            }
        }
        match err {
            Some(e) if gt == 0 && gu == 0 => Err(e),
            _ => Ok((gt, gu)),
        }
    }

    /// Next adaptive batch size after a batch of `size` returned `got`.
    fn adapt(size: usize, got: usize, cap: usize) -> usize {
        let next = if got == size { size * 2 } else { (got * 2).max(MIN_BATCH) };
        next.clamp(1, cap.clamp(1, RING_ENTRIES as usize))
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
        let fd = types::Fd(self.udp.as_ref().ok_or_else(|| not_connected("UDP socket"))?.as_raw_fd());
        let mut sent = 0;
        while from + sent < batch.len() {
            let n = (batch.len() - from - sent).min(RING_ENTRIES as usize);
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
        let tun = self.tun.as_ref().ok_or_else(|| not_connected("TUN queue"))?;
        if !self.tun_nowait {
            return tun.write_batch(batch, from);
        }
        let fd = types::Fd(tun.as_raw_fd());
        let mut done = 0;
        while from + done < batch.len() {
            let n = (batch.len() - from - done).min(RING_ENTRIES as usize);
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
        poll_wait(
            self.udp.as_ref().map(AsRawFd::as_raw_fd),
            self.tun.as_ref().map(AsRawFd::as_raw_fd),
            interest,
            timeout,
        )
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_batch_grows_and_shrinks_within_bounds() {
        assert_eq!(UringIo::adapt(8, 8, 64), 16);
        assert_eq!(UringIo::adapt(8, 0, 64), MIN_BATCH);
        assert_eq!(UringIo::adapt(64, 64, 64), 64, "capped by batch capacity");
        assert_eq!(UringIo::adapt(32, 3, 64), 6, "twice the last count");
        assert_eq!(UringIo::adapt(32, 0, 64), MIN_BATCH);
        assert_eq!(UringIo::adapt(32, 10, 64), 20);
        assert_eq!(UringIo::adapt(8, 8, 1000), 16);
        assert_eq!(UringIo::adapt(256, 256, 1000), RING_ENTRIES as usize);
    }
}
