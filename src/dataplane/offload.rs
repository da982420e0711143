//! Offload emulation on the TUN side, in the shape wireguard-go and
//! Tailscale use: TSO and USO super-packets read from the TUN device are
//! split into MTU-sized TCP segments or UDP datagrams before sealing
//! ([`TsoPlan`]), and decrypted TCP
//! segments of one flow are coalesced into one super-packet before the TUN
//! write ([`Coalescer`]), so the kernel's TCP stack and the TUN fd see one
//! packet per up to 64 KiB instead of one per segment.
//!
//! Pure functions over byte slices: no I/O, no allocation, every malformed
//! input is an error (RFC 793/9293 header layout; the virtio header
//! semantics are Linux's `virtio_net_hdr`).

use super::vnet::{GsoType, VNET_HDR_LEN, VnetHdr};
use crate::wire::tcp::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};
use crate::wire::{be16, be32, checksum};

const TCP_PROTO: u8 = crate::wire::proto::TCP;
const UDP_PROTO: u8 = crate::wire::proto::UDP;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a packet cannot be split or coalesced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The headers are truncated or inconsistent with the virtio header.
    #[error("malformed super-packet headers")]
    Malformed,
    /// A segmentation kind esptun does not split (UFO, unknown kinds).
    #[error("unsupported GSO type")]
    Unsupported,
    /// The destination buffer is too small for the segment.
    #[error("segment does not fit the buffer")]
    NoRoom,
}

/// The layout of a TCP packet: IP version, L4 offset, header length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TcpLayout {
    v6: bool,
    /// Offset of the TCP header.
    l4: usize,
    /// IP + TCP header bytes.
    hlen: usize,
}

/// Finds the TCP header of an IPv4 (any options) or IPv6 (no extension
/// headers) packet; `None` for anything else.
fn tcp_layout(p: &[u8]) -> Option<TcpLayout> {
    let v = p.first()? >> 4;
    let (v6, l4) = match v {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 || p.len() < ihl || *p.get(9)? != TCP_PROTO {
                return None;
            }
            // Fragments are never segmented or merged.
            if be16(p, 6) & 0x3fff != 0 {
                return None;
            }
            (false, ihl)
        }
        6 => {
            if p.len() < 40 || p[6] != TCP_PROTO {
                return None;
            }
            (true, 40)
        }
        _ => return None,
    };
    let doff = usize::from(*p.get(l4 + 12)? >> 4) * 4;
    if doff < 20 || p.len() < l4 + doff {
        return None;
    }
    Some(TcpLayout { v6, l4, hlen: l4 + doff })
}

/// The TCP pseudo-header sum for a segment of `l4_len` bytes.
fn pseudo(p: &[u8], v6: bool, l4_len: usize) -> u64 {
    pseudo_for(p, v6, TCP_PROTO, l4_len)
}

/// The pseudo-header sum of protocol `proto` for `l4_len` bytes.
fn pseudo_for(p: &[u8], v6: bool, proto: u8, l4_len: usize) -> u64 {
    if v6 {
        let s: [u8; 16] = p[8..24].try_into().unwrap_or([0; 16]);
        let d: [u8; 16] = p[24..40].try_into().unwrap_or([0; 16]);
        checksum::pseudo_v6(Ipv6Addr::from(s), Ipv6Addr::from(d), proto, l4_len as u32)
    } else {
        let s: [u8; 4] = p[12..16].try_into().unwrap_or([0; 4]);
        let d: [u8; 4] = p[16..20].try_into().unwrap_or([0; 4]);
        checksum::pseudo_v4(Ipv4Addr::from(s), Ipv4Addr::from(d), proto, l4_len as u16)
    }
}

/// Sets the IP length field(s) of `p` to `total` bytes and, for IPv4,
/// the header checksum.
fn set_ip_len(p: &mut [u8], lay: &TcpLayout, total: usize) {
    if lay.v6 {
        p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
    } else {
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&p[..lay.l4]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// Finds the UDP header of an IPv4 (any options, not a fragment) or IPv6
/// (no extension headers) packet; `None` for anything else.
fn udp_layout(p: &[u8]) -> Option<TcpLayout> {
    let (v6, l4) = match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 || p.len() < ihl || *p.get(9)? != UDP_PROTO || be16(p, 6) & 0x3fff != 0 {
                return None;
            }
            (false, ihl)
        }
        6 if p.len() >= 40 && p[6] == UDP_PROTO => (true, 40),
        _ => return None,
    };
    (p.len() >= l4 + 8).then_some(TcpLayout { v6, l4, hlen: l4 + 8 })
}

/// How one super-packet splits: TSO (TCP over IPv4 or IPv6) into
/// segments, USO (UDP, `GSO_UDP_L4`) into datagrams of `gso_size` payload
/// bytes each (the last may be shorter), as Linux's `__udp_gso_segment`
/// does: own UDP length and full checksum per datagram, IPv4 ID counting up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsoPlan {
    lay: TcpLayout,
    gso: usize,
    payload: usize,
    udp: bool,
}

