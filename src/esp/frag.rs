//! IPv4 fragmentation of inner packets before encryption (RFC 4459 §3.4).
//!
//! When an inner IPv4 packet has DF clear and would not fit the path MTU once
//! ESP and the outer headers are added, the tunnel splits the *inner* packet
//! into IPv4 fragments that each fit, and seals every fragment as its own ESP
//! packet. The destination host reassembles them; the peer gateway only
//! decrypts and forwards. This keeps the outer packets unfragmented (outer
//! fragments are often dropped by middleboxes and NAT, and a lost fragment
//! costs a whole ESP packet), at the price of letting the end host do the
//! reassembly, which is exactly what DF clear permits.
//!
//! [`Fragmenter`] follows RFC 791's fragmentation procedure: every fragment
//! carries the original identification, source, destination and protocol; all
//! fragments but the last carry a multiple of 8 payload bytes and set MF; the
//! fragment offset counts 8-byte units from the start of the *original*
//! datagram, so an input that is itself a fragment is split further with its
//! offsets kept and, if it had MF set, the last piece keeps MF. The first
//! fragment carries every IP option; later fragments carry only options whose
//! "copied" flag (bit 7 of the option type) is set, padded with
//! end-of-option-list bytes to a multiple of 4.
//!
//! Non-goals: IPv6 (routers never fragment IPv6; see [`super::pmtu`]), and
//! reassembly (the end host does that). Sans-IO and allocation-free: the caller
//! owns the output buffer and calls [`Fragmenter::next_into`] once per fragment.

use crate::wire::checksum;

/// IPv4 header without options.
const MIN_HDR: usize = 20;
/// Largest IPv4 header (IHL 15).
const MAX_HDR: usize = 60;
/// Don't Fragment flag in the flags/offset word.
const DF: u16 = 0x4000;
/// More Fragments flag in the flags/offset word.
const MF: u16 = 0x2000;
/// The reserved flag bit, kept as received.
const RESERVED: u16 = 0x8000;
/// Fragment offset mask (13 bits, in 8-byte units).
const OFFSET_MASK: u16 = 0x1fff;
/// Largest IPv4 datagram (total length is 16 bits).
const MAX_DATAGRAM: usize = 65_535;

/// Why a packet cannot be fragmented, or a fragment not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FragError {
    /// Shorter than an IPv4 header, or than its own IHL or total length.
    #[error("truncated IPv4 packet")]
    Truncated,
    /// Not IPv4, IHL below 5, total length below the header length, or an
    /// offset plus payload past 65535 bytes.
    #[error("malformed IPv4 header")]
    Malformed,
    /// The IPv4 header checksum does not verify (a corrupt header is not
    /// laundered into fragments with fresh checksums).
    #[error("bad IPv4 header checksum")]
    BadChecksum,
    /// An IP option has a length below 2 or runs past the header.
    #[error("malformed IPv4 option")]
    BadOption,
    /// DF is set: the sender asked not to be fragmented; answer with an ICMP
    /// "fragmentation needed" instead (see [`super::pmtu`]).
    #[error("don't-fragment flag set")]
    DontFragment,
    /// `max_len` leaves fewer than 8 payload bytes after the header.
    #[error("maximum fragment length too small")]
    MaxLenTooSmall,
    /// The output buffer is shorter than the next fragment; nothing was
    /// written and the same fragment is produced by the next call.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Splits one IPv4 packet into fragments of at most `max_len` bytes.
///
/// Call [`next_into`](Self::next_into) until it returns `None`. The
/// fragmenter borrows the packet and allocates nothing.
#[derive(Clone, Debug)]
pub struct Fragmenter<'a> {
    /// The original header, options included.
    header: &'a [u8],
    /// The original payload (up to the header's total length).
    payload: &'a [u8],
    /// Options with the copied flag, in order, for later fragments.
    copied: [u8; MAX_HDR - MIN_HDR],
    /// Length of the header of later fragments (20 + padded copied options).
    later_hdr_len: usize,
    /// Offset of the input in the original datagram, in bytes.
    base_offset: usize,
    /// The input's MF flag, kept on the last piece.
    input_mf: bool,
    /// Largest fragment to produce.
    max_len: usize,
    /// Payload bytes already emitted.
    done: usize,
    /// Whether the first fragment has been emitted.
    started: bool,
}

