//! Inbound processing: ESP packet in, inner IP packet out, in place.
//!
//! Checks run cheapest first, and nothing that an attacker can forge
//! changes state before the ICV has verified (RFC 4303 §3.4):
//! length → SPI → replay check → AEAD open → replay commit → padding →
//! next header → inner header → ECN (RFC 6040 §4.2) → inbound selectors
//! (RFC 4301 §5.2).

use super::buf::PacketBuf;
use super::drop::DropReason;
use super::replay::ReplayError;
use super::sa::{EcnMode, InboundSa, LifetimeState};
use super::seal::{ESP_HEADER_LEN, IPPROTO_ESP, IPPROTO_UDP, NH_IPV4, NH_IPV6, NH_NONE};
use crate::crypto::{ICV_LEN, IV_LEN};
use crate::wire::flow::FlowKey;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::udp::UdpPacket;
use crate::wire::udp_encap::{self, Encap};
use std::net::IpAddr;

/// The smallest ESP packet: header, IV, pad length, next header, ICV.
pub const MIN_ESP_LEN: usize = ESP_HEADER_LEN + IV_LEN + 2 + ICV_LEN;

/// ECN codepoints (RFC 3168).
const NOT_ECT: u8 = 0;
const ECT1: u8 = 1;
const ECT0: u8 = 2;
const CE: u8 = 3;

/// What a successful open reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The full (ESN-inferred) sequence number.
    pub seq: u64,
    /// Where the SA stands against its byte/packet lifetime.
    pub lifetime: LifetimeState,
}

/// The outer headers removed by [`strip_outer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outer {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// `(source, destination)` UDP ports for ESP-in-UDP, `None` for
    /// protocol 50.
    pub ports: Option<(u16, u16)>,
    /// The outer ECN field.
    pub ecn: u8,
}

/// The SPI of an ESP packet (SPI first), for dispatching to an SA.
pub fn peek_spi(esp: &[u8]) -> Result<u32, DropReason> {
    match esp.get(0..4) {
        Some(b) if esp.len() >= ESP_HEADER_LEN => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        _ => Err(DropReason::Truncated),
    }
}

/// Removes the outer IPv4/IPv6 header (and the UDP header of ESP-in-UDP)
/// from a whole outer packet, leaving the ESP packet in `buf`. NAT
/// keepalives and IKE packets (non-ESP marker) are reported as drops with
/// their own reasons, since they are not for the ESP path.
pub fn strip_outer(buf: &mut PacketBuf) -> Result<Outer, DropReason> {
    let data = buf.data();
    let (src, dst, ecn, proto, off, end) = match data.first().map(|b| b >> 4) {
        Some(4) => {
            let p = Ipv4Packet::new_checked(data).map_err(|_| DropReason::OuterMalformed)?;
            if p.more_frags() || p.frag_offset() != 0 {
                // The kernel reassembles outer fragments before we see them.
                return Err(DropReason::OuterMalformed);
            }
            let hl = p.header_len();
            (
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
                p.ecn(),
                p.protocol(),
                hl,
                usize::from(p.total_len()),
            )
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(data).map_err(|_| DropReason::OuterMalformed)?;
            let ul = p.upper_layer().map_err(|_| DropReason::OuterMalformed)?;
            if ul.is_fragment {
                return Err(DropReason::OuterMalformed);
            }
            (
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
                p.ecn(),
                ul.protocol,
                ul.offset,
                p.total_len(),
            )
        }
        _ => return Err(DropReason::OuterMalformed),
    };
    let (start, ports) = match proto {
        IPPROTO_ESP => (off, None),
        IPPROTO_UDP => {
            let seg = data.get(off..end).ok_or(DropReason::OuterMalformed)?;
            let udp = UdpPacket::new_checked(seg).map_err(|_| DropReason::OuterMalformed)?;
            match udp_encap::classify(udp.payload()) {
                Ok(Encap::Esp) => {}
                Ok(Encap::Keepalive) => return Err(DropReason::NatKeepalive),
                Ok(Encap::Ike) => return Err(DropReason::NotEsp),
                Err(_) => return Err(DropReason::Truncated),
            }
            let ports = (udp.src_port(), udp.dst_port());
            (off + 8, Some(ports))
        }
        _ => return Err(DropReason::NotEsp),
    };
    let udp_end = match ports {
        // The UDP length field bounds the ESP packet.
        Some(_) => {
            let seg = &data[off..end];
            off + usize::from(u16::from_be_bytes([seg[4], seg[5]]))
        }
        None => end,
    };
    buf.truncate(udp_end);
    buf.trim_front(start);
    Ok(Outer { src, dst, ports, ecn })
}

