//! Outbound processing: inner IP packet in, ESP (optionally with outer
//! IP/UDP headers) out, in place.
//!
//! Layout produced (RFC 4303 §2, RFC 4106 §3, RFC 7634 §2):
//!
//! ```text
//! [outer IPv4/IPv6] [UDP 4500 (RFC 3948)] SPI | seq_lo | IV (8) |
//!     inner packet | TFC zeros | pad 1,2,3.. | pad len | next header | ICV (16)
//! ```
//!
//! The IV is the 64-bit sequence number, big-endian: unique per key as
//! RFC 4106 §3.1 and RFC 7634 §2 require, without a random number
//! generator on the hot path. The AAD is SPI || seq_lo, or
//! SPI || seq_hi || seq_lo with ESN (RFC 4106 §5).

use super::buf::PacketBuf;
use super::drop::DropReason;
use super::sa::{DscpMode, EcnMode, LifetimeState, OutboundSa};
use crate::crypto::{ICV_LEN, IV_LEN};
use crate::wire::ipv4::{self, Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use crate::wire::udp::UdpRepr;
use core::sync::atomic::Ordering;
use std::net::IpAddr;

/// ESP header: SPI and the low 32 bits of the sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// UDP header for ESP-in-UDP.
pub const UDP_HEADER_LEN: usize = 8;
/// IP protocol number of ESP.
pub const IPPROTO_ESP: u8 = 50;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// ESP next header for an IPv4 inner packet.
pub const NH_IPV4: u8 = 4;
/// ESP next header for an IPv6 inner packet.
pub const NH_IPV6: u8 = 41;
/// ESP next header of a TFC dummy packet (RFC 4303 §2.6).
pub const NH_NONE: u8 = 59;

/// How much of the outer packet `seal` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Only the ESP packet (SPI first): what a UDP socket sends for
    /// ESP-in-UDP, or what a raw protocol-50 socket sends.
    Esp,
    /// The whole outer packet: IPv4/IPv6 header, the UDP header when the SA
    /// uses encapsulation, then ESP.
    Ip,
}

/// What a successful seal reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The sequence number used.
    pub seq: u64,
    /// The outer DSCP and ECN byte chosen (for the socket's TOS/TCLASS when
    /// the kernel writes the outer header).
    pub outer_tos: u8,
    /// Where the SA stands against its byte/packet lifetime after this
    /// packet (time limits are the control plane's business).
    pub lifetime: LifetimeState,
}

/// The inner packet fields that shape the outer header.
struct Inner {
    next_header: u8,
    tos: u8,
    dont_frag: bool,
}

fn inspect_inner(pkt: &[u8]) -> Result<Inner, DropReason> {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            let p = Ipv4Packet::new_checked(pkt).map_err(|_| DropReason::InnerMalformed)?;
            if usize::from(p.total_len()) != pkt.len() {
                return Err(DropReason::InnerMalformed);
            }
            Ok(Inner { next_header: NH_IPV4, tos: p.tos(), dont_frag: p.dont_frag() })
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(pkt).map_err(|_| DropReason::InnerMalformed)?;
            if p.total_len() != pkt.len() {
                return Err(DropReason::InnerMalformed);
            }
            let tos = (p.dscp() << 2) | p.ecn();
            Ok(Inner { next_header: NH_IPV6, tos, dont_frag: true })
        }
        _ => Err(DropReason::InnerMalformed),
    }
}

impl OutboundSa {
    /// Bytes added in front of the inner packet for `framing`.
    pub fn header_overhead(&self, framing: Framing) -> usize {
        let mut n = ESP_HEADER_LEN + IV_LEN;
        if framing == Framing::Ip {
            n += if self.cfg.path.remote.is_ipv4() { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
            if self.cfg.path.encap.is_some() {
                n += UDP_HEADER_LEN;
            }
        }
        n
    }

    /// The largest inner packet whose outer packet (IP, UDP if encapsulated,
    /// ESP with padding and ICV) fits in `path_mtu` bytes.
    pub fn max_inner_len(&self, path_mtu: usize) -> usize {
        let fixed = self.header_overhead(Framing::Ip) + ICV_LEN;
        // The inner packet plus its two trailer bytes is padded to 4.
        let room = path_mtu.saturating_sub(fixed) & !3;
        room.saturating_sub(2)
    }

    /// Seals one inner IP packet in place. On success `buf` holds the ESP
    /// packet, or the whole outer packet for [`Framing::Ip`]; on error it is
    /// unchanged.
    pub fn seal(&self, buf: &mut PacketBuf, framing: Framing) -> Result<Sealed, DropReason> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.seal_one(buf, framing, seq, seq.to_be_bytes())
    }