impl<'a> Fragmenter<'a> {
    /// Validates `packet` (an IPv4 packet with DF clear) and prepares to split
    /// it into fragments of at most `max_len` bytes, headers included.
    ///
    /// Bytes past the header's total length are ignored. A packet that
    /// already fits produces one fragment equal to itself (checksum
    /// recomputed).
    pub fn new(packet: &'a [u8], max_len: usize) -> Result<Self, FragError> {
        let first = *packet.first().ok_or(FragError::Truncated)?;
        if first >> 4 != 4 {
            return Err(FragError::Malformed);
        }
        let hdr_len = usize::from(first & 0x0f) * 4;
        if hdr_len < MIN_HDR {
            return Err(FragError::Malformed);
        }
        let header = packet.get(..hdr_len).ok_or(FragError::Truncated)?;
        let total = usize::from(be16(header, 2));
        if total < hdr_len {
            return Err(FragError::Malformed);
        }
        let payload = packet.get(hdr_len..total).ok_or(FragError::Truncated)?;
        if checksum::checksum(header) != 0 {
            return Err(FragError::BadChecksum);
        }
        let flags = be16(header, 6);
        if flags & DF != 0 {
            return Err(FragError::DontFragment);
        }
        let base_offset = usize::from(flags & OFFSET_MASK) * 8;
        if base_offset + payload.len() > MAX_DATAGRAM {
            return Err(FragError::Malformed);
        }
        if max_len < hdr_len + 8 {
            return Err(FragError::MaxLenTooSmall);
        }
        let mut copied = [0u8; MAX_HDR - MIN_HDR];
        let copied_len = copied_options(header.get(MIN_HDR..).unwrap_or(&[]), &mut copied)?;
        // Padding with zeros (end of option list) to a 4-byte boundary; the
        // result never exceeds the original option area, so max_len (which
        // fits the first header plus 8) also fits later headers plus 8.
        let later_hdr_len = MIN_HDR + copied_len.next_multiple_of(4);
        Ok(Self {
            header,
            payload,
            copied,
            later_hdr_len,
            base_offset,
            input_mf: flags & MF != 0,
            max_len,
            done: 0,
            started: false,
        })
    }

    /// The total number of fragments this packet produces (including those
    /// already written).
    pub fn count(&self) -> usize {
        let first_room = self.max_len - self.header.len();
        if self.payload.len() <= first_room {
            return 1;
        }
        let rest = self.payload.len() - round8(first_room);
        let room = self.max_len - self.later_hdr_len;
        if rest <= room {
            return 2;
        }
        // Full pieces of round8(room) until the remainder fits in `room`.
        2 + (rest - room).div_ceil(round8(room))
    }

    /// Writes the next fragment into `out` and returns its length, or `None`
    /// once every fragment has been written.
    ///
    /// On `Err(BufferTooSmall)` nothing is consumed; retry with a larger
    /// buffer (`max_len` bytes always suffice).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, FragError>> {
        if self.started && self.done >= self.payload.len() {
            return None;
        }
        let hdr_len = if self.started { self.later_hdr_len } else { self.header.len() };
        let remaining = self.payload.len() - self.done;
        let room = self.max_len - hdr_len;
        let (chunk, last) = if remaining <= room { (remaining, true) } else { (round8(room), false) };
        let len = hdr_len + chunk;
        let Some(out) = out.get_mut(..len) else {
            return Some(Err(FragError::BufferTooSmall));
        };
        let (hdr, body) = out.split_at_mut(hdr_len);
        if self.started {
            self.write_later_header(hdr);
        } else {
            hdr.copy_from_slice(self.header);
        }
        // In range: done + chunk <= payload.len() by construction of `chunk`.
        body.copy_from_slice(self.payload.get(self.done..self.done + chunk).unwrap_or(&[]));
        // Fits 13 bits: base_offset + payload.len() <= 65535 was checked.
        let offset = ((self.base_offset + self.done) / 8) as u16;
        let mf = !last || self.input_mf;
        let flags = (be16(self.header, 6) & RESERVED) | if mf { MF } else { 0 } | offset;
        // len <= hdr_len + payload.len() <= 65535 (checked in new()).
        finish_header(hdr, len as u16, flags);
        self.done += chunk;
        self.started = true;
        Some(Ok(len))
    }

    /// Writes the 20 fixed bytes of the original header followed by the
    /// copied options and zero padding, into `hdr` (of `later_hdr_len` bytes).
    fn write_later_header(&self, hdr: &mut [u8]) {
        for (i, b) in hdr.iter_mut().enumerate() {
            *b = if i < MIN_HDR {
                self.header.get(i).copied().unwrap_or(0)
            } else {
                self.copied.get(i - MIN_HDR).copied().unwrap_or(0)
            };
        }
    }
}

