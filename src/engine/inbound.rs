//! UDP → TUN: classify the datagram, find the SA by SPI, open.

use super::Engine;
use crate::esp::{DropReason, LifetimeState, PacketBuf, peek_spi};
use crate::wire::udp_encap::{self, Encap};

/// What to do with one buffer after [`Engine::inbound_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InVerdict {
    /// The buffer holds the inner IP packet: write it to the TUN device.
    Deliver,
    /// An IKE message behind the non-ESP marker (RFC 3948 §2.2): hand the
    /// datagram, unchanged, to the control thread.
    Control,
    /// Dropped (counted; NAT keepalives are counted as such too).
    Drop(DropReason),
}

impl Engine {
    /// Processes a batch of UDP payloads received on port 4500;
    /// `outer_ecn[i]` is the ECN field of datagram `i`'s outer IP header
    /// (missing entries count as 0). `out[i]` says what to do with
    /// `bufs[i]` afterwards.
    pub fn inbound_batch(&mut self, bufs: &mut [PacketBuf], outer_ecn: &[u8], out: &mut [InVerdict]) {
        for (i, (buf, v)) in bufs.iter_mut().zip(out.iter_mut()).enumerate() {
            *v = self.inbound_one(buf, outer_ecn.get(i).copied().unwrap_or(0));
        }
    }

    /// Processes one ESP packet (SPI first) that arrived as IP protocol 50,
    /// without the UDP-encapsulation checks.
    pub fn inbound_esp(&mut self, buf: &mut PacketBuf, outer_ecn: u8) -> InVerdict {
        self.open_esp(buf, outer_ecn)
    }

    fn inbound_one(&mut self, buf: &mut PacketBuf, ecn: u8) -> InVerdict {
        match udp_encap::classify(buf.data()) {
            Ok(Encap::Esp) => self.open_esp(buf, ecn),
            Ok(Encap::Ike) => {
                self.counters.ike += 1;
                InVerdict::Control
            }
            Ok(Encap::Keepalive) => {
                self.counters.keepalives += 1;
                self.counters.drops.inc(DropReason::NatKeepalive);
                InVerdict::Drop(DropReason::NatKeepalive)
            }
            Err(_) => self.drop_in(DropReason::Truncated),
        }
    }

    fn open_esp(&mut self, buf: &mut PacketBuf, ecn: u8) -> InVerdict {
        let spi = match peek_spi(buf.data()) {
            Ok(s) => s,
            Err(r) => return self.drop_in(r),
        };
        let Some(sa) = self.inbound.get_mut(&spi) else { return self.drop_in(DropReason::UnknownSpi) };
        match sa.open(buf, ecn) {
            Ok(o) => {
                self.counters.rx_packets += 1;
                self.counters.rx_bytes += buf.len() as u64;
                if o.lifetime == LifetimeState::Soft {
                    self.counters.soft_lifetime += 1;
                }
                InVerdict::Deliver
            }
            Err(r) => self.drop_in(r),
        }
    }

    fn drop_in(&mut self, r: DropReason) -> InVerdict {
        self.counters.drops.inc(r);
        InVerdict::Drop(r)
    }
}
