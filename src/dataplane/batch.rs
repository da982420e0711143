//! Per-worker packet buffers: a [`PacketBatch`] is a fixed set of equal-size
//! slots in one allocation plus per-slot metadata, allocated once at worker
//! start and reused for every batch, so the I/O path allocates nothing per
//! packet.
//!
//! Backends fill slots `0..len()` on receive and send slots `from..len()`
//! on transmit. A batch made [`PacketBatch::with_headroom`] receives each
//! packet `headroom` bytes into its slot, so ESP can prepend outer headers
//! in place; [`PacketMeta::offset`] says where each packet starts, and sends
//! use it, so a packet grown to the front goes out without a copy. What a slot holds depends on the fd: a UDP payload (or
//! several equal-size segments when [`PacketMeta::segment_size`] is set),
//! or a TUN packet preceded by its `virtio_net_hdr` when the queue has one.

use crate::esp::PacketBuf;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Metadata of one packet in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Packet length in bytes.
    pub len: usize,
    /// Where the packet starts within its slot (the batch headroom after a
    /// receive; lower after headers were prepended in place).
    pub offset: usize,
    /// UDP: the peer (source on receive, destination on send). Unused for TUN.
    pub addr: SocketAddr,
    /// UDP: the outer IPv4 TOS / IPv6 traffic class byte (DSCP and ECN).
    /// Filled on receive; on send a non-zero value is set on the packet.
    pub tos: u8,
    /// UDP: when non-zero, the slot holds several datagrams of this size
    /// each (the last may be shorter). On receive: coalesced by UDP_GRO; on
    /// send: split by UDP_SEGMENT (GSO), all to `addr`.
    pub segment_size: u16,
    /// Receive only: the datagram was larger than the slot and was cut.
    pub truncated: bool,
}

impl PacketMeta {
    /// Empty metadata (length 0, unspecified address).
    pub const EMPTY: PacketMeta = PacketMeta {
        len: 0,
        offset: 0,
        addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        tos: 0,
        segment_size: 0,
        truncated: false,
    };
}

/// A reusable batch of packet slots, the per-worker buffer pool.
///
/// Each slot is an [`esp::PacketBuf`](crate::esp::PacketBuf) of `slot_len`
/// bytes, so the engine seals and opens the received bytes where they lie:
/// [`bufs_mut`](Self::bufs_mut) hands the slots to the engine with their
/// data windows set from the metadata, [`sync_meta`](Self::sync_meta) takes
/// the windows back after the engine grew or trimmed them, and
/// [`swap`](Self::swap) reorders slots (moving pointers, not bytes) so the
/// packets to send sit together at the front.
#[derive(Debug)]
pub struct PacketBatch {
    bufs: Box<[PacketBuf]>,
    slot_len: usize,
    headroom: usize,
    meta: Box<[PacketMeta]>,
    len: usize,
}

impl PacketBatch {
    /// Allocates `slots` slots of `slot_len` bytes each (once, at start).
    pub fn new(slots: usize, slot_len: usize) -> PacketBatch {
        PacketBatch::with_headroom(slots, slot_len, 0)
    }

    /// Like [`new`](Self::new), but receives land `headroom` bytes into
    /// each slot (room for headers prepended in place).
    ///
    /// # Panics
    /// If `headroom >= slot_len` (a configuration error).
    pub fn with_headroom(slots: usize, slot_len: usize, headroom: usize) -> PacketBatch {
        assert!(headroom < slot_len, "headroom must leave room in the slot");
        PacketBatch {
            bufs: (0..slots).map(|_| PacketBuf::with_headroom(slot_len, headroom)).collect(),
            slot_len,
            headroom,
            meta: vec![PacketMeta::EMPTY; slots].into_boxed_slice(),
            len: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// Bytes per slot.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// Bytes before each received packet in its slot.
    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// Packets in the batch (slots `0..len()` are valid).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no packets.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the packet count (clamped to the capacity), e.g. after filling
    /// slots for a send.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity());
    }

    /// Empties the batch.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Byte range of packet `i` in its slot, clamped to the slot.
    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let m = self.meta.get(i)?;
        let off = m.offset.min(self.slot_len);
        let len = m.len.min(self.slot_len - off);
        Some(off..off + len)
    }