    /// Seals a batch, taking all sequence numbers with one atomic add.
    /// `results[i]` is the outcome for `bufs[i]`; a packet that fails keeps
    /// its (unused) sequence number, which leaves a harmless gap.
    pub fn seal_batch(
        &self,
        bufs: &mut [PacketBuf],
        framing: Framing,
        results: &mut [Result<Sealed, DropReason>],
    ) {
        let n = bufs.len().min(results.len());
        let first = self.next_seq.fetch_add(n as u64, Ordering::Relaxed);
        for (i, (buf, res)) in bufs.iter_mut().zip(results.iter_mut()).enumerate() {
            let seq = first.wrapping_add(i as u64);
            *res = self.seal_one(buf, framing, seq, seq.to_be_bytes());
        }
    }

    /// Reserves `n` consecutive sequence numbers with one atomic add and
    /// returns the first; pass each to [`seal_reserved`](Self::seal_reserved).
    /// Lets a worker that sorts a batch by SA pay one atomic per SA per batch.
    pub fn reserve_seq(&self, n: u64) -> u64 {
        self.next_seq.fetch_add(n, Ordering::Relaxed)
    }

    /// Seals with a sequence number obtained from
    /// [`reserve_seq`](Self::reserve_seq) (each used exactly once).
    pub fn seal_reserved(
        &self,
        buf: &mut PacketBuf,
        framing: Framing,
        seq: u64,
    ) -> Result<Sealed, DropReason> {
        self.seal_one(buf, framing, seq, seq.to_be_bytes())
    }

    /// Seals with a caller-chosen sequence number and IV, without touching
    /// the SA's counter: published test vectors (RFC 7634 Appendix A) use an
    /// IV that is not the sequence number. Never use on a live SA.
    #[doc(hidden)]
    pub fn seal_with_iv(
        &self,
        buf: &mut PacketBuf,
        framing: Framing,
        seq: u64,
        iv: [u8; IV_LEN],
    ) -> Result<Sealed, DropReason> {
        self.seal_one(buf, framing, seq, iv)
    }

