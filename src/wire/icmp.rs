//! ICMP (RFC 792) and ICMPv6 (RFC 4443) message views.
//!
//! Both share the 8-byte layout type, code, checksum, "rest of header";
//! the flow classifier reads type and code, and the PMTU code builds
//! "fragmentation needed" / "packet too big" messages with the setters and
//! `fill_checksum`. ICMPv6 checksums cover the IPv6 pseudo header
//! (RFC 4443 §2.3); ICMP ones do not.

use std::net::Ipv6Addr;

use super::checksum;
use super::proto;
use super::{WireError, be16, be32, byte, put8, put16, put32};

/// Length of the common ICMP/ICMPv6 header.
pub const HEADER_LEN: usize = 8;

/// Byte offsets of the header fields.
mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
}

/// ICMP type "destination unreachable" (code 4: fragmentation needed).
pub const V4_DEST_UNREACHABLE: u8 = 3;
/// ICMP type "echo request".
pub const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv6 type "packet too big".
pub const V6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 type "echo request".
pub const V6_ECHO_REQUEST: u8 = 128;

macro_rules! icmp_common {
    ($name:ident) => {
        impl<T: AsRef<[u8]>> $name<T> {
            /// Validates that the 8-byte header is present. The message is
            /// the whole buffer (ICMP has no length field).
            pub fn new_checked(buf: T) -> Result<Self, WireError> {
                if buf.as_ref().len() < HEADER_LEN {
                    return Err(WireError::Truncated);
                }
                Ok($name { buf })
            }

            /// Returns the underlying buffer.
            pub fn into_inner(self) -> T {
                self.buf
            }

            /// Message type.
            pub fn msg_type(&self) -> u8 {
                byte(self.buf.as_ref(), field::TYPE)
            }

            /// Message code.
            pub fn code(&self) -> u8 {
                byte(self.buf.as_ref(), field::CODE)
            }

            /// Checksum field as on the wire.
            pub fn checksum(&self) -> u16 {
                be16(self.buf.as_ref(), field::CHECKSUM)
            }

            /// The 4 bytes after the checksum (identifier and sequence, MTU,
            /// pointer or unused, depending on the type).
            pub fn rest_of_header(&self) -> u32 {
                be32(self.buf.as_ref(), field::REST)
            }

            /// The message body after the 8-byte header.
            pub fn payload(&self) -> &[u8] {
                self.buf.as_ref().get(HEADER_LEN..).unwrap_or(&[])
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Sets the message type.
            pub fn set_msg_type(&mut self, t: u8) {
                put8(self.buf.as_mut(), field::TYPE, t);
            }

            /// Sets the message code.
            pub fn set_code(&mut self, c: u8) {
                put8(self.buf.as_mut(), field::CODE, c);
            }

            /// Sets the 4 bytes after the checksum.
            pub fn set_rest_of_header(&mut self, v: u32) {
                put32(self.buf.as_mut(), field::REST, v);
            }

            /// The message body, writable.
            pub fn payload_mut(&mut self) -> &mut [u8] {
                self.buf.as_mut().get_mut(HEADER_LEN..).unwrap_or(&mut [])
            }
        }
    };
}

/// A view of an ICMP (IPv4) message; the buffer is exactly the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buf: T,
}

/// A view of an ICMPv6 message; the buffer is exactly the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buf: T,
}

icmp_common!(Icmpv4Packet);
icmp_common!(Icmpv6Packet);

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Whether the checksum over the message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buf.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Computes and writes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        let b = self.buf.as_mut();
        put16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(b);
        put16(b, field::CHECKSUM, c);
    }
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Whether the checksum (with the IPv6 pseudo header) is correct.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buf.as_ref();
        let Ok(len) = u32::try_from(b.len()) else { return false };
        let acc = checksum::pseudo_v6(src, dst, proto::ICMPV6, len);
        checksum::fold(checksum::sum(b, acc)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Computes and writes the checksum (with the IPv6 pseudo header).
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buf.as_mut();
        put16(b, field::CHECKSUM, 0);
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let acc = checksum::pseudo_v6(src, dst, proto::ICMPV6, len);
        let c = !checksum::fold(checksum::sum(b, acc));
        put16(b, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmpv4_echo_request_checksum_by_hand() {
        // Echo request id 1 seq 1, payload "abcd". Words: 0800 0000 0001
        // 0001 6162 6364 sum to 0x0800+0x0002+0x6162+0x6364 = 0xccc8, so
        // the checksum is !0xccc8 = 0x3337.
        let msg = [0x08, 0x00, 0x33, 0x37, 0x00, 0x01, 0x00, 0x01, b'a', b'b', b'c', b'd'];
        let p = Icmpv4Packet::new_checked(&msg[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (V4_ECHO_REQUEST, 0));
        assert_eq!(p.checksum(), 0x3337);
        assert_eq!(p.rest_of_header(), 0x0001_0001);
        assert_eq!(p.payload(), b"abcd");
        assert!(p.verify_checksum());
        let mut m = msg;
        m[2] = 0;
        m[3] = 0;
        let mut q = Icmpv4Packet::new_checked(&mut m[..]).unwrap();
        assert!(!q.verify_checksum());
        q.fill_checksum();
        assert_eq!(q.checksum(), 0x3337);
    }

    #[test]
    fn icmpv6_packet_too_big_fill_and_verify() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut m = [0u8; 16];
        let mut p = Icmpv6Packet::new_checked(&mut m[..]).unwrap();
        p.set_msg_type(V6_PACKET_TOO_BIG);
        p.set_code(0);
        p.set_rest_of_header(1280);
        p.payload_mut().copy_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        p.fill_checksum(src, dst);
        // Independent sum: pseudo header words (2001 0db8 ... 0001 and
        // 2001 0db8 ... 0002, length 16, next header 58) plus the message.
        let words: [u32; 16] = [
            0x2001, 0x0db8, 0x0001, 0x2001, 0x0db8, 0x0002, 16, 58, // pseudo header
            0x0200, 0, 0x0000, 0x0500, 0x6000, 0x0000, 0x0008, 0x1140, // message, checksum 0
        ];
        let mut s: u32 = words.iter().sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        assert_eq!(p.checksum(), !(s as u16));
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(dst, "2001:db8::3".parse().unwrap()));
        assert_eq!(p.rest_of_header(), 1280);
    }

    #[test]
    fn truncation_is_an_error() {
        let msg = [0x08u8, 0, 0, 0, 0, 0, 0, 0];
        for n in 0..8 {
            assert_eq!(Icmpv4Packet::new_checked(&msg[..n]), Err(WireError::Truncated));
            assert_eq!(Icmpv6Packet::new_checked(&msg[..n]), Err(WireError::Truncated));
        }
        assert!(Icmpv4Packet::new_checked(&msg[..]).unwrap().payload().is_empty());
    }
}