    /// The bytes of packet `i` (`meta.len` bytes from `meta.offset`,
    /// clamped to the slot).
    pub fn packet(&self, i: usize) -> Option<&[u8]> {
        let r = self.range(i)?;
        self.bufs.get(i)?.storage().get(r)
    }

    /// The bytes of packet `i`, writable.
    pub fn packet_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let r = self.range(i)?;
        self.bufs.get_mut(i)?.storage_mut().get_mut(r)
    }

    /// The whole slot `i` (for filling before a send; then set
    /// `meta_mut(i).len`).
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.bufs.get_mut(i).map(PacketBuf::storage_mut)
    }

    /// Slot `i` and its metadata together, both writable.
    pub fn slot_and_meta_mut(&mut self, i: usize) -> Option<(&mut [u8], &mut PacketMeta)> {
        let meta = self.meta.get_mut(i)?;
        let slot = self.bufs.get_mut(i)?.storage_mut();
        Some((slot, meta))
    }

    /// Metadata of slot `i`.
    pub fn meta(&self, i: usize) -> Option<&PacketMeta> {
        self.meta.get(i)
    }

    /// Metadata of slot `i`, writable.
    pub fn meta_mut(&mut self, i: usize) -> Option<&mut PacketMeta> {
        self.meta.get_mut(i)
    }

    /// Copies `bytes` into the next free slot after the headroom with
    /// `meta` (its `len` and `offset` are set here). Returns false when the
    /// batch is full or `bytes` does not fit. For tests and the control path.
    pub fn push(&mut self, bytes: &[u8], meta: PacketMeta) -> bool {
        let i = self.len;
        let off = self.headroom;
        if bytes.len() > self.slot_len - off {
            return false;
        }
        let Some((slot, m)) = self.slot_and_meta_mut(i) else { return false };
        slot[off..off + bytes.len()].copy_from_slice(bytes);
        *m = PacketMeta { len: bytes.len(), offset: off, ..meta };
        self.len = i + 1;
        true
    }

    /// Slots `0..len()` as engine buffers, their data windows set from the
    /// metadata. Call [`sync_meta`](Self::sync_meta) after changing them.
    pub fn bufs_mut(&mut self) -> &mut [PacketBuf] {
        let n = self.len;
        for (b, m) in self.bufs[..n].iter_mut().zip(&self.meta[..n]) {
            b.set_window(m.offset, m.len);
        }
        &mut self.bufs[..n]
    }

    /// Copies the data windows of slots `0..len()` back into their
    /// metadata (`offset`, `len`) after the engine changed them.
    pub fn sync_meta(&mut self) {
        let n = self.len;
        for (b, m) in self.bufs[..n].iter().zip(self.meta[..n].iter_mut()) {
            (m.offset, m.len) = b.window();
        }
    }

    /// Exchanges slots `a` and `b` with their metadata (pointer moves, no
    /// byte copies); out-of-range indices do nothing.
    pub fn swap(&mut self, a: usize, b: usize) {
        if a < self.capacity() && b < self.capacity() {
            self.bufs.swap(a, b);
            self.meta.swap(a, b);
        }
    }

    /// The receive area of slot `i` (after the headroom).
    pub(crate) fn recv_area(&mut self, i: usize) -> Option<&mut [u8]> {
        let h = self.headroom;
        self.slot_mut(i).map(|s| &mut s[h..])
    }

    /// Raw pointer to the receive area of slot `i` for the backends; `i`
    /// must be below the capacity.
    pub(crate) fn recv_ptr(&mut self, i: usize) -> *mut u8 {
        debug_assert!(i < self.capacity());
        let h = self.headroom;
        self.bufs[i].storage_mut()[h..].as_mut_ptr()
    }

    /// Bytes available for one received packet.
    pub(crate) fn recv_len(&self) -> usize {
        self.slot_len - self.headroom
    }

    /// Records a received packet of `len` bytes in slot `i`.
    pub(crate) fn set_received(&mut self, i: usize, meta: PacketMeta) {
        let (recv_len, headroom) = (self.recv_len(), self.headroom);
        if let Some(m) = self.meta.get_mut(i) {
            *m = PacketMeta { len: meta.len.min(recv_len), offset: headroom, ..meta };
        }
    }

    /// Records a received packet in slot `i` that starts `offset` bytes
    /// into the slot (a backend whose kernel buffer has a header in front);
    /// offset and length are clamped to the slot.
    pub(crate) fn set_received_at(&mut self, i: usize, offset: usize, meta: PacketMeta) {
        let off = offset.min(self.slot_len);
        let room = self.slot_len - off;
        if let Some(m) = self.meta.get_mut(i) {
            *m = PacketMeta { len: meta.len.min(room), offset: off, ..meta };
        }
    }

    /// Slot `i`'s buffer itself, for a backend that exchanges it with a
    /// buffer the kernel filled (same size: see the io_uring backend).
    pub(crate) fn buf_mut(&mut self, i: usize) -> Option<&mut PacketBuf> {
        self.bufs.get_mut(i)
    }

    /// Moves slot `from`'s packet and metadata to slot `to` (compaction
    /// after an out-of-order completion; rare). Slot `from` then holds
    /// `to`'s old bytes.
    pub(crate) fn move_slot(&mut self, from: usize, to: usize) {
        self.swap(from, to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_back() {
        let mut b = PacketBatch::new(2, 4);
        assert!(b.is_empty());
        assert!(b.push(b"ab", PacketMeta::EMPTY));
        assert!(b.push(b"cdef", PacketMeta { tos: 3, ..PacketMeta::EMPTY }));
        assert!(!b.push(b"x", PacketMeta::EMPTY), "full");
        assert_eq!(b.len(), 2);
        assert_eq!(b.packet(0), Some(&b"ab"[..]));
        assert_eq!(b.packet(1), Some(&b"cdef"[..]));
        assert_eq!(b.meta(1).map(|m| (m.len, m.tos)), Some((4, 3)));
        assert_eq!(b.packet(2), None);
        b.clear();
        assert!(!b.push(b"toolong", PacketMeta::EMPTY));
    }

    #[test]
    fn meta_len_beyond_slot_is_clamped() {
        let mut b = PacketBatch::new(2, 4);
        b.meta_mut(0).unwrap().len = 100;
        assert_eq!(b.packet(0).map(<[u8]>::len), Some(4));
        assert_eq!(b.slot_mut(2), None);
    }

    #[test]
    fn move_slot_swaps_bytes_and_meta() {
        let mut b = PacketBatch::new(3, 4);
        b.set_len(3);
        b.slot_mut(2).unwrap().copy_from_slice(b"wxyz");
        *b.meta_mut(2).unwrap() = PacketMeta { len: 3, offset: 1, ..PacketMeta::EMPTY };
        b.move_slot(2, 0);
        // The packet keeps its place in the slot.
        assert_eq!(b.packet(0), Some(&b"xyz"[..]));
        assert_eq!(b.meta(2).unwrap().len, 0);
    }

    #[test]
    fn engine_windows_round_trip() {
        let mut b = PacketBatch::with_headroom(2, 32, 8);
        assert!(b.push(b"inner", PacketMeta::EMPTY));
        let bufs = b.bufs_mut();
        assert_eq!(bufs.len(), 1);
        assert_eq!(bufs[0].data(), b"inner");
        bufs[0].prepend(3).unwrap().copy_from_slice(b"ESP");
        bufs[0].append(2).unwrap().copy_from_slice(b"!!");
        b.sync_meta();
        assert_eq!(b.packet(0), Some(&b"ESPinner!!"[..]));
        assert_eq!(b.meta(0).unwrap().offset, 5);
    }

    #[test]
    fn headroom_then_prepend_in_place() {
        let mut b = PacketBatch::with_headroom(2, 16, 8);
        assert!(b.push(b"payload", PacketMeta::EMPTY));
        assert_eq!(b.meta(0).unwrap().offset, 8);
        assert!(!b.push(&[0; 9], PacketMeta::EMPTY), "only 8 bytes after the headroom");
        // Prepend a 4-byte header by moving the offset back.
        let (slot, m) = b.slot_and_meta_mut(0).unwrap();
        slot[4..8].copy_from_slice(b"HDR:");
        m.offset -= 4;
        m.len += 4;
        assert_eq!(b.packet(0), Some(&b"HDR:payload"[..]));
        // A bogus offset/len is clamped to the slot, never out of bounds.
        let m = b.meta_mut(0).unwrap();
        (m.offset, m.len) = (100, 100);
        assert_eq!(b.packet(0), Some(&[][..]));
        assert_eq!(b.recv_len(), 8);
    }
}
