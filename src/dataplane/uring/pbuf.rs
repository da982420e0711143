//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19+) and
//! the pool of [`PacketBuf`]s it lends to the kernel.
//!
//! The ring is an mmap'd, page-aligned array of `io_uring_buf` entries
//! (address, length, buffer id) whose last 16 bits of entry 0 are the tail
//! the application advances; the kernel keeps its own head and takes the
//! buffer at `head & mask` for each receive. Buffer id `i` is always
//! `bufs[i]`: a completion names the id it filled, the owner swaps that
//! buffer out (or copies from it) and publishes the id again with whatever
//! buffer now sits at `bufs[i]`.
//!
//! Ownership: a buffer is either *lent* (published, not yet returned by a
//! completion: only the kernel may touch it) or *held* (returned by a
//! completion and not yet published: only we may touch it). This type does
//! not track which; the caller ([`super::multishot`]) touches `bufs[i]` only
//! between the completion naming `i` and the next [`BufRing::publish`] of
//! `i`. The pool is freed only after the ring is unregistered and every
//! operation that could select from it has ended (see `UringIo::drop`).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::Submitter;

use crate::esp::PacketBuf;

/// `struct io_uring_buf` (linux/io_uring.h); in entry 0, `resv` is the
/// ring's tail.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// A registered buffer ring and the buffers it lends.
pub(super) struct BufRing {
    /// Start of the mmap'd entry array (`entries` entries, page aligned).
    ring: NonNull<RingEntry>,
    map_len: usize,
    mask: u16,
    /// Our copy of the tail (the next entry to fill).
    tail: u16,
    bgid: u16,
    /// Buffer `i` has id `i`; all of `slot_len` bytes.
    bufs: Box<[PacketBuf]>,
    /// Where in each buffer the kernel writes (its published address).
    data_off: usize,
    slot_len: usize,
}

// SAFETY: the ring memory and the pool are owned by this value alone (the
// kernel side belongs to the io_uring instance, not to a thread); nothing
// here is tied to the thread that created it, so moving it is sound.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Maps a ring of `entries` (a power of two) buffers of `slot_len`
    /// bytes with `headroom` (their data window start), publishes all of
    /// them with the kernel writing from `data_off`, and registers the ring
    /// as group `bgid`.
    pub(super) fn new(
        submitter: &Submitter<'_>,
        bgid: u16,
        entries: u16,
        slot_len: usize,
        headroom: usize,
        data_off: usize,
    ) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || data_off >= slot_len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad buffer ring geometry"));
        }
        let map_len = (usize::from(entries) * size_of::<RingEntry>()).next_multiple_of(4096);
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = NonNull::new(p.cast::<RingEntry>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let bufs = (0..entries).map(|_| PacketBuf::with_headroom(slot_len, headroom)).collect();
        let mut r = BufRing { ring, map_len, mask: entries - 1, tail: 0, bgid, bufs, data_off, slot_len };
        for bid in 0..entries {
            r.publish(bid);
        }
        r.commit();
        // SAFETY: the entry array is `entries` entries of mapped memory that
        // stays mapped until `self` drops, which the owner does only after
        // unregistering the group (UringIo::drop), or never (leaked) when
        // the kernel could not be shown to be done with it.
        unsafe { submitter.register_buf_ring_with_flags(ring.as_ptr() as u64, entries, bgid, 0)? };
        Ok(r)
    }

    /// The buffer group id.
    pub(super) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Buffers in the ring.
    pub(super) fn entries(&self) -> usize {
        self.bufs.len()
    }

    /// Bytes per buffer.
    pub(super) fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// Where the kernel writes in each buffer.
    pub(super) fn data_off(&self) -> usize {
        self.data_off
    }

    /// The buffer `bid`, readable. Only for a buffer a completion returned
    /// and not yet published again (see the module doc).
    pub(super) fn held(&self, bid: u16) -> Option<&PacketBuf> {
        self.bufs.get(usize::from(bid))
    }

    /// Queues buffer `bid` (whatever buffer sits at that index now) for the
    /// kernel; visible after [`commit`](Self::commit). Only for a held
    /// buffer: publishing a lent one twice would let the kernel write it
    /// twice.
    pub(super) fn publish(&mut self, bid: u16) {
        let (off, slot_len) = (self.data_off, self.slot_len);
        let Some(b) = self.bufs.get_mut(usize::from(bid)) else { return };
        // A pool buffer that is not slot_len long (cannot happen: swaps
        // check the size) is not lent out at all.
        if b.capacity() != slot_len {
            return;
        }
        let addr = b.storage_mut()[off..].as_mut_ptr() as u64;
        let len = u32::try_from(slot_len - off).unwrap_or(u32::MAX);
        let idx = usize::from(self.tail & self.mask);
        // SAFETY: idx <= mask < entries, inside the mapped array. The
        // kernel reads entries only between its head and the committed
        // tail; this one is past the committed tail and, since there are
        // only `entries` buffers and this one is held, not under the head
        // either, so no one reads it now. Plain field writes through the
        // raw pointer leave entry 0's `resv` (the shared tail) untouched
        // and make no reference that would alias it.
        unsafe {
            let e = self.ring.as_ptr().add(idx);
            (&raw mut (*e).addr).write(addr);
            (&raw mut (*e).len).write(len);
            (&raw mut (*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the published entries visible to the kernel (one release
    /// store of the tail).
    pub(super) fn commit(&self) {
        // SAFETY: the tail is entry 0's `resv`, a 2-aligned u16 inside the
        // mapped (zero-initialised) array that lives as long as `self`; the
        // kernel reads it with an acquire load, so an atomic store is the
        // right access and AtomicU16 has u16's layout.
        let tail = unsafe { &*(&raw const (*self.ring.as_ptr()).resv).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// Exchanges the held buffer `bid` with `slot` when both are
    /// `slot_len` long, then publishes `bid` (now the slot's old buffer).
    /// Returns false and changes nothing when the sizes differ.
    pub(super) fn exchange(&mut self, bid: u16, slot: &mut PacketBuf) -> bool {
        let slot_len = self.slot_len;
        match self.bufs.get_mut(usize::from(bid)) {
            Some(b) if slot.capacity() == slot_len => {
                std::mem::swap(b, slot);
                self.publish(bid);
                true
            }
            _ => false,
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` with this length and is
        // unmapped once; the owner drops a BufRing only after unregistering
        // it (the kernel no longer reads the entries).
        unsafe { libc::munmap(self.ring.as_ptr().cast(), self.map_len) };
    }
}

/// Buffers per ring for a batch of `capacity` slots of `slot_len` bytes:
/// the batch size rounded up to a power of two, between 8 and 256, and at
/// most 8 MiB per ring.
pub(super) fn ring_entries(capacity: usize, slot_len: usize) -> u16 {
    let want = capacity.next_power_of_two().clamp(8, 256);
    let by_mem = (8usize << 20) / slot_len.max(1);
    let cap = if by_mem >= 8 { 1usize << by_mem.ilog2() } else { 8 };
    u16::try_from(want.min(cap)).unwrap_or(256)
}