/// Sets IHL (from `hdr.len()`), total length and flags/offset in an IPv4
/// header and recomputes its checksum.
fn finish_header(hdr: &mut [u8], total_len: u16, flags: u16) {
    let ihl = (hdr.len() / 4) as u8;
    if let Some(b) = hdr.get_mut(0) {
        *b = 0x40 | (ihl & 0x0f);
    }
    put16(hdr, 2, total_len);
    put16(hdr, 6, flags);
    put16(hdr, 10, 0);
    let c = checksum::checksum(hdr);
    put16(hdr, 10, c);
}

/// Walks the option area `opts` (RFC 791 §3.1) and appends every option whose
/// copied flag is set to `out`, returning the number of bytes written.
fn copied_options(opts: &[u8], out: &mut [u8; MAX_HDR - MIN_HDR]) -> Result<usize, FragError> {
    let mut i = 0;
    let mut n = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            // End of option list: the rest is padding.
            0 => break,
            // No operation: one byte, copied flag clear.
            1 => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1).ok_or(FragError::BadOption)?);
                if len < 2 {
                    return Err(FragError::BadOption);
                }
                let opt = opts.get(i..i + len).ok_or(FragError::BadOption)?;
                if kind & 0x80 != 0 {
                    // The copied options are a subset of `opts`, which is at
                    // most 40 bytes, so this never falls outside `out`.
                    let dst = out.get_mut(n..n + len).ok_or(FragError::BadOption)?;
                    dst.copy_from_slice(opt);
                    n += len;
                }
                i += len;
            }
        }
    }
    Ok(n)
}

/// Rounds down to a multiple of 8.
fn round8(n: usize) -> usize {
    n & !7
}

/// Big-endian u16 at `at`, or 0 when out of range (callers check lengths).
fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

