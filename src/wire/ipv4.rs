//! IPv4 header view and emitter (RFC 791).
//!
//! [`Ipv4Packet`] views an inner packet read from TUN, or an outer packet;
//! [`Ipv4Repr`] writes the 20-byte outer header esptun prepends. Options are
//! carried (they are inside [`Ipv4Packet::header`]) but not interpreted.
//! DSCP/ECN setters keep the header checksum valid incrementally (RFC 1624),
//! as the ECN decapsulation rules of RFC 6040 need on every packet.
//!
//! Non-goals: fragmentation and reassembly, option processing.

use std::net::Ipv4Addr;

use super::checksum;
use super::{WireError, array, be16, byte, put8, put16, put32};

/// Length of the IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// Byte offsets of the header fields.
mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_MASK: u16 = 0x1fff;

/// A read (and optionally write) view of an IPv4 packet.
///
/// Invariant after [`Ipv4Packet::new_checked`]: the buffer holds at least
/// `total_len` bytes and `20 <= header_len <= total_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Validates version, IHL and total length against the buffer. The
    /// buffer may be longer than the total length (trailing bytes, e.g.
    /// Ethernet padding, are ignored by [`Ipv4Packet::payload`]).
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let vi = byte(b, field::VER_IHL);
        if vi >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = usize::from(vi & 0x0f) * 4;
        if hl < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if hl > b.len() {
            return Err(WireError::Truncated);
        }
        let total = usize::from(be16(b, field::LENGTH));
        if total < hl {
            return Err(WireError::BadTotalLen);
        }
        if total > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The whole underlying buffer (may extend past `total_len`).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// The version nibble (always 4 for a checked packet).
    pub fn version(&self) -> u8 {
        byte(self.buf.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes, options included (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buf.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// The whole Type of Service / Traffic Class byte (DSCP << 2 | ECN).
    pub fn tos(&self) -> u8 {
        byte(self.buf.as_ref(), field::TOS)
    }

    /// Differentiated Services Code Point (RFC 2474), the upper 6 bits.
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// Explicit Congestion Notification bits (RFC 3168), the lower 2 bits.
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length field: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LENGTH)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        be16(self.buf.as_ref(), field::IDENT)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buf.as_ref(), field::FLAGS_FRAG) & FRAG_MASK) << 3
    }

    /// Whether this packet is a fragment (first or not).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        byte(self.buf.as_ref(), field::TTL)
    }

    /// Protocol of the payload (IANA protocol number).
    pub fn protocol(&self) -> u8 {
        byte(self.buf.as_ref(), field::PROTOCOL)
    }

    /// Header checksum field as on the wire.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buf.as_ref(), field::SRC))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buf.as_ref(), field::DST))
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        self.buf.as_ref().get(..self.header_len()).unwrap_or(&[])
    }

    /// The payload: bytes `header_len..total_len`.
    pub fn payload(&self) -> &[u8] {
        let (hl, total) = (self.header_len(), usize::from(self.total_len()));
        self.buf.as_ref().get(hl..total).unwrap_or(&[])
    }

    /// The packet itself: bytes `0..total_len` (without trailing bytes).
    pub fn packet(&self) -> &[u8] {
        self.buf.as_ref().get(..usize::from(self.total_len())).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Rewrites the word at `off` and patches the header checksum (RFC 1624).
    fn set_word(&mut self, off: usize, new: u16) {
        let b = self.buf.as_mut();
        let old = be16(b, off);
        let sum = be16(b, field::CHECKSUM);
        put16(b, off, new);
        put16(b, field::CHECKSUM, checksum::update(sum, old, new));
    }

    /// Sets the ECN bits (`ecn & 3`), keeping the header checksum valid.
    pub fn set_ecn(&mut self, ecn: u8) {
        let tos = (self.tos() & !0x03) | (ecn & 0x03);
        self.set_tos(tos);
    }

    /// Sets the DSCP (`dscp & 0x3f`), keeping the header checksum valid.
    pub fn set_dscp(&mut self, dscp: u8) {
        let tos = (self.tos() & 0x03) | ((dscp & 0x3f) << 2);
        self.set_tos(tos);
    }

    /// Sets the whole TOS byte, keeping the header checksum valid.
    pub fn set_tos(&mut self, tos: u8) {
        let vi = byte(self.buf.as_ref(), field::VER_IHL);
        self.set_word(field::VER_IHL, u16::from_be_bytes([vi, tos]));
    }

    /// Sets the TTL, keeping the header checksum valid.
    pub fn set_ttl(&mut self, ttl: u8) {
        let proto = self.protocol();
        self.set_word(field::TTL, u16::from_be_bytes([ttl, proto]));
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buf.as_mut();
        put16(b, field::CHECKSUM, 0);
        let c = b.get(..hl).map_or(0, checksum::checksum);
        put16(b, field::CHECKSUM, c);
    }

    /// The payload, writable (bytes `header_len..total_len`).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), usize::from(self.total_len()));
        self.buf.as_mut().get_mut(hl..total).unwrap_or(&mut [])
    }

    /// Sets the destination address, keeping the header checksum valid.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        let o = addr.octets();
        self.set_word(field::DST, u16::from_be_bytes([o[0], o[1]]));
        self.set_word(field::DST + 2, u16::from_be_bytes([o[2], o[3]]));
    }
}

/// The fields of an option-less IPv4 header, for emitting outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Payload length in bytes (the total length is this plus 20).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// TOS byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// The Don't Fragment flag.
    pub dont_frag: bool,
    /// Identification field.
    pub ident: u16,
}

impl Ipv4Repr {
    /// Reads the representable fields of a checked packet (options, MF and
    /// the fragment offset are dropped).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Ipv4Repr {
        let payload_len = usize::from(p.total_len()).saturating_sub(p.header_len());
        Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: u16::try_from(payload_len).unwrap_or(u16::MAX),
            ttl: p.ttl(),
            tos: p.tos(),
            dont_frag: p.dont_frag(),
            ident: p.ident(),
        }
    }

    /// Writes the 20-byte header, checksum included, into `buf[..20]`.
    /// Errors if `buf` is shorter than 20 bytes or the total length would
    /// exceed 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let total =
            u16::try_from(usize::from(self.payload_len) + HEADER_LEN).map_err(|_| WireError::TooLong)?;
        let h = buf.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
        put8(h, field::VER_IHL, 0x45);
        put8(h, field::TOS, self.tos);
        put16(h, field::LENGTH, total);
        put16(h, field::IDENT, self.ident);
        put16(h, field::FLAGS_FRAG, if self.dont_frag { FLAG_DF } else { 0 });
        put8(h, field::TTL, self.ttl);
        put8(h, field::PROTOCOL, self.protocol);
        put16(h, field::CHECKSUM, 0);
        put32(h, field::SRC, u32::from(self.src));
        put32(h, field::DST, u32::from(self.dst));
        let c = checksum::checksum(h);
        put16(h, field::CHECKSUM, c);
        Ok(())
    }
}

#[cfg(test)]
#[path = "ipv4_tests.rs"]
mod tests;
