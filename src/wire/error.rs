//! The one error type of the wire layer.
//!
//! It is `Copy` and carries no data so that the data path can count it per
//! worker (as a drop reason) without allocating or formatting.

/// Why bytes could not be viewed as, or emitted into, a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header, or than a length field claims.
    #[error("packet truncated")]
    Truncated,
    /// The IP version nibble is not the expected one.
    #[error("wrong IP version")]
    BadVersion,
    /// A header length field is below its minimum (IPv4 IHL < 5, TCP data
    /// offset < 5).
    #[error("bad header length")]
    BadHeaderLen,
    /// The IPv4 total length is smaller than the header.
    #[error("bad total length")]
    BadTotalLen,
    /// A UDP length field is below the 8-byte header.
    #[error("bad length field")]
    BadLength,
    /// An IPv6 payload length of 0 (jumbogram, RFC 2675), not supported.
    #[error("IPv6 jumbograms are not supported")]
    Jumbogram,
    /// More IPv6 extension headers than the walk allows.
    #[error("too many IPv6 extension headers")]
    TooManyExtHeaders,
    /// A malformed IPv6 extension header chain (e.g. hop-by-hop not first).
    #[error("bad IPv6 extension header chain")]
    BadExtHeader,
    /// A UDP-encapsulated datagram that is neither a NAT keepalive, IKE
    /// behind the non-ESP marker, nor a long enough ESP packet.
    #[error("unrecognised UDP-encapsulated datagram")]
    BadEncap,
    /// The output buffer is too small for what is to be emitted.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// The packet to emit would exceed a 16-bit length field.
    #[error("packet too long for its length field")]
    TooLong,
}
