//! ESP header view (RFC 4303 §2): SPI and the low 32 bits of the sequence
//! number. What follows (IV, ciphertext, ICV) is the `esp` layer's business.

use super::{WireError, be32, put32};

/// Length of the ESP header (SPI + sequence number).
pub const HEADER_LEN: usize = 8;

/// Byte offsets of the header fields.
mod field {
    pub const SPI: usize = 0;
    pub const SEQ: usize = 4;
}

/// A read (and optionally write) view of an ESP packet.
///
/// Invariant after [`EspPacket::new_checked`]: at least 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Validates that the 8-byte header is present.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EspPacket { buf })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> u32 {
        be32(self.buf.as_ref(), field::SPI)
    }

    /// Sequence number as on the wire (the low 32 bits with ESN).
    pub fn seq(&self) -> u32 {
        be32(self.buf.as_ref(), field::SEQ)
    }

    /// Everything after the header: IV, ciphertext and ICV.
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, spi: u32) {
        put32(self.buf.as_mut(), field::SPI, spi);
    }

    /// Sets the (low 32 bits of the) sequence number.
    pub fn set_seq(&mut self, seq: u32) {
        put32(self.buf.as_mut(), field::SEQ, seq);
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut().get_mut(HEADER_LEN..).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_header() {
        let pkt = [0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xfe, 0xaa, 0xbb];
        let p = EspPacket::new_checked(&pkt[..]).unwrap();
        assert_eq!(p.spi(), 256);
        assert_eq!(p.seq(), 0xffff_fffe);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        let mut buf = [0u8; 8];
        let mut q = EspPacket::new_checked(&mut buf[..]).unwrap();
        q.set_spi(0x0102_0304);
        q.set_seq(5);
        assert!(q.payload_mut().is_empty());
        assert_eq!(buf, [1, 2, 3, 4, 0, 0, 0, 5]);
    }

    #[test]
    fn truncation_is_an_error() {
        let pkt = [1u8; 8];
        for n in 0..8 {
            assert_eq!(EspPacket::new_checked(&pkt[..n]), Err(WireError::Truncated));
        }
        assert!(EspPacket::new_checked(&pkt[..]).is_ok());
    }
}