impl TsoPlan {
    /// Checks a super-packet `pkt` (after the virtio header `hdr`).
    pub fn new(hdr: &VnetHdr, pkt: &[u8]) -> Result<TsoPlan, OffloadError> {
        let kind = hdr.gso_type.kind();
        let (lay, udp) = match kind {
            GsoType::TCPV4 | GsoType::TCPV6 => {
                let lay = tcp_layout(pkt).ok_or(OffloadError::Malformed)?;
                if lay.v6 != (kind == GsoType::TCPV6) {
                    return Err(OffloadError::Malformed);
                }
                (lay, false)
            }
            GsoType::UDP_L4 => (udp_layout(pkt).ok_or(OffloadError::Malformed)?, true),
            _ => return Err(OffloadError::Unsupported),
        };
        if hdr.gso_size == 0 {
            return Err(OffloadError::Malformed);
        }
        Ok(TsoPlan { lay, gso: usize::from(hdr.gso_size), payload: pkt.len() - lay.hlen, udp })
    }

    /// Whether this is a UDP (USO) super-packet.
    pub fn is_udp(&self) -> bool {
        self.udp
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.payload.div_ceil(self.gso).max(1)
    }

    /// Largest segment in bytes.
    pub fn max_segment_len(&self) -> usize {
        self.lay.hlen + self.gso.min(self.payload)
    }

    /// Writes segment `i` of `pkt` into `dst` with complete IP and TCP
    /// checksums; returns its length.
    pub fn write_segment(&self, pkt: &[u8], i: usize, dst: &mut [u8]) -> Result<usize, OffloadError> {
        let lay = self.lay;
        let off =
            i.checked_mul(self.gso).filter(|o| *o < self.payload.max(1)).ok_or(OffloadError::Malformed)?;
        let chunk = self.gso.min(self.payload - off.min(self.payload));
        let total = lay.hlen + chunk;
        let seg = dst.get_mut(..total).ok_or(OffloadError::NoRoom)?;
        seg[..lay.hlen].copy_from_slice(&pkt[..lay.hlen]);
        seg[lay.hlen..].copy_from_slice(&pkt[lay.hlen + off..lay.hlen + off + chunk]);
        if !lay.v6 {
            let id = be16(pkt, 4).wrapping_add(i as u16);
            seg[4..6].copy_from_slice(&id.to_be_bytes());
        }
        set_ip_len(seg, &lay, total);
        let t = lay.l4;
        if self.udp {
            let ulen = (total - t) as u16;
            seg[t + 4..t + 6].copy_from_slice(&ulen.to_be_bytes());
            seg[t + 6..t + 8].copy_from_slice(&[0, 0]);
            let sum = checksum::sum(&seg[t..], pseudo_for(seg, lay.v6, UDP_PROTO, total - t));
            // A UDP checksum computing to 0 is sent as 0xffff (RFC 768).
            let c = match !checksum::fold(sum) {
                0 => 0xffff,
                c => c,
            };
            seg[t + 6..t + 8].copy_from_slice(&c.to_be_bytes());
            return Ok(total);
        }
        let seq = be32(pkt, t + 4).wrapping_add(off as u32);
        seg[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        let last = i + 1 == self.segments();
        if !last {
            seg[t + 13] &= !(FIN | PSH);
        }
        if i > 0 {
            seg[t + 13] &= !CWR;
        }
        seg[t + 16..t + 18].copy_from_slice(&[0, 0]);
        let sum = checksum::sum(&seg[t..], pseudo(seg, lay.v6, total - t));
        seg[t + 16..t + 18].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
        Ok(total)
    }
}

/// Most segments merged into one super-packet (Linux's GRO limit).
pub const MAX_MERGE: usize = 64;
/// Largest super-packet (IP total length).
pub const MAX_SUPER: usize = 65535;

/// The open super-packet of a [`Coalescer`].
#[derive(Clone, Copy, Debug)]
struct Open {
    lay: TcpLayout,
    /// Payload bytes of the first segment (the gso_size).
    seg: usize,
    count: usize,
    /// Next expected sequence number.
    next_seq: u32,
    /// No more segments may join (short or PSH segment appended).
    closed: bool,
}

/// Builds TUN writes from decrypted packets: consecutive TCP segments of
/// one flow become one GSO super-packet with a virtio header; every other
/// packet is written alone behind an all-zero header.
///
/// Call order: [`push`](Self::push) per packet into the current output
/// buffer; when it returns `false` the caller [`finish`](Self::finish)es
/// the buffer, starts a new one and pushes again.
#[derive(Debug, Default)]
pub struct Coalescer {
    open: Option<Open>,
}

impl Coalescer {
    /// Forgets the open super-packet (the caller starts a new buffer).
    pub fn reset(&mut self) {
        self.open = None;
    }

