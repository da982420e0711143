//! TUN → UDP: classify, pick the gateway, check the MTU, seal.
//!
//! A batch is processed in two passes: the first decides per packet
//! (policy, gateway, PMTU) and counts packets per outbound SA, the second
//! reserves each SA's sequence numbers with one atomic add and seals.

use super::{Engine, Update};
use crate::esp::frag::Fragmenter;
use crate::esp::pmtu::{self, PmtuAction};
use crate::esp::{DropReason, Framing, LifetimeState, OutboundSa, PacketBuf};
use crate::policy::multipath::GatewayIdx;
use crate::policy::spd::{Action, ChildId};
use crate::wire::flow::FlowKey;
use std::net::IpAddr;
use std::sync::Arc;

/// What to do with one buffer after [`Engine::outbound_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutVerdict {
    /// The buffer holds an ESP packet (SPI first): send it as the payload
    /// of a UDP datagram to `to`:`port` with this TOS byte (`port` 0 =
    /// plain ESP, IP protocol 50).
    Send {
        /// Peer gateway address.
        to: IpAddr,
        /// Peer UDP port (4500), or 0 for protocol 50.
        port: u16,
        /// Outer DSCP/ECN byte.
        tos: u8,
    },
    /// The buffer holds an ICMP/ICMPv6 error for the sender: write it to
    /// the TUN device.
    Reply,
    /// The policy says bypass: the packet leaves in clear (untouched).
    Bypass,
    /// Dropped (counted).
    Drop(DropReason),
}

/// The first pass's decision for one packet.
#[derive(Clone, Copy, Debug)]
pub(super) enum Plan {
    /// The verdict is final.
    Done,
    /// Seal with the outbound SA of this child and gateway.
    Seal(ChildId, GatewayIdx),
}

/// Most distinct SAs one batch reserves sequence numbers for at once;
/// packets to further SAs take theirs one by one.
const MAX_GROUPS: usize = 8;

impl Engine {
    /// Processes a batch of inner packets read from the TUN device;
    /// `out[i]` says what to do with `bufs[i]` afterwards. IPv4 fragments
    /// beyond the first land in [`Engine::extra`].
    pub fn outbound_batch(&mut self, bufs: &mut [PacketBuf], out: &mut [OutVerdict]) {
        let n = bufs.len().min(out.len());
        let mut plan = std::mem::take(&mut self.plan);
        plan.clear();
        for i in 0..n {
            let p = self.plan_one(&mut bufs[i], &mut out[i]);
            plan.push(p);
        }
        // Count packets per SA, then one atomic add per SA.
        let mut groups: [(ChildId, GatewayIdx, u64, u64); MAX_GROUPS] = [(0, 0, 0, 0); MAX_GROUPS];
        let mut ngroups = 0;
        for p in &plan {
            if let Plan::Seal(c, g) = *p {
                match groups[..ngroups].iter_mut().find(|e| e.0 == c && e.1 == g) {
                    Some(e) => e.2 += 1,
                    None if ngroups < MAX_GROUPS => {
                        groups[ngroups] = (c, g, 1, 0);
                        ngroups += 1;
                    }
                    None => {}
                }
            }
        }
        for e in &mut groups[..ngroups] {
            if let Some(sa) = self.sa(e.0, e.1) {
                e.3 = sa.reserve_seq(e.2);
            }
        }
        for i in 0..n {
            let Plan::Seal(c, g) = plan[i] else { continue };
            // Borrowed, not cloned: an Arc clone per packet would be two
            // atomic operations on a count every worker shares.
            let Some(sa) = sa_of(&self.children, c, g) else {
                out[i] = self.drop(DropReason::NoGateway);
                continue;
            };
            let seq = match groups[..ngroups].iter_mut().find(|e| e.0 == c && e.1 == g) {
                Some(e) => {
                    e.3 += 1;
                    e.3 - 1
                }
                None => sa.reserve_seq(1),
            };
            out[i] = seal_into(&mut self.counters, sa, &mut bufs[i], seq);
        }
        self.plan = plan;
    }

    pub(super) fn sa(&self, child: ChildId, gw: GatewayIdx) -> Option<&Arc<OutboundSa>> {
        sa_of(&self.children, child, gw)
    }

    fn drop(&mut self, r: DropReason) -> OutVerdict {
        self.counters.drops.inc(r);
        OutVerdict::Drop(r)
    }

    fn plan_one(&mut self, buf: &mut PacketBuf, out: &mut OutVerdict) -> Plan {
        let key = match FlowKey::parse(buf.data()) {
            Ok(k) => k,
            Err(_) => {
                *out = self.drop(DropReason::InnerMalformed);
                return Plan::Done;
            }
        };
        let child = match self.classify(&key) {
            Action::Protect(c) => c,
            Action::Bypass => {
                self.counters.bypassed += 1;
                *out = OutVerdict::Bypass;
                return Plan::Done;
            }
            Action::Drop => {
                *out = self.drop(DropReason::PolicyDrop);
                return Plan::Done;
            }
        };
        let picked = self.children.get(child as usize).and_then(Option::as_ref).and_then(|c| {
            // A group of one needs no flow hash.
            let h = match (c.group.len(), c.symmetric) {
                (1, _) => 0,
                (_, true) => key.symmetric_hash(self.cfg.hash_seed),
                (_, false) => key.hash(self.cfg.hash_seed),
            };
            let gw = c.group.pick(h)?;
            Some((gw, c.sas.get(gw)?.as_ref()?))
        });
        // The SA is borrowed (no Arc clone per packet, see outbound_batch).
        let Some((gw, sa)) = picked else {
            *out = self.drop(DropReason::NoGateway);
            return Plan::Done;
        };
        let max = sa.max_inner_len(self.cfg.path_mtu);
        match pmtu::decide(buf.data(), max) {
            PmtuAction::Fits | PmtuAction::FragmentOuter => Plan::Seal(child, gw),
            PmtuAction::TooBig { mtu } => {
                *out = self.too_big(buf, mtu);
                Plan::Done
            }
            // Rare (IPv4 without DF, too big): the clone is fine here.
            PmtuAction::Fragment => match self.fragment(buf, max, &sa.clone()) {
                Ok(()) => Plan::Seal(child, gw),
                Err(r) => {
                    *out = self.drop(r);
                    Plan::Done
                }
            },
            PmtuAction::Drop => {
                *out = self.drop(DropReason::TooBig);
                Plan::Done
            }
        }
    }

