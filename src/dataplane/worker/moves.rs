//! The batch moves of a worker: segments split from TUN super-packets,
//! UDP GSO concatenation, TCP coalescing for the TUN write, hand-off of IKE
//! datagrams, and the send loops that wait for room (bounded) and count
//! what they drop. Free functions over batches, called by [`super::Worker`].

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::{ControlDatagram, IoCounters, SEND_PATIENCE};
use crate::dataplane::backend::{AnyIo, Interest, PacketIo};
use crate::dataplane::batch::{PacketBatch, PacketMeta};
use crate::dataplane::offload::{Coalescer, OffloadError, TsoPlan};
use crate::dataplane::vnet::{VNET_HDR_LEN, VnetHdr, complete_checksum};

/// Writes segments of TUN packet `p` (virtio header first) into `seg`,
/// starting at segment `from`, until `seg` is full. Returns the next
/// segment to write, or `None` when the packet is done.
pub(super) fn fill_segments(
    p: &[u8],
    from: usize,
    seg: &mut PacketBatch,
    c: &mut IoCounters,
) -> Result<Option<usize>, OffloadError> {
    let hdr = VnetHdr::parse(p).map_err(|_| OffloadError::Malformed)?;
    let body = &p[VNET_HDR_LEN..];
    let h = seg.headroom();
    if !hdr.is_gso() {
        let i = seg.len();
        let (slot, m) = seg.slot_and_meta_mut(i).ok_or(OffloadError::NoRoom)?;
        let dst = slot.get_mut(h..h + body.len()).ok_or(OffloadError::NoRoom)?;
        dst.copy_from_slice(body);
        complete_checksum(&hdr, dst).map_err(|_| OffloadError::Malformed)?;
        *m = PacketMeta { len: body.len(), offset: h, ..PacketMeta::EMPTY };
        seg.set_len(i + 1);
        return Ok(None);
    }
    let plan = TsoPlan::new(&hdr, body)?;
    if from == 0 {
        if plan.is_udp() {
            c.uso_packets += 1;
        } else {
            c.tso_packets += 1;
        }
    }
    let mut s = from;
    while s < plan.segments() {
        let i = seg.len();
        if i == seg.capacity() {
            return Ok(Some(s));
        }
        let (slot, m) = seg.slot_and_meta_mut(i).ok_or(OffloadError::NoRoom)?;
        let len = plan.write_segment(body, s, slot.get_mut(h..).ok_or(OffloadError::NoRoom)?)?;
        *m = PacketMeta { len, offset: h, ..PacketMeta::EMPTY };
        seg.set_len(i + 1);
        s += 1;
    }
    Ok(None)
}

/// Copies `p` into the next slot of a TUN write batch, behind an all-zero
/// virtio header when the queue has one.
pub(super) fn push_tun(batch: &mut PacketBatch, p: &[u8], vnet: bool) {
    let i = batch.len();
    let h = batch.headroom();
    let pre = if vnet { VNET_HDR_LEN } else { 0 };
    let Some((slot, m)) = batch.slot_and_meta_mut(i) else { return };
    let Some(dst) = slot.get_mut(h..h + pre + p.len()) else { return };
    dst[..pre].fill(0);
    dst[pre..].copy_from_slice(p);
    *m = PacketMeta { len: pre + p.len(), offset: h, ..PacketMeta::EMPTY };
    batch.set_len(i + 1);
}

/// Sends the ESP packets of `batch` as UDP_SEGMENT datagrams: runs of
/// packets to one peer with one TOS, all of one size but a shorter last,
/// are concatenated into one slot of `gso` (one copy each).
pub(super) fn send_gso(
    io: &mut AnyIo,
    batch: &PacketBatch,
    gso: &mut PacketBatch,
    c: &mut IoCounters,
) -> io::Result<()> {
    /// Most segments per GSO send (the kernel's UDP_MAX_SEGMENTS is 64+).
    const MAX_SEGS: usize = 64;
    /// Most payload bytes per GSO send (IPv4 UDP payload limit, rounded).
    const MAX_BYTES: usize = 65000;
    gso.clear();
    let h = gso.headroom();
    let mut closed = true;
    for j in 0..batch.len() {
        let (Some(p), Some(m)) = (batch.packet(j), batch.meta(j)) else { continue };
        let cur = gso.len().checked_sub(1).and_then(|i| gso.meta(i).copied());
        let append = cur.is_some_and(|c| {
            let seg = if c.segment_size == 0 { c.len } else { usize::from(c.segment_size) };
            // seg > 0 first: an empty packet never heads a run.
            !closed
                && seg > 0
                && c.addr == m.addr
                && c.tos == m.tos
                && p.len() <= seg
                && c.len / seg < MAX_SEGS
                && c.len + p.len() <= MAX_BYTES
        });
        if !append {
            if gso.len() == gso.capacity() {
                flush_gso(io, gso, c)?;
            }
            let i = gso.len();
            let Some((slot, meta)) = gso.slot_and_meta_mut(i) else { continue };
            let Some(dst) = slot.get_mut(h..h + p.len()) else {
                c.udp_send_drops += 1;
                continue;
            };
            dst.copy_from_slice(p);
            *meta = PacketMeta { len: p.len(), offset: h, segment_size: 0, ..*m };
            gso.set_len(i + 1);
            closed = false;
            continue;
        }
        let i = gso.len() - 1;
        let Some((slot, meta)) = gso.slot_and_meta_mut(i) else { continue };
        let seg = if meta.segment_size == 0 { meta.len } else { usize::from(meta.segment_size) };
        let at = h + meta.len;
        let Some(dst) = slot.get_mut(at..at + p.len()) else {
            c.udp_send_drops += 1;
            continue;
        };
        dst.copy_from_slice(p);
        meta.segment_size = seg as u16;
        meta.len += p.len();
        closed = p.len() < seg;
    }
    flush_gso(io, gso, c)
}

