//! The per-slot path: one non-blocking SQE per batch slot (receives, and
//! all sends), submitted together and every completion reaped before the
//! call returns, so SQEs may point at the caller's batch.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use super::{MIN_BATCH, PER_SLOT_MAX, UringIo, cqe_len, multishot, transient};
use crate::dataplane::backend::not_connected;
use crate::dataplane::batch::{PacketBatch, PacketMeta};
use crate::dataplane::msg::MsgScratch;

impl UringIo {
    /// Pushes the SQEs `make(0..n)` (user_data = index), submits them, and
    /// reaps all `n` completions into `self.results[..n]`; multishot
    /// completions reaped on the way are staged.
    ///
    /// # Panics
    /// If `io_uring_enter` fails with a non-transient error while operations
    /// are pending (a broken ring; returning would be unsound).
    ///
    /// # Safety
    /// Every entry `make` builds must point only at memory that stays valid
    /// and unaliased until this function returns (it does not return before
    /// all `n` operations have completed).
    pub(super) unsafe fn run(
        &mut self,
        n: usize,
        mut make: impl FnMut(usize, &mut MsgScratch) -> io_uring::squeue::Entry,
    ) -> io::Result<()> {
        debug_assert!(n <= PER_SLOT_MAX);
        if self.results.len() < n {
            self.results.resize(n, 0);
        }
        let mut queued = n;
        {
            let mut sq = self.ring.submission();
            for i in 0..n {
                let e = make(i, &mut self.scratch).user_data(i as u64);
                // SAFETY: the caller guarantees the entry's buffers outlive the
                // operation. If the queue is full the entry is not queued.
                if unsafe { sq.push(&e) }.is_err() {
                    queued = i;
                    break;
                }
            }
        }
        if queued < n {
            // Entries 0..queued are in and point at caller memory: reap
            // them before returning.
            self.reap_slots(queued)?;
            return Err(io::Error::other("io_uring submission queue full"));
        }
        self.reap_slots(n)
    }

    /// Submits and reaps until `n` per-slot completions came back.
    pub(super) fn reap_slots(&mut self, n: usize) -> io::Result<()> {
        let mut reaped = 0;
        while reaped < n {
            if let Err(e) = self.ring.submit_and_wait(n - reaped) {
                // Pushed entries point at caller memory; returning before they
                // complete would let the kernel touch it later. A non-transient
                // io_uring_enter error means the ring itself is broken.
                assert!(transient(&e), "io_uring_enter failed with operations pending: {e}");
            }
            for cqe in self.ring.completion() {
                let (ud, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
                if multishot::stage(&mut self.udp_rx, &mut self.tun_rx, ud, res, flags) {
                    continue;
                }
                if let Some(r) = self.results.get_mut(ud as usize) {
                    *r = res;
                }
                reaped += 1;
            }
        }
        Ok(())
    }

    /// The per-slot receive (one non-blocking SQE per slot, all reaped
    /// before returning) for the fds given.
    pub(super) fn receive_slots(
        &mut self,
        mut tun: Option<&mut PacketBatch>,
        mut udp: Option<&mut PacketBatch>,
    ) -> io::Result<(usize, usize)> {
        let cap = if tun.is_some() && udp.is_some() { PER_SLOT_MAX / 2 } else { PER_SLOT_MAX };
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
        let mut ptrs = [std::ptr::null_mut::<u8>(); PER_SLOT_MAX];
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
    pub(super) fn adapt(size: usize, got: usize, cap: usize) -> usize {
        let next = if got == size { size * 2 } else { (got * 2).max(MIN_BATCH) };
        next.clamp(1, cap.clamp(1, PER_SLOT_MAX))
    }
}
