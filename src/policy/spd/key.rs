//! Stand-in for the parsed packet key until `crate::wire::flow` lands.
//!
//! TODO(merge): use crate::wire::flow::FlowKey (same fields) and delete this
//! file.

use std::net::IpAddr;

/// The fields of a plaintext packet that policy looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Inner source address.
    pub src: IpAddr,
    /// Inner destination address.
    pub dst: IpAddr,
    /// IP protocol (IPv6: upper-layer protocol after extension headers).
    pub proto: u8,
    /// Source port; ICMP: `type << 8 | code`; `None` when opaque.
    pub src_port: Option<u16>,
    /// Destination port; ICMP: `type << 8 | code`; `None` when opaque.
    pub dst_port: Option<u16>,
    /// DSCP (0..=63).
    pub dscp: u8,
}
