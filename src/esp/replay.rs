//! Anti-replay window (RFC 4303 §3.4.3 and Appendix A) with extended
//! sequence numbers (RFC 4304).
//!
//! The window is a ring of 64-bit blocks indexed by `seq / 64`, as in
//! RFC 6479: advancing the window clears whole blocks instead of shifting a
//! long bitmap, so the cost of a packet does not grow with the window size.
//! The ring has one block more than the window needs, so the block holding
//! the oldest in-window sequence number is never the one being reused for
//! the newest.
//!
//! The check is split from the update: [`ReplayWindow::check`] runs before
//! the (expensive) AEAD verification and [`ReplayWindow::commit`] only after
//! it succeeded, so forged packets can neither advance nor poison the window
//! (RFC 4303 §3.4.3).
//!
//! With ESN only the low 32 bits travel on the wire; `check` infers the high
//! half as in RFC 4303 Appendix A2.2 and the AEAD (whose AAD includes the
//! high half) confirms the guess.

/// Default window in packets: far above strongSwan libipsec's fixed 128, so
/// reordering across several workers or paths does not cost packets.
pub const DEFAULT_WINDOW: u32 = 1024;
/// Largest supported window in packets.
pub const MAX_WINDOW: u32 = 65536;
/// Smallest supported non-zero window (RFC 4303 §3.4.3: at least 32).
pub const MIN_WINDOW: u32 = 32;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Inside the window and already received.
    #[error("sequence number already received")]
    Replayed,
    /// Older than the window (or 0, which is never sent).
    #[error("sequence number older than the replay window")]
    TooOld,
}

/// The window size is outside [`MIN_WINDOW`]..=[`MAX_WINDOW`] (and not 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replay window must be 0 (off) or {MIN_WINDOW}..={MAX_WINDOW} packets")]
pub struct WindowSizeError;

/// Receive-side anti-replay state of one inbound SA (single writer).
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Ring of bit blocks; bit `s % 64` of block `(s / 64) % len` stands
    /// for sequence number `s`.
    blocks: Box<[u64]>,
    /// `blocks.len() - 1` (the length is a power of two).
    mask: u64,
    /// Window size in packets; 0 = anti-replay off.
    size: u64,
    /// Highest sequence number committed so far (0 = none yet).
    top: u64,
    esn: bool,
}

impl ReplayWindow {
    /// A window of `size` packets (0 turns anti-replay off, which RFC 4303
    /// allows only by local choice, e.g. for a benchmark with static keys).
    pub fn new(size: u32, esn: bool) -> Result<Self, WindowSizeError> {
        if size != 0 && !(MIN_WINDOW..=MAX_WINDOW).contains(&size) {
            return Err(WindowSizeError);
        }
        let nblocks = (size as usize).div_ceil(64) + 1;
        let nblocks = nblocks.next_power_of_two();
        Ok(ReplayWindow {
            blocks: vec![0; nblocks].into_boxed_slice(),
            mask: nblocks as u64 - 1,
            size: u64::from(size),
            top: 0,
            esn,
        })
    }

    /// Window size in packets (0 = off).
    pub fn size(&self) -> u32 {
        self.size as u32
    }

    /// Highest sequence number committed so far (0 before the first).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full sequence number a packet carrying `seq_low` most likely
    /// has: the low 32 bits themselves without ESN, and with ESN the high
    /// half inferred from the window position (RFC 4303 Appendix A2.2).
    pub fn infer(&self, seq_low: u32) -> u64 {
        if !self.esn {
            return u64::from(seq_low);
        }
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        // The bottom of the window; a window of 0 behaves like one of 1.
        let w = self.size.max(1) as u32;
        let bottom = tl.wrapping_sub(w - 1);
        let hi = if tl >= w - 1 {
            // The window lies within one 2^32 subspace.
            if seq_low >= bottom { th } else { th.wrapping_add(1) }
        } else if seq_low >= bottom {
            // The window straddles a subspace boundary and `seq_low` is in
            // its older part.
            th.wrapping_sub(1)
        } else {
            th
        };
        // Before the first wrap the "previous subspace" does not exist.
        if th == 0 && hi == u32::MAX {
            return u64::from(seq_low);
        }
        (u64::from(hi) << 32) | u64::from(seq_low)
    }

    /// Checks `seq_low` (the 32 bits on the wire) without changing state and
    /// returns the full sequence number to authenticate and then
    /// [`commit`](Self::commit).
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = self.infer(seq_low);
        if seq == 0 {
            return Err(ReplayError::TooOld);
        }
        if self.size == 0 || seq > self.top {
            return Ok(seq);
        }
        if self.top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        if self.blocks[self.block_index(seq)] & (1u64 << (seq & 63)) != 0 {
            return Err(ReplayError::Replayed);
        }
        Ok(seq)
    }

    /// Records `seq` (returned by [`check`](Self::check) for a packet whose
    /// ICV verified), advancing the window if it is the newest.
    pub fn commit(&mut self, seq: u64) {
        if seq > self.top {
            let old_block = self.top >> 6;
            let new_block = seq >> 6;
            let ring = self.mask + 1;
            if new_block - old_block >= ring {
                self.blocks.fill(0);
            } else {
                for b in old_block + 1..=new_block {
                    let i = (b & self.mask) as usize;
                    self.blocks[i] = 0;
                }
            }
            self.top = seq;
        }
        if self.size != 0 {
            let i = self.block_index(seq);
            self.blocks[i] |= 1u64 << (seq & 63);
        }
    }

    /// [`check`](Self::check) then [`commit`](Self::commit), for callers
    /// that authenticated by other means (tests, benches).
    pub fn check_and_commit(&mut self, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = self.check(seq_low)?;
        self.commit(seq);
        Ok(seq)
    }

    fn block_index(&self, seq: u64) -> usize {
        ((seq >> 6) & self.mask) as usize
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