/// Writes a big-endian u16 at `at` when in range (callers check lengths).
fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(dst) = b.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: [u8; 4] = [198, 51, 100, 7];
    const DST: [u8; 4] = [203, 0, 113, 9];

    /// Builds an IPv4 packet byte by byte: options (padded by the caller to a
    /// multiple of 4), payload bytes 0, 1, 2, ... (mod 251), flags/offset word.
    fn ipv4(opts: &[u8], payload_len: usize, flags: u16) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let hl = 20 + opts.len();
        let total = hl + payload_len;
        let mut p = vec![0x40 | (hl / 4) as u8, 0x28];
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0xbe, 0xef]); // identification
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&[17, 17, 0, 0]); // TTL, protocol UDP, checksum
        p.extend_from_slice(&SRC);
        p.extend_from_slice(&DST);
        p.extend_from_slice(opts);
        let c = checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend((0..payload_len).map(|i| (i % 251) as u8));
        p
    }

    /// Runs the fragmenter to completion, checking per-fragment invariants.
    fn fragment(packet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
        let mut f = Fragmenter::new(packet, max_len).expect("valid input");
        let count = f.count();
        let mut out = Vec::new();
        let mut buf = vec![0u8; max_len.min(70_000)];
        while let Some(r) = f.next_into(&mut buf) {
            let n = r.expect("buffer is max_len long");
            assert!(n <= max_len, "fragment {n} > max {max_len}");
            let frag = buf[..n].to_vec();
            let ihl = usize::from(frag[0] & 0x0f) * 4;
            assert_eq!(frag[0] >> 4, 4);
            assert_eq!(checksum::checksum(&frag[..ihl]), 0, "header checksum verifies");
            assert_eq!(usize::from(u16::from_be_bytes([frag[2], frag[3]])), n);
            out.push(frag);
            assert!(out.len() <= 10_000, "bounded");
        }
        assert_eq!(out.len(), count, "count() matches the fragments produced");
        // Every fragment but the last carries a multiple of 8 payload bytes.
        for frag in &out[..out.len() - 1] {
            let ihl = usize::from(frag[0] & 0x0f) * 4;
            assert_eq!((frag.len() - ihl) % 8, 0);
        }
        out
    }

    /// A test-only reassembler: returns (offset of the first byte, payload,
    /// MF of the piece that ends the data), checking identity fields, that the
    /// pieces are contiguous and do not overlap, and that only the last piece
    /// may lack MF.
    fn reassemble(orig: &[u8], frags: &[Vec<u8>]) -> (usize, Vec<u8>, bool) {
        let mut pieces: Vec<(usize, &[u8], bool)> = frags
            .iter()
            .map(|f| {
                assert_eq!(&f[4..6], &orig[4..6], "identification kept");
                assert_eq!(&f[8..10], &orig[8..10], "TTL and protocol kept");
                assert_eq!(&f[12..20], &orig[12..20], "addresses kept");
                assert_eq!(f[1], orig[1], "TOS kept");
                let fo = u16::from_be_bytes([f[6], f[7]]);
                assert_eq!(fo & DF, 0);
                let ihl = usize::from(f[0] & 0x0f) * 4;
                (usize::from(fo & OFFSET_MASK) * 8, &f[ihl..], fo & MF != 0)
            })
            .collect();
        pieces.sort_by_key(|p| p.0);
        let start = pieces[0].0;
        let mut data = Vec::new();
        for (i, (off, body, mf)) in pieces.iter().enumerate() {
            assert_eq!(*off, start + data.len(), "contiguous, no overlap");
            if i + 1 < pieces.len() {
                assert!(*mf, "MF set on all but the last piece");
            }
            data.extend_from_slice(body);
        }
        (start, data, pieces.last().unwrap().2)
    }

    #[test]
    fn splits_and_reassembles() {
        let p = ipv4(&[], 3000, 0);
        let frags = fragment(&p, 1400);
        // 1400 - 20 = 1380 (a multiple of 4 but not 8) -> 1376-byte pieces.
        assert_eq!(frags.len(), 3);
        assert_eq!(frags[0].len(), 20 + 1376);
        assert_eq!(frags[1].len(), 20 + 1376);
        assert_eq!(frags[2].len(), 20 + 3000 - 2 * 1376);
        assert_eq!(u16::from_be_bytes([frags[1][6], frags[1][7]]), 0x2000 | 172); // MF, offset 1376/8
        assert_eq!(u16::from_be_bytes([frags[2][6], frags[2][7]]), 344);
        let (start, data, mf) = reassemble(&p, &frags);
        assert_eq!((start, mf), (0, false));
        assert_eq!(data, &p[20..]);
    }

    #[test]
    fn fitting_packet_is_one_identical_fragment() {
        let p = ipv4(&[], 100, 0);
        let frags = fragment(&p, 120);
        assert_eq!(frags, vec![p.clone()]);
        let frags = fragment(&p, 1500);
        assert_eq!(frags, vec![p]);
    }

    #[test]
    fn header_only_packet() {
        let p = ipv4(&[], 0, 0);
        assert_eq!(fragment(&p, 28), vec![p]);
    }

    #[test]
    fn reserved_flag_kept_and_trailing_bytes_ignored() {
        let mut p = ipv4(&[], 40, RESERVED);
        let orig = p.clone();
        p.extend_from_slice(&[0xaa; 7]); // beyond total length
        let frags = fragment(&p, 36);
        assert_eq!(frags.len(), 3);
        for f in &frags {
            assert_eq!(f[6] & 0x80, 0x80);
        }
        assert_eq!(reassemble(&orig, &frags).1, &orig[20..]);
    }

    #[test]
    fn options_copied_per_rfc791() {
        // Security (130, copied, 11 bytes), record route (7, not copied),
        // NOP, loose source route (131, copied), end of list + padding.
        let mut opts = vec![0x82, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        opts.extend_from_slice(&[0x07, 7, 4, 0, 0, 0, 0]);
        opts.push(0x01);
        opts.extend_from_slice(&[0x83, 7, 4, 192, 0, 2, 9]);
        opts.extend_from_slice(&[0, 0]);
        assert_eq!(opts.len(), 28);
        let p = ipv4(&opts, 500, 0);
        let frags = fragment(&p, 48 + 200);
        assert_eq!(frags.len(), 3);
        // First fragment: the whole original header, options and all.
        assert_eq!(frags[0][0], 0x4c);
        assert_eq!(&frags[0][20..48], &opts[..]);
        // Later fragments: only the copied options, padded to 20 bytes.
        let mut later = vec![0x82, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x83, 7, 4, 192, 0, 2, 9];
        later.extend_from_slice(&[0, 0]);
        for f in &frags[1..] {
            assert_eq!(f[0], 0x4a, "IHL 10 = 40 bytes");
            assert_eq!(&f[20..40], &later[..]);
        }
        // The first piece carries 200 bytes; later ones have 208 bytes of room.
        assert_eq!(frags[0].len(), 48 + 200);
        assert_eq!(frags[1].len(), 40 + 208);
        assert_eq!(frags[2].len(), 40 + 500 - 200 - 208);
        assert_eq!(reassemble(&p, &frags).1, &p[48..]);
    }

    #[test]
    fn options_without_copied_flag_vanish_from_later_fragments() {
        // Timestamp (68) only: later fragments have a bare 20-byte header.
        let opts = [68, 8, 5, 0, 0, 0, 0, 0];
        let p = ipv4(&opts, 64, 0);
        let frags = fragment(&p, 28 + 16);
        assert_eq!(frags[0][0], 0x47);
        for f in &frags[1..] {
            assert_eq!(f[0], 0x45);
        }
        assert_eq!(reassemble(&p, &frags).1, &p[28..]);
    }

    #[test]
    fn input_fragment_keeps_offset_and_mf() {
        // A middle fragment: offset 100 units (800 bytes), MF set.
        let p = ipv4(&[], 1000, MF | 100);
        let frags = fragment(&p, 420);
        let (start, data, mf) = reassemble(&p, &frags);
        assert_eq!(start, 800);
        assert!(mf, "last piece keeps the input's MF");
        assert_eq!(data, &p[20..]);
        // A last fragment: MF clear, offset kept, last piece clears MF.
        let p = ipv4(&[], 1000, 100);
        let frags = fragment(&p, 420);
        let (start, _, mf) = reassemble(&p, &frags);
        assert_eq!((start, mf), (800, false));
    }

    #[test]
    fn rejects_bad_inputs() {
        // The textbook header from wire::checksum's tests (total length 115,
        // checksum 0xb861): DF set.
        let mut df = vec![
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01,
            0xc0, 0xa8, 0x00, 0xc7,
        ];
        df.resize(115, 0);
        assert_eq!(Fragmenter::new(&df, 1000).err(), Some(FragError::DontFragment));
        // The same with DF cleared (checksum fixed by RFC 1624 arithmetic).
        df[6] = 0;
        df[10..12].copy_from_slice(&checksum::update(0xb861, 0x4000, 0).to_be_bytes());
        assert_eq!(fragment(&df, 60).len(), 3);
        let p = ipv4(&[], 100, 0);
        assert_eq!(Fragmenter::new(&p, 27).err(), Some(FragError::MaxLenTooSmall));
        assert!(Fragmenter::new(&p, 28).is_ok());
        let with_opts = ipv4(&[1, 1, 1, 0], 100, 0);
        assert_eq!(Fragmenter::new(&with_opts, 31).err(), Some(FragError::MaxLenTooSmall));
        let mut bad = p.clone();
        bad[12] ^= 1;
        assert_eq!(Fragmenter::new(&bad, 60).err(), Some(FragError::BadChecksum));
        let mut v6 = p.clone();
        v6[0] = 0x65;
        assert_eq!(Fragmenter::new(&v6, 60).err(), Some(FragError::Malformed));
        assert_eq!(Fragmenter::new(&p[..100], 60).err(), Some(FragError::Truncated));
        assert_eq!(Fragmenter::new(&[], 60).err(), Some(FragError::Truncated));
        // Option running past the header, and option length 1.
        let runs_over = ipv4(&[0x82, 9, 0, 0], 40, 0);
        assert_eq!(Fragmenter::new(&runs_over, 60).err(), Some(FragError::BadOption));
        let short = ipv4(&[0x44, 1, 0, 0], 40, 0);
        assert_eq!(Fragmenter::new(&short, 60).err(), Some(FragError::BadOption));
        // Offset + payload past 65535 bytes.
        let far = ipv4(&[], 100, 8190);
        assert_eq!(Fragmenter::new(&far, 60).err(), Some(FragError::Malformed));
    }

    #[test]
    fn small_buffer_is_retryable() {
        let p = ipv4(&[], 100, 0);
        let mut f = Fragmenter::new(&p, 60).unwrap();
        let mut small = [0u8; 59];
        assert_eq!(f.next_into(&mut small), Some(Err(FragError::BufferTooSmall)));
        let mut buf = [0u8; 60];
        assert_eq!(f.next_into(&mut buf), Some(Ok(60)));
        assert_eq!(&buf[6..8], &[0x20, 0]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut opts = vec![0x82, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1];
        opts.extend_from_slice(&[0x83, 7, 4, 192, 0, 2, 9, 0]);
        let p = ipv4(&opts, 300, 0);
        for n in 0..p.len() {
            assert!(Fragmenter::new(&p[..n], 100).is_err(), "truncated to {n}");
        }
        assert!(Fragmenter::new(&p, 100).is_ok());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                    max_len in 0usize..300, buf_len in 0usize..300) {
            if let Ok(mut f) = Fragmenter::new(&bytes, max_len) {
                let _ = f.count();
                let mut buf = vec![0u8; buf_len];
                for _ in 0..1000 {
                    match f.next_into(&mut buf) {
                        None | Some(Err(_)) => break,
                        Some(Ok(n)) => prop_assert!(n <= max_len && n <= buf_len),
                    }
                }
            }
        }

        #[test]
        fn random_headers_with_valid_checksum_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..200),
            max_len in 0usize..300, buf_len in 0usize..300) {
            // Version 4, DF clear, checksum fixed: reaches the option walk and
            // the fragment loop with arbitrary IHL, lengths and options.
            bytes[0] = 0x40 | (bytes[0] & 0x0f);
            bytes[6] &= !0x40;
            let ihl = usize::from(bytes[0] & 0x0f) * 4;
            if ihl >= 20 && ihl <= bytes.len() {
                bytes[10] = 0;
                bytes[11] = 0;
                let c = checksum::checksum(&bytes[..ihl]);
                bytes[10..12].copy_from_slice(&c.to_be_bytes());
            }
            if let Ok(mut f) = Fragmenter::new(&bytes, max_len) {
                let count = f.count();
                let mut buf = vec![0u8; buf_len];
                let mut n_ok = 0;
                for _ in 0..100_000 {
                    match f.next_into(&mut buf) {
                        None => { prop_assert_eq!(n_ok, count); break; }
                        Some(Err(e)) => { prop_assert_eq!(e, FragError::BufferTooSmall); break; }
                        Some(Ok(n)) => { n_ok += 1; prop_assert!(n <= max_len && n <= buf_len) }
                    }
                }
            }
        }

        #[test]
        fn random_valid_packets_reassemble(opt_words in 0usize..=10, payload in 0usize..5000,
                                           extra in 0usize..2000, offset in 0u16..64, mf: bool,
                                           copied_kind in 0u8..2) {
            // Options: one option of the chosen copied-ness filling the area.
            let mut opts = Vec::new();
            if opt_words > 0 {
                let kind = if copied_kind == 1 { 0x88 } else { 0x44 };
                opts.push(kind);
                opts.push((opt_words * 4) as u8);
                opts.resize(opt_words * 4, 0x5a);
            }
            let p = ipv4(&opts, payload, offset | if mf { MF } else { 0 });
            let max_len = 20 + opts.len() + 8 + extra;
            let frags = fragment(&p, max_len);
            let (start, data, last_mf) = reassemble(&p, &frags);
            prop_assert_eq!(start, usize::from(offset) * 8);
            prop_assert_eq!(last_mf, mf);
            prop_assert_eq!(&data[..], &p[20 + opts.len()..]);
        }
    }
}