    /// Replaces `buf` with an ICMP/ICMPv6 "too big" error for its sender.
    fn too_big(&mut self, buf: &mut PacketBuf, mtu: u16) -> OutVerdict {
        let data = buf.data();
        let built = match data.first().map(|b| b >> 4) {
            Some(4) => {
                let dst = data.get(16..20).map(|d| std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3]));
                let src = self.cfg.icmp_src_v4.or(dst);
                src.and_then(|s| pmtu::icmpv4_frag_needed(data, mtu, s, &mut self.scratch).ok())
            }
            Some(6) => {
                let dst =
                    data.get(24..40).and_then(|d| <[u8; 16]>::try_from(d).ok()).map(std::net::Ipv6Addr::from);
                let src = self.cfg.icmp_src_v6.or(dst);
                src.and_then(|s| pmtu::icmpv6_packet_too_big(data, u32::from(mtu), s, &mut self.scratch).ok())
            }
            _ => None,
        };
        match built {
            Some(n) if buf.set(&self.scratch[..n]).is_ok() => {
                self.counters.icmp_errors += 1;
                self.counters.drops.inc(DropReason::TooBig);
                OutVerdict::Reply
            }
            _ => self.drop(DropReason::TooBig),
        }
    }

    /// Splits an IPv4 packet (DF clear) into fragments of at most `max`
    /// bytes: the first stays in `buf` (sealed by the caller's plan), the
    /// others are sealed here into [`Engine::extra`].
    fn fragment(&mut self, buf: &mut PacketBuf, max: usize, sa: &Arc<OutboundSa>) -> Result<(), DropReason> {
        let len = buf.len();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch[..len].copy_from_slice(buf.data());
        let result = self.fragment_from(&scratch[..len], buf, max, sa);
        self.scratch = scratch;
        result
    }

    fn fragment_from(
        &mut self,
        packet: &[u8],
        buf: &mut PacketBuf,
        max: usize,
        sa: &Arc<OutboundSa>,
    ) -> Result<(), DropReason> {
        let bad = |_| DropReason::TooBig;
        let mut frags = Fragmenter::new(packet, max).map_err(bad)?;
        let total = frags.count();
        buf.reset();
        let room = buf.append(max).ok_or(DropReason::NoRoom)?;
        let n = frags.next_into(room).ok_or(DropReason::TooBig)?.map_err(bad)?;
        buf.truncate(n);
        self.counters.fragments += 1;
        if total > 1 {
            let first_seq = sa.reserve_seq(total as u64 - 1);
            for k in 0..total - 1 {
                let mut b =
                    self.spare.pop().unwrap_or_else(|| PacketBuf::new(crate::esp::buf::DEFAULT_CAPACITY));
                b.reset();
                let Some(room) = b.append(max) else {
                    self.spare.push(b);
                    return Err(DropReason::NoRoom);
                };
                match frags.next_into(room) {
                    Some(Ok(n)) => b.truncate(n),
                    _ => {
                        self.spare.push(b);
                        return Err(DropReason::TooBig);
                    }
                }
                self.counters.fragments += 1;
                let v = seal_into(&mut self.counters, sa, &mut b, first_seq + k as u64);
                self.extra.push((b, v));
            }
        }
        Ok(())
    }
}

impl Update {
    /// Shorthand for installing an outbound SA.
    pub fn outbound(child: ChildId, gateway: GatewayIdx, sa: Arc<OutboundSa>) -> Update {
        Update::Outbound { child, gateway, sa: Some(sa) }
    }
}

/// The outbound SA of `child` on gateway `gw` (a free function, so that
/// callers can hold it while they update the engine's counters).
fn sa_of(children: &[Option<super::Child>], child: ChildId, gw: GatewayIdx) -> Option<&Arc<OutboundSa>> {
    children.get(child as usize)?.as_ref()?.sas.get(gw)?.as_ref()
}

/// Seals `buf` with `sa` at sequence number `seq`, counting into `c`.
fn seal_into(c: &mut super::Counters, sa: &OutboundSa, buf: &mut PacketBuf, seq: u64) -> OutVerdict {
    let len = buf.len() as u64;
    match sa.seal_reserved(buf, Framing::Esp, seq) {
        Ok(s) => {
            c.tx_packets += 1;
            c.tx_bytes += len;
            if s.lifetime == LifetimeState::Soft {
                c.soft_lifetime += 1;
            }
            let path = &sa.config().path;
            OutVerdict::Send { to: path.remote, port: path.encap.map_or(0, |e| e.1), tos: s.outer_tos }
        }
        Err(r) => {
            c.drops.inc(r);
            OutVerdict::Drop(r)
        }
    }
}