impl InboundSa {
    /// Opens one ESP packet (SPI first) in place; `outer_ecn` is the ECN
    /// field of the outer header (0 when unknown). On success `buf` holds
    /// the inner IP packet.
    pub fn open(&mut self, buf: &mut PacketBuf, outer_ecn: u8) -> Result<Opened, DropReason> {
        let len = buf.len();
        if len < MIN_ESP_LEN {
            return Err(DropReason::Truncated);
        }
        let hard = self.cfg.lifetime.hard;
        if (hard.packets != 0 && self.packets >= hard.packets)
            || (hard.bytes != 0 && self.bytes >= hard.bytes)
        {
            return Err(DropReason::LifetimeExpired);
        }
        let data = buf.data_mut();
        let spi = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        if spi != self.cfg.spi {
            return Err(DropReason::UnknownSpi);
        }
        let seq_low = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let seq = self.replay.check(seq_low).map_err(|e| match e {
            ReplayError::Replayed => DropReason::Replayed,
            ReplayError::TooOld => DropReason::TooOld,
        })?;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&data[8..16]);
        let mut aad = [0u8; 12];
        aad[0..4].copy_from_slice(&data[0..4]);
        let aad: &[u8] = if self.cfg.esn {
            aad[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
            aad[8..12].copy_from_slice(&data[4..8]);
            &aad
        } else {
            aad[4..8].copy_from_slice(&data[4..8]);
            &aad[..8]
        };
        let ct = &mut data[ESP_HEADER_LEN + IV_LEN..];
        self.aead.open_in_place(&iv, aad, ct).map_err(|_| DropReason::AuthFailed)?;
        self.replay.commit(seq);

        // Trailer: ... pad 1,2,3.. | pad length | next header.
        let pt = &data[ESP_HEADER_LEN + IV_LEN..len - ICV_LEN];
        let next_header = pt[pt.len() - 1];
        let pad_len = usize::from(pt[pt.len() - 2]);
        if pad_len + 2 > pt.len() {
            return Err(DropReason::BadPadding);
        }
        let payload_len = pt.len() - 2 - pad_len;
        let pad = &pt[payload_len..payload_len + pad_len];
        if pad.iter().enumerate().any(|(i, &b)| usize::from(b) != i + 1) {
            return Err(DropReason::BadPadding);
        }
        let inner_len = match next_header {
            NH_IPV4 | NH_IPV6 => self.check_inner(&pt[..payload_len], next_header)?,
            NH_NONE => return Err(DropReason::DummyPacket),
            _ => return Err(DropReason::BadNextHeader),
        };
        let start = ESP_HEADER_LEN + IV_LEN;
        let inner = &mut data[start..start + inner_len];
        if self.cfg.ecn == EcnMode::Normal {
            decap_ecn(inner, outer_ecn & 3)?;
        }
        if !self.ts_any {
            let key = FlowKey::parse(inner).map_err(|_| DropReason::InnerMalformed)?;
            if !self.selectors_allow(&key) {
                return Err(DropReason::SelectorMismatch);
            }
        }
        buf.truncate(start + inner_len);
        buf.trim_front(start);
        self.packets += 1;
        self.bytes += inner_len as u64;
        let soft = self.cfg.lifetime.soft;
        let lifetime = if (soft.packets != 0 && self.packets >= soft.packets)
            || (soft.bytes != 0 && self.bytes >= soft.bytes)
        {
            LifetimeState::Soft
        } else {
            LifetimeState::Live
        };
        Ok(Opened { seq, lifetime })
    }

