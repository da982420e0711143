//! Multishot receive state of one fd: the mode chosen for it, the armed
//! operation, its buffer ring, and the completions reaped from the CQ but
//! not yet handed to a batch.
//!
//! Completions arrive in one CQ for both fds (and for the per-slot send
//! SQEs); [`stage`] sorts the multishot ones into each fd's queue, so a
//! `read_tun` never has to consume a UDP completion and the other way
//! round. A queue holds at most one completion per lent buffer plus the one
//! that ended the operation, so its preallocated capacity is never
//! exceeded.
//!
//! Handing a packet over ([`deliver_udp`], [`deliver_tun`]): the buffer the
//! kernel filled is exchanged with the batch slot (zero copy: the slot's old
//! buffer goes back to the ring under the same id) when the batch has the
//! ring's geometry, else its bytes are copied into the slot and the buffer
//! goes straight back.

use std::collections::VecDeque;
use std::io;

use io_uring::cqueue;

use super::pbuf::BufRing;
use crate::dataplane::batch::{PacketBatch, PacketMeta};
use crate::dataplane::msg::MsgScratch;

/// user_data of the UDP multishot recvmsg.
pub(super) const UD_UDP: u64 = 1 << 63;
/// user_data of the TUN multishot read.
pub(super) const UD_TUN: u64 = (1 << 63) | 1;
/// user_data of the cancellations at drop.
pub(super) const UD_CANCEL: u64 = (1 << 63) | 2;
/// Buffer group ids.
pub(super) const BGID_UDP: u16 = 1;
/// See [`BGID_UDP`].
pub(super) const BGID_TUN: u16 = 2;

/// `struct io_uring_recvmsg_out`: namelen, controllen, payloadlen, flags.
const OUT_HDR: usize = 16;
/// Room for the peer address in each buffer (a `sockaddr_in6`).
pub(super) const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// Room for control messages in each buffer: three int-sized cmsgs (TOS or
/// traffic class, and UDP_GRO, need two; 24 bytes each on 64-bit).
pub(super) const CTRL_LEN: usize = 72;
/// Bytes in front of the payload in a multishot recvmsg buffer.
pub(super) const PREFIX: usize = OUT_HDR + NAME_LEN + CTRL_LEN;

/// How an fd's receives go through the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// Not decided yet (decided at the first receive call on the fd).
    Undecided,
    /// One non-blocking SQE per batch slot, all reaped before returning.
    PerSlot,
    /// One multishot operation armed on a provided-buffer ring.
    Multishot,
}

/// Multishot activity counters of one backend (both fds together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UringStats {
    /// Multishot operations submitted (first arms and re-arms).
    pub arms: u64,
    /// Operations the kernel ended because the buffer ring ran dry.
    pub nobufs: u64,
    /// Packets handed over by exchanging buffers (no copy).
    pub swapped: u64,
    /// Packets handed over by copying (the batch had another geometry).
    pub copied: u64,
}

/// Receive state of one fd.
pub(super) struct Rx {
    pub(super) mode: RxMode,
    /// The operation is in the kernel: pushed, and no completion without
    /// `IORING_CQE_F_MORE` reaped yet.
    pub(super) live: bool,
    pub(super) ring: Option<BufRing>,
    /// Reaped completions (result, flags), oldest first.
    pub(super) staged: VecDeque<(i32, u32)>,
    /// A packet came through multishot (so an error is not a reason to
    /// fall back any more).
    pub(super) got_data: bool,
    /// "udp" or "tun", for the start-up line.
    pub(super) what: &'static str,
}

impl Rx {
    pub(super) fn new(what: &'static str) -> Rx {
        Rx {
            mode: RxMode::Undecided,
            live: false,
            ring: None,
            staged: VecDeque::new(),
            got_data: false,
            what,
        }
    }

    /// Switches to multishot over `ring` (the queue is allocated here,
    /// once).
    pub(super) fn start(&mut self, ring: BufRing) {
        self.staged = VecDeque::with_capacity(ring.entries() + 8);
        self.ring = Some(ring);
        self.mode = RxMode::Multishot;
    }

    /// Falls back to per-slot receives for good, saying why on stderr
    /// (once per fd and backend).
    pub(super) fn fall_back(&mut self, why: &str) {
        self.mode = RxMode::PerSlot;
        eprintln!("esptun: io_uring: {} receive uses one SQE per slot ({why})", self.what);
    }

    /// Whether completions are waiting to be handed over.
    pub(super) fn ready(&self) -> bool {
        self.mode == RxMode::Multishot && !self.staged.is_empty()
    }