    fn seal_one(
        &self,
        buf: &mut PacketBuf,
        framing: Framing,
        seq: u64,
        iv: [u8; IV_LEN],
    ) -> Result<Sealed, DropReason> {
        let cfg = &self.cfg;
        if seq == 0 || seq > self.max_seq() {
            return Err(DropReason::SeqExhausted);
        }
        let inner_len = buf.len();
        let inner = inspect_inner(buf.data())?;
        let hard = cfg.lifetime.hard;
        if hard.packets != 0 && seq > hard.packets {
            return Err(DropReason::LifetimeExpired);
        }
        let bytes_before = self.bytes.fetch_add(inner_len as u64, Ordering::Relaxed);
        let bytes_after = bytes_before + inner_len as u64;
        if hard.bytes != 0 && bytes_after > hard.bytes {
            return Err(DropReason::LifetimeExpired);
        }

        // Trailer: TFC zeros, pad 1..n to 4-byte alignment, pad length,
        // next header, ICV.
        let tfc = usize::from(cfg.tfc_pad_to).saturating_sub(inner_len);
        let body = inner_len + tfc;
        let pad = (4 - (body + 2) % 4) % 4;
        let trailer_len = tfc + pad + 2 + ICV_LEN;
        let front = self.header_overhead(framing);
        if buf.headroom() < front || buf.tailroom() < trailer_len {
            return Err(DropReason::NoRoom);
        }
        let Some(tail) = buf.append(trailer_len) else { return Err(DropReason::NoRoom) };
        tail[..tfc].fill(0);
        for (i, b) in tail[tfc..tfc + pad].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        tail[tfc + pad] = pad as u8;
        tail[tfc + pad + 1] = inner.next_header;

        let Some(hdr) = buf.prepend(ESP_HEADER_LEN + IV_LEN) else { return Err(DropReason::NoRoom) };
        hdr[0..4].copy_from_slice(&cfg.spi.to_be_bytes());
        hdr[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        hdr[8..16].copy_from_slice(&iv);

        let mut aad = [0u8; 12];
        aad[0..4].copy_from_slice(&cfg.spi.to_be_bytes());
        let aad: &[u8] = if cfg.esn {
            aad[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
            aad[8..12].copy_from_slice(&(seq as u32).to_be_bytes());
            &aad
        } else {
            aad[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            &aad[..8]
        };
        let data = buf.data_mut();
        let pt_end = data.len() - ICV_LEN;
        let (body, icv_out) = data.split_at_mut(pt_end);
        let icv = self
            .aead
            .seal_in_place(&iv, aad, &mut body[ESP_HEADER_LEN + IV_LEN..])
            .map_err(|_| DropReason::Oversized)?;
        icv_out.copy_from_slice(&icv);

        let outer_tos = self.outer_tos(inner.tos);
        if framing == Framing::Ip {
            self.push_outer(buf, outer_tos, inner.dont_frag, seq)?;
        }
        let soft = cfg.lifetime.soft;
        let lifetime =
            if (soft.packets != 0 && seq >= soft.packets) || (soft.bytes != 0 && bytes_after >= soft.bytes) {
                LifetimeState::Soft
            } else {
                LifetimeState::Live
            };
        Ok(Sealed { seq, outer_tos, lifetime })
    }

    /// Outer DSCP per [`DscpMode`], outer ECN per RFC 6040 §4.1.
    fn outer_tos(&self, inner_tos: u8) -> u8 {
        let dscp = match self.cfg.dscp {
            DscpMode::Copy => inner_tos >> 2,
            DscpMode::Fixed(d) => d & 0x3f,
        };
        let ecn = match self.cfg.ecn {
            EcnMode::Normal => inner_tos & 3,
            EcnMode::Compatibility => 0,
        };
        (dscp << 2) | ecn
    }

    fn push_outer(&self, buf: &mut PacketBuf, tos: u8, dont_frag: bool, seq: u64) -> Result<(), DropReason> {
        let path = &self.cfg.path;
        if let Some((sport, dport)) = path.encap {
            let seg_len = buf.len() + UDP_HEADER_LEN;
            let Some(_) = buf.prepend(UDP_HEADER_LEN) else { return Err(DropReason::NoRoom) };
            let udp = UdpRepr { src_port: sport, dst_port: dport };
            let seg = buf.data_mut();
            debug_assert_eq!(seg.len(), seg_len);
            match (path.local, path.remote) {
                // RFC 3948 §2.1: IPv4 UDP checksum may be zero.
                (IpAddr::V4(s), IpAddr::V4(d)) => udp.emit_v4(seg, s, d, false),
                (IpAddr::V6(s), IpAddr::V6(d)) => udp.emit_v6(seg, s, d),
                _ => return Err(DropReason::OuterMalformed),
            }
            .map_err(|_| DropReason::Oversized)?;
        }
        let protocol = if path.encap.is_some() { IPPROTO_UDP } else { IPPROTO_ESP };
        let payload_len = u16::try_from(buf.len()).map_err(|_| DropReason::Oversized)?;
        match (path.local, path.remote) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let repr = Ipv4Repr {
                    src,
                    dst,
                    protocol,
                    payload_len,
                    ttl: self.cfg.outer_ttl,
                    tos,
                    dont_frag,
                    ident: seq as u16,
                };
                let Some(h) = buf.prepend(ipv4::HEADER_LEN) else { return Err(DropReason::NoRoom) };
                repr.emit(h).map_err(|_| DropReason::Oversized)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let repr = Ipv6Repr {
                    src,
                    dst,
                    next_header: protocol,
                    payload_len,
                    hop_limit: self.cfg.outer_ttl,
                    traffic_class: tos,
                    flow_label: 0,
                };
                let Some(h) = buf.prepend(ipv6::HEADER_LEN) else { return Err(DropReason::NoRoom) };
                repr.emit(h).map_err(|_| DropReason::Oversized)
            }
            _ => Err(DropReason::OuterMalformed),
        }
    }
}
