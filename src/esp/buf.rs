//! A reusable packet buffer with headroom and tailroom, so that ESP and the
//! outer headers are written around the inner packet in place (no copy).
//!
//! Layout: `[ headroom | data | tailroom ]` inside one fixed allocation made
//! when the buffer is created; pools hand the same buffers out again, so the
//! steady state allocates nothing.

use core::fmt;

/// Headroom that fits the largest outer framing: IPv6 (40) + UDP (8) +
/// ESP header (8) + IV (8).
pub const HEADROOM: usize = 64;
/// Default tailroom: ESP padding (up to 3) + pad length + next header + ICV
/// (16), rounded up, plus room for a small TFC pad.
pub const TAILROOM: usize = 64;
/// Capacity of a buffer sized for any non-GSO packet up to a 9000-byte MTU.
pub const DEFAULT_CAPACITY: usize = HEADROOM + 9216 + TAILROOM;

/// Why a buffer operation could not be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BufError {
    /// The data does not fit in the buffer's capacity.
    #[error("packet does not fit in the buffer")]
    TooLarge,
}

/// A packet buffer: one allocation with a movable data window.
#[derive(Clone)]
pub struct PacketBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl PacketBuf {
    /// An empty buffer of `capacity` bytes with [`HEADROOM`] in front (or
    /// all of it, if `capacity` is smaller).
    pub fn new(capacity: usize) -> Self {
        let start = HEADROOM.min(capacity);
        PacketBuf { buf: vec![0u8; capacity].into_boxed_slice(), start, end: start }
    }

    /// A buffer holding a copy of `packet` with default headroom and
    /// tailroom (for tests, tools and the control plane, not the hot path).
    pub fn from_packet(packet: &[u8]) -> Self {
        let mut b = PacketBuf::new(HEADROOM + packet.len() + TAILROOM);
        b.buf[HEADROOM..HEADROOM + packet.len()].copy_from_slice(packet);
        b.end = HEADROOM + packet.len();
        b
    }

    /// Empties the buffer and restores the default headroom.
    #[inline]
    pub fn reset(&mut self) {
        self.start = HEADROOM.min(self.buf.len());
        self.end = self.start;
    }

    /// Replaces the contents with a copy of `packet` at the default
    /// headroom.
    pub fn set(&mut self, packet: &[u8]) -> Result<(), BufError> {
        self.reset();
        let end = self.start.checked_add(packet.len()).ok_or(BufError::TooLarge)?;
        let dst = self.buf.get_mut(self.start..end).ok_or(BufError::TooLarge)?;
        dst.copy_from_slice(packet);
        self.end = end;
        Ok(())
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The packet bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// A buffer of `capacity` bytes whose empty data window starts at
    /// `headroom` (clamped to the capacity): the slots of an I/O batch.
    pub fn with_headroom(capacity: usize, headroom: usize) -> Self {
        let start = headroom.min(capacity);
        PacketBuf { buf: vec![0u8; capacity].into_boxed_slice(), start, end: start }
    }

    /// The data window as `(start, len)` within [`storage`](Self::storage).
    #[inline]
    pub fn window(&self) -> (usize, usize) {
        (self.start, self.end - self.start)
    }

    /// Sets the data window to `len` bytes from `start`, both clamped to
    /// the capacity (an I/O backend received into [`storage_mut`](Self::storage_mut)).
    #[inline]
    pub fn set_window(&mut self, start: usize, len: usize) {
        self.start = start.min(self.buf.len());
        self.end = self.start + len.min(self.buf.len() - self.start);
    }

    /// The whole allocation, data window or not.
    #[inline]
    pub fn storage(&self) -> &[u8] {
        &self.buf
    }

    /// The whole allocation, writable (receive into it, then
    /// [`set_window`](Self::set_window)).
    #[inline]
    pub fn storage_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Length of the packet.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True if the buffer holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }

    /// Total size of the allocation.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Grows the data by `n` bytes at the front and returns them, or `None`
    /// if the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(n)?;
        self.start = start;
        Some(&mut self.buf[start..start + n])
    }

    /// Grows the data by `n` bytes at the back and returns them, or `None`
    /// if the tailroom is too small.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.end;
        self.end += n;
        Some(&mut self.buf[old..self.end])
    }

    /// Drops `n` bytes from the front (all of them if `n > len`).
    #[inline]
    pub fn trim_front(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Shortens the data to `len` bytes (no-op if already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
    }
}

impl fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never dump contents: a buffer may hold plaintext.
        f.debug_struct("PacketBuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink() {
        let mut b = PacketBuf::from_packet(&[1, 2, 3]);
        assert_eq!(b.data(), &[1, 2, 3]);
        assert_eq!(b.headroom(), HEADROOM);
        b.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        b.append(1).unwrap()[0] = 4;
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 4]);
        b.trim_front(3);
        b.truncate(2);
        assert_eq!(b.data(), &[2, 3]);
        b.trim_front(10);
        assert!(b.is_empty());
    }

    #[test]
    fn window_is_clamped() {
        let mut b = PacketBuf::with_headroom(16, 4);
        assert_eq!(b.window(), (4, 0));
        b.storage_mut()[4..7].copy_from_slice(b"abc");
        b.set_window(4, 3);
        assert_eq!(b.data(), b"abc");
        b.set_window(10, 100);
        assert_eq!(b.window(), (10, 6));
        b.set_window(100, 1);
        assert_eq!(b.window(), (16, 0));
    }

    #[test]
    fn limits() {
        let mut b = PacketBuf::new(10);
        assert_eq!(b.headroom(), 10);
        assert!(b.append(1).is_none());
        assert!(b.prepend(11).is_none());
        assert_eq!(b.set(&[0; 11]), Err(BufError::TooLarge));
        let mut b = PacketBuf::new(HEADROOM + 4);
        b.set(&[7; 4]).unwrap();
        assert_eq!(b.tailroom(), 0);
        assert!(!format!("{b:?}").contains('7'));
    }
}