    /// Opens a batch; `results[i]` is the outcome for `bufs[i]` and
    /// `outer_ecn[i]` (missing entries count as 0) its outer ECN.
    pub fn open_batch(
        &mut self,
        bufs: &mut [PacketBuf],
        outer_ecn: &[u8],
        results: &mut [Result<Opened, DropReason>],
    ) {
        for (i, (buf, res)) in bufs.iter_mut().zip(results.iter_mut()).enumerate() {
            *res = self.open(buf, outer_ecn.get(i).copied().unwrap_or(0));
        }
    }

    /// Validates the decrypted inner header and returns the inner packet's
    /// own length (anything after it is TFC padding).
    fn check_inner(&self, inner: &[u8], next_header: u8) -> Result<usize, DropReason> {
        let version = inner.first().map(|b| b >> 4);
        match (next_header, version) {
            (NH_IPV4, Some(4)) => {
                let p = Ipv4Packet::new_checked(inner).map_err(|_| DropReason::InnerMalformed)?;
                if !p.verify_checksum() {
                    return Err(DropReason::InnerMalformed);
                }
                Ok(usize::from(p.total_len()))
            }
            (NH_IPV6, Some(6)) => {
                let p = Ipv6Packet::new_checked(inner).map_err(|_| DropReason::InnerMalformed)?;
                Ok(p.total_len())
            }
            (_, Some(4 | 6)) => Err(DropReason::InnerVersionMismatch),
            _ => Err(DropReason::InnerMalformed),
        }
    }

    /// RFC 4301 §5.2: the inner source must be in the peer's selectors and
    /// the inner destination in ours.
    fn selectors_allow(&self, key: &FlowKey) -> bool {
        let src_ok = self
            .cfg
            .remote_ts
            .iter()
            .any(|ts| ts.contains_addr(key.src) && ts.contains_proto_port(key.proto, key.src_port));
        src_ok
            && self
                .cfg
                .local_ts
                .iter()
                .any(|ts| ts.contains_addr(key.dst) && ts.contains_proto_port(key.proto, key.dst_port))
    }
}

/// RFC 6040 §4.2 decapsulation in normal mode, on the inner header in
/// place: outer CE marks an ECN-capable inner packet CE and drops a
/// Not-ECT one; outer ECT(1) upgrades inner ECT(0).
fn decap_ecn(inner: &mut [u8], outer: u8) -> Result<(), DropReason> {
    let v4 = inner.first().map(|b| b >> 4) == Some(4);
    let inner_ecn = if v4 {
        Ipv4Packet::new_checked(&*inner).map(|p| p.ecn())
    } else {
        Ipv6Packet::new_checked(&*inner).map(|p| p.ecn())
    }
    .map_err(|_| DropReason::InnerMalformed)?;
    let new = match (inner_ecn, outer) {
        (NOT_ECT, CE) => return Err(DropReason::EcnCeOnNotEct),
        (NOT_ECT, _) => return Ok(()),
        (_, CE) => CE,
        (ECT0, ECT1) => ECT1,
        _ => return Ok(()),
    };
    if new != inner_ecn {
        if v4 {
            let mut p = Ipv4Packet::new_checked(inner).map_err(|_| DropReason::InnerMalformed)?;
            p.set_ecn(new);
        } else {
            let mut p = Ipv6Packet::new_checked(inner).map_err(|_| DropReason::InnerMalformed)?;
            p.set_ecn(new);
        }
    }
    Ok(())
}
