//! UDP header view and emitter (RFC 768; checksums per RFC 768 and
//! RFC 8200 §8.1).
//!
//! [`UdpRepr`] writes the header of an ESP-in-UDP datagram (RFC 3948) whose
//! payload the caller has already placed behind it, so sealing never copies.
//! Over IPv4 the checksum is optional and usually left 0 for ESP (RFC 3948
//! §3.1, the ESP ICV protects the payload); over IPv6 it is mandatory.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::proto;
use super::{WireError, be16, put16};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// Byte offsets of the header fields.
mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A read (and optionally write) view of a UDP datagram.
///
/// Invariant after [`UdpPacket::new_checked`]: `8 <= len <= buffer length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Validates the length field against the buffer (the buffer may be
    /// longer than the datagram).
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(be16(b, field::LENGTH));
        if len < HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(UdpPacket { buf })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::DST_PORT)
    }

    /// Length field: header plus payload.
    pub fn len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LENGTH)
    }

    /// Always false: a checked datagram has at least its 8-byte header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Checksum field as on the wire.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// The datagram, header included: bytes `0..len`.
    pub fn datagram(&self) -> &[u8] {
        self.buf.as_ref().get(..usize::from(self.len())).unwrap_or(&[])
    }

    /// The payload: bytes `8..len`.
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..usize::from(self.len())).unwrap_or(&[])
    }

    /// Verifies the checksum with the IPv4 pseudo header; a zero checksum
    /// means "none" over IPv4 and passes.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let acc = checksum::pseudo_v4(src, dst, proto::UDP, self.len());
        checksum::fold(checksum::sum(self.datagram(), acc)) == 0xffff
    }

    /// Verifies the checksum with the IPv6 pseudo header; a zero checksum
    /// is invalid over IPv6 (RFC 8200 §8.1) and fails.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let acc = checksum::pseudo_v6(src, dst, proto::UDP, u32::from(self.len()));
        checksum::fold(checksum::sum(self.datagram(), acc)) == 0xffff
    }
}

/// The ports of a UDP header, for emitting outer ESP-in-UDP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Writes ports and length into `segment[..8]`; the length is the whole
    /// `segment` (header + payload already in place).
    fn emit_header(&self, segment: &mut [u8]) -> Result<u16, WireError> {
        if segment.len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let len = u16::try_from(segment.len()).map_err(|_| WireError::TooLong)?;
        put16(segment, field::SRC_PORT, self.src_port);
        put16(segment, field::DST_PORT, self.dst_port);
        put16(segment, field::LENGTH, len);
        put16(segment, field::CHECKSUM, 0);
        Ok(len)
    }

    /// Writes the header of `segment` (8 header bytes followed by the
    /// payload already in place) for IPv4. With `checksum` false the
    /// checksum is 0 ("none"); otherwise it is computed (0 sent as 0xffff).
    pub fn emit_v4(
        &self,
        segment: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: bool,
    ) -> Result<(), WireError> {
        let len = self.emit_header(segment)?;
        if checksum {
            let acc = checksum::pseudo_v4(src, dst, proto::UDP, len);
            let c = !checksum::fold(checksum::sum(segment, acc));
            put16(segment, field::CHECKSUM, if c == 0 { 0xffff } else { c });
        }
        Ok(())
    }

    /// Writes the header of `segment` for IPv6, always with a checksum
    /// (0 sent as 0xffff).
    pub fn emit_v6(&self, segment: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), WireError> {
        let len = self.emit_header(segment)?;
        let acc = checksum::pseudo_v6(src, dst, proto::UDP, u32::from(len));
        let c = !checksum::fold(checksum::sum(segment, acc));
        put16(segment, field::CHECKSUM, if c == 0 { 0xffff } else { c });
        Ok(())
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