pub(super) fn flush_gso(io: &mut AnyIo, gso: &mut PacketBatch, c: &mut IoCounters) -> io::Result<()> {
    c.gso_sends +=
        (0..gso.len()).filter(|&i| gso.meta(i).is_some_and(|m| m.segment_size != 0)).count() as u64;
    send_all(io, gso, &mut c.udp_send_drops)?;
    gso.clear();
    Ok(())
}

/// Writes the inner packets of `batch` to a virtio-header TUN queue,
/// coalescing TCP segments of one flow into super-packets (one copy each).
pub(super) fn write_coalesced(
    io: &mut AnyIo,
    batch: &PacketBatch,
    out: &mut PacketBatch,
    co: &mut Coalescer,
    c: &mut IoCounters,
) -> io::Result<()> {
    out.clear();
    co.reset();
    let h = out.headroom();
    let mut len = 0;
    for j in 0..batch.len() {
        let Some(p) = batch.packet(j) else { continue };
        loop {
            let i = out.len();
            let Some(slot) = out.slot_mut(i) else { break };
            if co.push(&mut slot[h..], &mut len, p) {
                break;
            }
            if len == 0 {
                c.tun_write_drops += 1; // larger than a slot: cannot happen for opened packets
                break;
            }
            finish_slot(out, co, i, len, c);
            len = 0;
            if out.len() == out.capacity() {
                write_all_tun(io, out, &mut c.tun_write_drops)?;
                out.clear();
            }
        }
    }
    if len > 0 {
        let i = out.len();
        finish_slot(out, co, i, len, c);
    }
    write_all_tun(io, out, &mut c.tun_write_drops)?;
    out.clear();
    Ok(())
}

pub(super) fn finish_slot(
    out: &mut PacketBatch,
    co: &mut Coalescer,
    i: usize,
    len: usize,
    c: &mut IoCounters,
) {
    let h = out.headroom();
    if let Some(slot) = out.slot_mut(i) {
        co.finish(&mut slot[h..], len);
        if VnetHdr::parse(&slot[h..]).is_ok_and(|v| v.is_gso()) {
            c.gro_writes += 1;
        }
    }
    if let Some(m) = out.meta_mut(i) {
        *m = PacketMeta { len, offset: h, ..PacketMeta::EMPTY };
    }
    out.set_len(i + 1);
}

/// Passes an IKE datagram to the control thread; a full queue drops it
/// (counted), never blocking the worker.
pub(super) fn hand_to_control(tx: &Sender<ControlDatagram>, from: SocketAddr, p: &[u8], c: &mut IoCounters) {
    // Rare (IKE only): the copy is fine.
    if let Err(TrySendError::Full(_)) = tx.try_send(ControlDatagram { from, bytes: p.to_vec() }) {
        c.control_queue_full += 1;
    }
}

/// Sends `batch` whole over UDP; see [`drain`].
pub(super) fn send_all(io: &mut AnyIo, batch: &PacketBatch, drops: &mut u64) -> io::Result<()> {
    drain(io, batch, drops, Interest { udp_write: true, ..Interest::default() }, AnyIo::send_udp)
}

/// Writes `batch` whole to the TUN queue; see [`drain`].
pub(super) fn write_all_tun(io: &mut AnyIo, batch: &PacketBatch, drops: &mut u64) -> io::Result<()> {
    drain(io, batch, drops, Interest { tun_write: true, ..Interest::default() }, AnyIo::write_tun)
}

/// Runs `op` (a send-side [`PacketIo`] call) until the whole batch went
/// out; waits up to [`SEND_PATIENCE`] for `room`, then drops what is left
/// (counted). An error about one packet drops it and goes on; only errors
/// of the fd itself are returned.
pub(super) fn drain(
    io: &mut AnyIo,
    batch: &PacketBatch,
    drops: &mut u64,
    room: Interest,
    op: fn(&mut AnyIo, &PacketBatch, usize) -> io::Result<usize>,
) -> io::Result<()> {
    let mut from = 0;
    let mut deadline: Option<Instant> = None;
    while from < batch.len() {
        match op(io, batch, from) {
            Ok(0) | Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                *drops += (batch.len() - from) as u64;
                return Ok(());
            }
            Ok(0) => wait_writable(io, room, &mut deadline)?,
            Ok(k) => from += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(io, room, &mut deadline)?,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(_) => {
                // About this packet (no route, message too long, ...).
                *drops += 1;
                from += 1;
            }
        }
    }
    Ok(())
}

pub(super) fn wait_writable(
    io: &mut AnyIo,
    what: Interest,
    deadline: &mut Option<Instant>,
) -> io::Result<()> {
    let d = *deadline.get_or_insert_with(|| Instant::now() + SEND_PATIENCE);
    let left = d.saturating_duration_since(Instant::now());
    io.wait(what, Some(left.max(Duration::from_millis(1)))).map(|_| ())
}

/// Errors that mean the fd itself is unusable (not one bad packet).
pub(super) fn is_fatal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK | libc::EFAULT))
        || e.kind() == io::ErrorKind::NotConnected
}
