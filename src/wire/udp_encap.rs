//! Telling apart what arrives on UDP port 4500 (RFC 3948 §2): a NAT
//! keepalive, an IKE message behind the 4-byte non-ESP marker, or ESP.
//!
//! The same rule is what the reuseport BPF program applies to steer
//! datagrams (DESIGN.md): SPI 0 is never a valid ESP SPI, so four zero
//! bytes can only be the marker.

use super::WireError;

/// Length of the non-ESP marker that precedes IKE messages on port 4500.
pub const NON_ESP_MARKER_LEN: usize = 4;

/// The NAT keepalive byte (RFC 3948 §2.3).
pub const KEEPALIVE_BYTE: u8 = 0xff;

/// What a UDP-encapsulated datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// A one-byte 0xFF NAT keepalive: drop it (after noting the peer is
    /// alive).
    Keepalive,
    /// An IKE message starting at offset [`NON_ESP_MARKER_LEN`].
    Ike,
    /// An ESP packet starting at offset 0 (SPI is nonzero, length >= 8).
    Esp,
}

/// Classifies the payload of a UDP datagram received on the NAT-T port.
///
/// Errors with [`WireError::BadEncap`] for anything else: an empty payload,
/// a single byte other than 0xFF, or a would-be ESP packet shorter than
/// its 8-byte header.
pub fn classify(udp_payload: &[u8]) -> Result<Encap, WireError> {
    match udp_payload {
        [KEEPALIVE_BYTE] => Ok(Encap::Keepalive),
        [0, 0, 0, 0, ..] => Ok(Encap::Ike),
        [_, _, _, _, _, _, _, _, ..] => Ok(Encap::Esp),
        _ => Err(WireError::BadEncap),
    }
}

/// The IKE message behind the non-ESP marker, if `udp_payload` is one.
pub fn ike_message(udp_payload: &[u8]) -> Option<&[u8]> {
    match udp_payload {
        [0, 0, 0, 0, rest @ ..] => Some(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_rfc3948_forms() {
        assert_eq!(classify(&[0xff]), Ok(Encap::Keepalive));
        // An IKE_SA_INIT header start behind the marker.
        let ike = [0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        assert_eq!(classify(&ike), Ok(Encap::Ike));
        assert_eq!(ike_message(&ike), Some(&ike[4..]));
        assert_eq!(classify(&[0, 0, 0, 0]), Ok(Encap::Ike));
        let esp = [0, 0, 0x10, 0, 0, 0, 0, 1];
        assert_eq!(classify(&esp), Ok(Encap::Esp));
        assert_eq!(ike_message(&esp), None);
        assert_eq!(classify(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 9]), Ok(Encap::Esp));
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(classify(&[]), Err(WireError::BadEncap));
        assert_eq!(classify(&[0x00]), Err(WireError::BadEncap));
        assert_eq!(classify(&[0xff, 0xff]), Err(WireError::BadEncap));
        assert_eq!(classify(&[0, 0, 0]), Err(WireError::BadEncap));
        // Nonzero SPI but no room for the sequence number.
        for n in 1..8 {
            let p = [1u8; 8];
            assert_eq!(classify(&p[..n]), Err(WireError::BadEncap), "len {n}");
        }
    }
}