    /// The end of a multishot operation: counts and classifies `res`;
    /// returns the error to report, if any.
    fn ended(&mut self, res: i32, st: &mut UringStats) -> Option<io::Error> {
        match -res {
            0 | libc::ECANCELED | libc::EAGAIN | libc::EINTR => None,
            libc::ENOBUFS => {
                st.nobufs += 1;
                None
            }
            e @ (libc::EINVAL | libc::EOPNOTSUPP | libc::EBADFD | libc::ENOTSOCK) if !self.got_data => {
                self.fall_back(&format!("multishot: {}", io::Error::from_raw_os_error(e)));
                None
            }
            e => Some(io::Error::from_raw_os_error(e)),
        }
    }

    /// Notes the first packet (and says so on stderr, once).
    fn first_data(&mut self, op: &str) {
        if !self.got_data {
            self.got_data = true;
            if let Some(r) = &self.ring {
                eprintln!(
                    "esptun: io_uring: {} receive uses multishot {op} on a provided-buffer ring ({} x {} B)",
                    self.what,
                    r.entries(),
                    r.slot_len()
                );
            }
        }
    }
}

/// Sorts one completion into its fd's queue; false when it is not a
/// multishot completion (a per-slot result or a cancellation).
pub(super) fn stage(udp: &mut Rx, tun: &mut Rx, user_data: u64, res: i32, flags: u32) -> bool {
    let rx = match user_data {
        UD_UDP => udp,
        UD_TUN => tun,
        UD_CANCEL => return true,
        _ => return false,
    };
    if !cqueue::more(flags) {
        rx.live = false;
    }
    // Capacity is one per buffer plus the end, so this does not allocate.
    rx.staged.push_back((res, flags));
    true
}

/// The completion's buffer, if it names one of the ring's.
fn buffer_of(res: i32, flags: u32) -> Option<(u16, usize)> {
    let bid = cqueue::buffer_select(flags)?;
    Some((bid, usize::try_from(res).ok()?))
}

/// Hands staged UDP completions to `b` (slots from `b.len()`); returns
/// the error of an operation that ended with one.
pub(super) fn deliver_udp(
    rx: &mut Rx,
    scratch: &mut MsgScratch,
    b: &mut PacketBatch,
    st: &mut UringStats,
) -> Option<io::Error> {
    let want = rx.staged.len().min(b.capacity());
    if want == 0 || b.len() >= b.capacity() {
        return None;
    }
    // Headers 0..cap point at the scratch address and cmsg buffers that
    // finish_recv parses; their iovecs are not used here.
    scratch.prepare_recv(b, b.capacity());
    deliver(rx, b, st, "recvmsg", |ring, (bid, total), b, n, st| {
        let Some(len) = parse_recvmsg_out(ring, bid, total, scratch, n) else {
            ring.publish(bid); // malformed: give it back
            return false;
        };
        let zero_copy = b.slot_len() == ring.slot_len() && b.headroom() == ring_headroom(ring, bid);
        let off = ring.data_off() + PREFIX;
        let (swapped, len) = hand_over(ring, (bid, off, len), zero_copy, b, n, st);
        let offset = if swapped { off } else { b.headroom() };
        scratch.finish_recv(n, len, b);
        let meta = b.meta(n).copied().unwrap_or(PacketMeta::EMPTY);
        b.set_received_at(n, offset, PacketMeta { len, ..meta });
        true
    })
}

/// Hands staged TUN completions to `b` (slots from `b.len()`).
pub(super) fn deliver_tun(rx: &mut Rx, b: &mut PacketBatch, st: &mut UringStats) -> Option<io::Error> {
    deliver(rx, b, st, "read", |ring, (bid, len), b, n, st| {
        let off = ring.data_off();
        let zero_copy = b.slot_len() == ring.slot_len() && b.headroom() == off;
        let (_, len) = hand_over(ring, (bid, off, len), zero_copy, b, n, st);
        b.set_received(n, PacketMeta { len, ..PacketMeta::EMPTY });
        true
    })
}