    /// Appends `pkt` to `buf` (holding `*len` bytes: virtio header then the
    /// super-packet so far) if it continues the open flow, or starts `buf`
    /// with it when `*len == 0`. Returns `false` when `pkt` must start a
    /// new buffer (call [`finish`](Self::finish) first) or does not fit.
    pub fn push(&mut self, buf: &mut [u8], len: &mut usize, pkt: &[u8]) -> bool {
        if *len == 0 {
            let need = VNET_HDR_LEN + pkt.len();
            let Some(dst) = buf.get_mut(..need) else { return false };
            dst[..VNET_HDR_LEN].fill(0);
            dst[VNET_HDR_LEN..].copy_from_slice(pkt);
            *len = need;
            self.open = mergeable(pkt).map(|lay| {
                let seg = pkt.len() - lay.hlen;
                Open {
                    lay,
                    seg,
                    count: 1,
                    next_seq: be32(pkt, lay.l4 + 4).wrapping_add(seg as u32),
                    closed: pkt[lay.l4 + 13] & PSH != 0,
                }
            });
            return true;
        }
        let Some(o) = self.open else { return false };
        if o.closed || o.count >= MAX_MERGE {
            return false;
        }
        let Some(lay) = mergeable(pkt) else { return false };
        let head = &buf[VNET_HDR_LEN..*len];
        let pay = pkt.len() - lay.hlen;
        let fits = *len - VNET_HDR_LEN + pay <= MAX_SUPER && *len + pay <= buf.len();
        if lay != o.lay || pay == 0 || pay > o.seg || !fits || be32(pkt, lay.l4 + 4) != o.next_seq {
            return false;
        }
        if !same_flow(head, pkt, &lay) {
            return false;
        }
        buf[*len..*len + pay].copy_from_slice(&pkt[lay.hlen..]);
        *len += pay;
        let flags = pkt[lay.l4 + 13];
        // Keep PSH of the last segment on the super-packet.
        buf[VNET_HDR_LEN + lay.l4 + 13] |= flags & PSH;
        self.open = Some(Open {
            count: o.count + 1,
            next_seq: o.next_seq.wrapping_add(pay as u32),
            closed: pay < o.seg || flags & PSH != 0,
            ..o
        });
        true
    }

    /// Finishes `buf[..len]`: for a merged super-packet, sets the IP
    /// lengths, the partial TCP checksum and the GSO virtio header.
    pub fn finish(&mut self, buf: &mut [u8], len: usize) {
        let Some(o) = self.open.take() else { return };
        if o.count < 2 {
            return;
        }
        let lay = o.lay;
        let Some(p) = buf.get_mut(VNET_HDR_LEN..len) else { return };
        let total = p.len();
        set_ip_len(p, &lay, total);
        let t = lay.l4;
        let partial = checksum::fold(pseudo(p, lay.v6, total - t));
        p[t + 16..t + 18].copy_from_slice(&partial.to_be_bytes());
        let hdr = VnetHdr {
            flags: VnetHdr::NEEDS_CSUM,
            gso_type: if lay.v6 { GsoType::TCPV6 } else { GsoType::TCPV4 },
            hdr_len: lay.hlen as u16,
            gso_size: o.seg as u16,
            csum_start: t as u16,
            csum_offset: 16,
        };
        let _ = hdr.emit(buf);
    }
}

/// A TCP segment that may be merged: data, ACK set, no SYN/FIN/RST/URG and
/// no ECN signalling.
fn mergeable(p: &[u8]) -> Option<TcpLayout> {
    let lay = tcp_layout(p)?;
    let flags = p[lay.l4 + 13];
    let total = if lay.v6 { 40 + usize::from(be16(p, 4)) } else { usize::from(be16(p, 2)) };
    let ok = flags & (SYN | FIN | RST | URG | ECE | CWR) == 0 && flags & ACK != 0 && total == p.len();
    (ok && p.len() > lay.hlen).then_some(lay)
}

/// Same addresses, ports, ack, window, options and IP TOS/TTL (what
/// Linux GRO requires of segments it merges).
fn same_flow(head: &[u8], p: &[u8], lay: &TcpLayout) -> bool {
    let t = lay.l4;
    let ip_same = if lay.v6 {
        head[..4] == p[..4] && head[7..40] == p[7..40]
    } else {
        head[1] == p[1] && head[8] == p[8] && head[12..20] == p[12..20] && head[6] & 0x40 == p[6] & 0x40
    };
    ip_same
        && head[t..t + 4] == p[t..t + 4]
        && head[t + 8..t + 12] == p[t + 8..t + 12]
        && head[t + 14..t + 16] == p[t + 14..t + 16]
        && head[t + 20..lay.hlen] == p[t + 20..lay.hlen]
}

#[cfg(test)]
mod tests;
