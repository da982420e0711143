//! TCP header view (RFC 9293 §3.1): enough to classify flows and to clamp
//! or coalesce segments; options are carried, not interpreted.

use super::{WireError, be16, be32, byte};

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = 20;

/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// PSH flag.
pub const PSH: u8 = 0x08;
/// ACK flag.
pub const ACK: u8 = 0x10;
/// URG flag.
pub const URG: u8 = 0x20;
/// ECE flag (RFC 3168).
pub const ECE: u8 = 0x40;
/// CWR flag (RFC 3168).
pub const CWR: u8 = 0x80;

/// Byte offsets of the header fields.
mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// A read view of a TCP segment.
///
/// Invariant after [`TcpPacket::new_checked`]: `20 <= header_len <= buffer
/// length`. The payload is the rest of the buffer (TCP has no length
/// field; pass exactly the IP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Validates the data offset against the buffer.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = usize::from(byte(b, field::DATA_OFF) >> 4) * 4;
        if hl < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if hl > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(TcpPacket { buf })
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buf.as_ref(), field::SEQ)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(self.buf.as_ref(), field::ACK)
    }

    /// Header length in bytes, options included (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buf.as_ref(), field::DATA_OFF) >> 4) * 4
    }

    /// The flag byte; test with [`FIN`], [`SYN`], [`RST`], [`PSH`],
    /// [`ACK`], [`URG`], [`ECE`], [`CWR`].
    pub fn flags(&self) -> u8 {
        byte(self.buf.as_ref(), field::FLAGS)
    }

    /// Receive window.
    pub fn window(&self) -> u16 {
        be16(self.buf.as_ref(), field::WINDOW)
    }

    /// Checksum field as on the wire.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_ptr(&self) -> u16 {
        be16(self.buf.as_ref(), field::URGENT)
    }

    /// Options bytes (`20..header_len`).
    pub fn options(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..self.header_len()).unwrap_or(&[])
    }

    /// The payload: everything after the header.
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 49152 to 443 with an MSS option (1460), built by hand.
    const SYN_MSS: [u8; 24] = [
        0xc0, 0x00, 0x01, 0xbb, // ports 49152 -> 443
        0x12, 0x34, 0x56, 0x78, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0x60, 0x02, 0xfa, 0xf0, // data offset 6, SYN, window 64240
        0xab, 0xcd, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    #[test]
    fn parses_hand_built_syn() {
        let mut seg = SYN_MSS.to_vec();
        seg.extend_from_slice(b"hi");
        let t = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (49152, 443));
        assert_eq!(t.seq_number(), 0x1234_5678);
        assert_eq!(t.ack_number(), 0);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), SYN);
        assert_eq!(t.flags() & ACK, 0);
        assert_eq!(t.window(), 64240);
        assert_eq!(t.checksum(), 0xabcd);
        assert_eq!(t.urgent_ptr(), 0);
        assert_eq!(t.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert_eq!(t.payload(), b"hi");
    }

    #[test]
    fn rejects_bad_offsets_and_every_truncation() {
        let mut bad = SYN_MSS;
        bad[12] = 0x40; // data offset 4
        assert_eq!(TcpPacket::new_checked(&bad[..]), Err(WireError::BadHeaderLen));
        let mut long = SYN_MSS;
        long[12] = 0xf0; // 60-byte header in a 24-byte buffer
        assert_eq!(TcpPacket::new_checked(&long[..]), Err(WireError::Truncated));
        for n in 0..SYN_MSS.len() {
            assert_eq!(TcpPacket::new_checked(&SYN_MSS[..n]), Err(WireError::Truncated), "len {n}");
        }
        assert!(TcpPacket::new_checked(&SYN_MSS[..]).is_ok());
    }
}