/// The loop both fds share: pops staged completions into slots from
/// `b.len()` while there is room, `take` filling slot `n` from buffer
/// `(bid, bytes)` (false: nothing taken); notes operations the kernel
/// ended and commits the ring once at the end.
fn deliver(
    rx: &mut Rx,
    b: &mut PacketBatch,
    st: &mut UringStats,
    op: &str,
    mut take: impl FnMut(&mut BufRing, (u16, usize), &mut PacketBatch, usize, &mut UringStats) -> bool,
) -> Option<io::Error> {
    let mut n = b.len();
    let mut err = None;
    while n < b.capacity() {
        let Some((res, flags)) = rx.staged.pop_front() else { break };
        let Some(buf) = buffer_of(res, flags) else {
            if res < 0 || !cqueue::more(flags) {
                err = err.or(rx.ended(res.min(0), st));
            }
            continue;
        };
        let Some(ring) = rx.ring.as_mut() else { continue };
        if !take(ring, buf, b, n, st) {
            continue;
        }
        n += 1;
        rx.first_data(op);
        if !cqueue::more(flags) {
            err = err.or(rx.ended(0, st));
        }
    }
    if let Some(r) = &rx.ring {
        r.commit();
    }
    b.set_len(n);
    err
}

/// Moves held buffer `bid` (`len` payload bytes at offset `off`) into slot
/// `n` of `b`: exchanged for the slot's buffer when `zero_copy` (same
/// geometry), else copied out and given back to the ring. Returns whether
/// it was exchanged and the payload length (cut to the buffer).
fn hand_over(
    ring: &mut BufRing,
    (bid, off, len): (u16, usize, usize),
    zero_copy: bool,
    b: &mut PacketBatch,
    n: usize,
    st: &mut UringStats,
) -> (bool, usize) {
    if zero_copy && b.buf_mut(n).is_some_and(|slot| ring.exchange(bid, slot)) {
        st.swapped += 1;
        (true, len.min(ring.slot_len().saturating_sub(off)))
    } else {
        st.copied += 1;
        let got = copy_out(ring, bid, off, len, b, n);
        ring.publish(bid);
        (false, got)
    }
}

/// The headroom the pool's buffers were made with (all alike).
fn ring_headroom(ring: &BufRing, bid: u16) -> usize {
    ring.held(bid).map_or(usize::MAX, |p| p.headroom())
}

/// Copies `len` bytes from offset `off` of held buffer `bid` into slot
/// `i`'s receive area; returns the bytes copied (cut to the slot).
fn copy_out(ring: &BufRing, bid: u16, off: usize, len: usize, b: &mut PacketBatch, i: usize) -> usize {
    let (Some(src), Some(dst)) = (ring.held(bid).and_then(|p| p.storage().get(off..)), b.recv_area(i)) else {
        return 0;
    };
    let n = len.min(src.len()).min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    n
}

/// Reads the `io_uring_recvmsg_out` header of held buffer `bid` (`total`
/// bytes written), copies the peer address and control messages into
/// scratch header `i` (as a recvmsg would have left them) and returns the
/// payload length in the buffer. `None` when the buffer is too short.
// msg_controllen is usize on glibc but u32 on musl: the cast is for musl.
#[allow(clippy::unnecessary_cast)]
fn parse_recvmsg_out(
    ring: &BufRing,
    bid: u16,
    total: usize,
    scratch: &mut MsgScratch,
    i: usize,
) -> Option<usize> {
    let data = ring.held(bid)?.storage().get(ring.data_off()..)?;
    let data = data.get(..total.min(data.len()))?;
    if data.len() < PREFIX {
        return None;
    }
    let word = |k: usize| u32::from_ne_bytes([data[k], data[k + 1], data[k + 2], data[k + 3]]) as usize;
    let (namelen, controllen, payloadlen, flags) = (word(0), word(4), word(8), word(12));
    let in_buf = data.len() - PREFIX;
    let h = &mut scratch.hdrs.get_mut(i)?.msg_hdr;
    let nl = namelen.min(NAME_LEN).min(h.msg_namelen as usize);
    let cl = controllen.min(CTRL_LEN).min(h.msg_controllen as usize);
    // SAFETY: prepare_recv pointed msg_name at a live sockaddr_storage and
    // msg_control at a live cmsg buffer of msg_controllen bytes, both in
    // `scratch` (borrowed mutably here, so nothing else uses them); nl and
    // cl are within both the source (PREFIX <= data.len()) and those
    // buffers; source and destination are distinct allocations.
    unsafe {
        std::ptr::copy_nonoverlapping(data[OUT_HDR..].as_ptr(), h.msg_name.cast::<u8>(), nl);
        std::ptr::copy_nonoverlapping(data[OUT_HDR + NAME_LEN..].as_ptr(), h.msg_control.cast::<u8>(), cl);
    }
    h.msg_namelen = nl as libc::socklen_t;
    h.msg_controllen = cl as _;
    let trunc = if payloadlen > in_buf { libc::MSG_TRUNC } else { 0 };
    h.msg_flags = (flags as libc::c_int) | trunc;
    Some(payloadlen.min(in_buf))
}
