//! IPv6 header view, extension header walk and emitter (RFC 8200).
//!
//! [`Ipv6Packet::upper_layer`] walks the extension header chain (hop-by-hop,
//! routing, fragment, destination options, and AH whose length counts
//! 4-byte units, RFC 4302 §2.2) to find the transport header, bounded to
//! [`MAX_EXT_HEADERS`] headers so a hostile chain costs little. The walk
//! stops at the first header it does not know, including ESP (50) and
//! "no next header" (59), and after the fragment header of a non-first
//! fragment, whose remaining bytes are fragment data.
//!
//! Non-goals: jumbograms (RFC 2675), reassembly, option processing.

use std::net::Ipv6Addr;

use super::proto;
use super::{WireError, array, be16, be32, byte, put8, put16, put32};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// The most extension headers [`Ipv6Packet::upper_layer`] walks.
pub const MAX_EXT_HEADERS: usize = 8;

/// Byte offsets of the header fields.
mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Where the upper-layer (transport) header of an IPv6 packet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Protocol number of the first header after the extension headers.
    pub protocol: u8,
    /// Offset of that header from the start of the packet (may equal the
    /// total length when nothing follows).
    pub offset: usize,
    /// Whether a fragment header was seen.
    pub is_fragment: bool,
    /// Whether this is the first fragment (offset 0), or not a fragment at
    /// all. When false, `protocol` names the fragmented header but the
    /// bytes at `offset` are fragment data, not that header.
    pub first_fragment: bool,
}

/// A read (and optionally write) view of an IPv6 packet.
///
/// Invariant after [`Ipv6Packet::new_checked`]: the buffer holds at least
/// `40 + payload_len` bytes and `payload_len > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Validates the version and the payload length against the buffer.
    /// The buffer may be longer than `40 + payload_len`. A payload length
    /// of 0 (a jumbogram, or an empty packet) is rejected.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if byte(b, field::VER_TC_FLOW) >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        let pl = usize::from(be16(b, field::PAYLOAD_LEN));
        if pl == 0 {
            return Err(WireError::Jumbogram);
        }
        if HEADER_LEN + pl > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Ipv6Packet { buf })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The whole underlying buffer (may extend past `total_len`).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// The version nibble (always 6 for a checked packet).
    pub fn version(&self) -> u8 {
        byte(self.buf.as_ref(), field::VER_TC_FLOW) >> 4
    }

    /// Traffic class (DSCP << 2 | ECN).
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.buf.as_ref(), field::VER_TC_FLOW) >> 4) & 0xff) as u8
    }

    /// Differentiated Services Code Point, the upper 6 bits of the traffic
    /// class.
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// Explicit Congestion Notification, the lower 2 bits of the traffic
    /// class.
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        be32(self.buf.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length field: everything after the fixed 40-byte header.
    pub fn payload_len(&self) -> u16 {
        be16(self.buf.as_ref(), field::PAYLOAD_LEN)
    }

    /// Total packet length, `40 + payload_len`.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// Next header field of the fixed header.
    pub fn next_header(&self) -> u8 {
        byte(self.buf.as_ref(), field::NEXT_HEADER)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        byte(self.buf.as_ref(), field::HOP_LIMIT)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buf.as_ref(), field::SRC))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buf.as_ref(), field::DST))
    }

    /// The payload: bytes `40..40 + payload_len` (extension headers
    /// included).
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..self.total_len()).unwrap_or(&[])
    }

    /// The packet itself: bytes `0..total_len` (without trailing bytes).
    pub fn packet(&self) -> &[u8] {
        self.buf.as_ref().get(..self.total_len()).unwrap_or(&[])
    }

    /// Walks the extension headers to the upper-layer header.
    ///
    /// Errors: [`WireError::Truncated`] if a header runs past the packet,
    /// [`WireError::TooManyExtHeaders`] past [`MAX_EXT_HEADERS`],
    /// [`WireError::BadExtHeader`] for a hop-by-hop header that is not
    /// first (RFC 8200 §4.1).
    pub fn upper_layer(&self) -> Result<UpperLayer, WireError> {
        let pkt = self.packet();
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        let mut count = 0;
        let mut is_fragment = false;
        loop {
            let len = match nh {
                proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS | proto::AH | proto::IPV6_FRAG => {
                    if nh == proto::HOPOPT && count != 0 {
                        return Err(WireError::BadExtHeader);
                    }
                    if count == MAX_EXT_HEADERS {
                        return Err(WireError::TooManyExtHeaders);
                    }
                    count += 1;
                    let h = pkt.get(off..off + 2).ok_or(WireError::Truncated)?;
                    let hlen = usize::from(byte(h, 1));
                    match nh {
                        proto::IPV6_FRAG => 8,
                        proto::AH => (hlen + 2) * 4,
                        _ => (hlen + 1) * 8,
                    }
                }
                _ => return Ok(UpperLayer { protocol: nh, offset: off, is_fragment, first_fragment: true }),
            };
            let h = pkt.get(off..off + len).ok_or(WireError::Truncated)?;
            let next = byte(h, 0);
            off += len;
            if nh == proto::IPV6_FRAG {
                is_fragment = true;
                if be16(h, 2) & 0xfff8 != 0 {
                    return Ok(UpperLayer {
                        protocol: next,
                        offset: off,
                        is_fragment,
                        first_fragment: false,
                    });
                }
            }
            nh = next;
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the whole traffic class byte.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buf.as_mut();
        let w = be16(b, field::VER_TC_FLOW);
        put16(b, field::VER_TC_FLOW, (w & 0xf00f) | (u16::from(tc) << 4));
    }

    /// Sets the ECN bits (`ecn & 3`).
    pub fn set_ecn(&mut self, ecn: u8) {
        self.set_traffic_class((self.traffic_class() & !0x03) | (ecn & 0x03));
    }

    /// Sets the DSCP (`dscp & 0x3f`).
    pub fn set_dscp(&mut self, dscp: u8) {
        self.set_traffic_class((self.traffic_class() & 0x03) | ((dscp & 0x3f) << 2));
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        put8(self.buf.as_mut(), field::HOP_LIMIT, hop_limit);
    }

    /// The payload, writable (bytes `40..40 + payload_len`).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let total = self.total_len();
        self.buf.as_mut().get_mut(HEADER_LEN..total).unwrap_or(&mut [])
    }
}

/// The fields of a fixed IPv6 header, for emitting outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header (protocol of the payload).
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// Flow label; only the low 20 bits are written.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads the fixed-header fields of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Writes the 40-byte header into `buf[..40]`. Errors if `buf` is
    /// shorter than 40 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let h = buf.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
        let first = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff);
        put32(h, field::VER_TC_FLOW, first);
        put16(h, field::PAYLOAD_LEN, self.payload_len);
        put8(h, field::NEXT_HEADER, self.next_header);
        put8(h, field::HOP_LIMIT, self.hop_limit);
        if let Some(d) = h.get_mut(field::SRC..field::SRC + 16) {
            d.copy_from_slice(&self.src.octets());
        }
        if let Some(d) = h.get_mut(field::DST..field::DST + 16) {
            d.copy_from_slice(&self.dst.octets());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "ipv6_tests.rs"]
mod tests;
