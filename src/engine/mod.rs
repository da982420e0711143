//! The per-worker packet engine: policy lookup, gateway choice, PMTU, ESP
//! seal/open over batches of caller-owned buffers, and counters.
//!
//! It is sans-IO: the dataplane hands it batches read from the TUN device
//! or the UDP socket and writes out what it returns, and the control thread
//! changes its state only through [`Update`] messages applied between
//! batches. Each worker owns one `Engine`; outbound SAs are shared
//! (`Arc`, sequence numbers by atomic add), inbound SAs are owned by exactly
//! one engine (the one their SPI is steered to), so their replay windows
//! have a single writer and no lock.

mod inbound;
mod outbound;

pub use inbound::InVerdict;
pub use outbound::OutVerdict;

use crate::esp::{DropCounters, InboundSa, OutboundSa, PacketBuf};
use crate::policy::multipath::{GatewayGroup, GatewayIdx};
use crate::policy::spd::{Action, ChildId, FlowCache, Spd};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Settings of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// MTU of the outer path: sealed packets (outer IP + UDP + ESP) fit it.
    pub path_mtu: usize,
    /// Flow-cache entries.
    pub flow_cache: usize,
    /// Source of ICMPv4 "fragmentation needed" errors; `None` = the
    /// original packet's destination.
    pub icmp_src_v4: Option<Ipv4Addr>,
    /// Source of ICMPv6 "packet too big" errors; `None` = the original
    /// packet's destination (when it is unicast).
    pub icmp_src_v6: Option<Ipv6Addr>,
    /// Seed of the flow hash that picks gateways (the same on all workers,
    /// so a flow picks the same gateway wherever it is read).
    pub hash_seed: u64,
    /// Most packets in one batch (sizes the per-batch scratch space).
    pub max_batch: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path_mtu: 1500,
            flow_cache: 4096,
            icmp_src_v4: None,
            icmp_src_v6: None,
            hash_seed: 0x6573_7074_756e_0001,
            max_batch: 64,
        }
    }
}

/// A child SA as the data path sees it: the gateways it may use and the
/// outbound SA towards each.
#[derive(Debug)]
pub struct Child {
    group: Arc<GatewayGroup>,
    symmetric: bool,
    sas: Vec<Option<Arc<OutboundSa>>>,
}

/// State changes from the control thread, applied between batches.
#[derive(Debug)]
pub enum Update {
    /// A new compiled policy (its generation invalidates the flow cache).
    Policy(Arc<Spd>),
    /// Adds or replaces a child and its gateway group (keeps outbound SAs
    /// of gateways that still exist).
    Child {
        /// Index used by the policy's `Protect` actions.
        id: ChildId,
        /// Gateways with weights and health.
        group: Arc<GatewayGroup>,
        /// Hash flows symmetrically (both directions pick the same gateway).
        symmetric: bool,
    },
    /// Removes a child and its outbound SAs.
    RemoveChild(ChildId),
    /// Installs (`Some`) or removes (`None`) the outbound SA of one
    /// gateway of a child. Replacing an SA is the rekey switch-over: the
    /// next batch uses the new one (make-before-break: install the new
    /// inbound SA first).
    Outbound {
        /// The child.
        child: ChildId,
        /// The gateway within the child's group.
        gateway: GatewayIdx,
        /// The SA, or `None` to remove.
        sa: Option<Arc<OutboundSa>>,
    },
    /// Installs an inbound SA (keyed by its SPI; replaces one with the
    /// same SPI).
    Inbound(Box<InboundSa>),
    /// Removes the inbound SA with this SPI.
    RemoveInbound(u32),
    /// Several updates applied in order with no batch in between (a
    /// reload: new inbound SAs, children, outbound SAs, then the policy).
    Many(Vec<Update>),
}

/// Per-engine counters (one writer; the control thread aggregates copies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Drops by reason, both directions.
    pub drops: DropCounters,
    /// Packets sealed and handed out for sending.
    pub tx_packets: u64,
    /// Inner bytes of those packets.
    pub tx_bytes: u64,
    /// Packets opened and handed out for the TUN.
    pub rx_packets: u64,
    /// Inner bytes of those packets.
    pub rx_bytes: u64,
    /// Packets a policy let bypass the tunnel.
    pub bypassed: u64,
    /// ICMP/ICMPv6 "too big" errors generated.
    pub icmp_errors: u64,
    /// IPv4 fragments produced before sealing.
    pub fragments: u64,
    /// NAT keepalives received.
    pub keepalives: u64,
    /// NAT keepalives sent (by the control thread).
    pub keepalives_sent: u64,
    /// IKE packets (non-ESP marker) passed to the control thread.
    pub ike: u64,
    /// Packets whose SA crossed a soft lifetime (rekey due).
    pub soft_lifetime: u64,
}

impl Counters {
    /// Adds another engine's counters to these (aggregation).
    pub fn merge(&mut self, o: &Counters) {
        self.drops.merge(&o.drops);
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.bypassed += o.bypassed;
        self.icmp_errors += o.icmp_errors;
        self.fragments += o.fragments;
        self.keepalives += o.keepalives;
        self.keepalives_sent += o.keepalives_sent;
        self.ike += o.ike;
        self.soft_lifetime += o.soft_lifetime;
    }
}

/// SPIs are chosen at random by the receiver: the value itself is a good
/// hash, and this keeps lookups free of SipHash.
#[derive(Default)]
struct SpiHasher(u64);

impl Hasher for SpiHasher {
    fn finish(&self) -> u64 {
        // Spread the bits; SPIs of one worker share their residue mod N.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

type SpiMap<V> = HashMap<u32, V, BuildHasherDefault<SpiHasher>>;

/// One worker's packet engine.
pub struct Engine {
    cfg: EngineConfig,
    spd: Arc<Spd>,
    cache: FlowCache,
    children: Vec<Option<Child>>,
    inbound: SpiMap<InboundSa>,
    counters: Counters,
    /// Scratch for ICMP errors and fragments.
    scratch: Vec<u8>,
    /// Per-batch plan (see outbound.rs), sized to `max_batch`.
    plan: Vec<outbound::Plan>,
    /// Extra output packets (IPv4 fragments), with their verdicts.
    extra: Vec<(PacketBuf, OutVerdict)>,
    /// Buffers for `extra`, recycled.
    spare: Vec<PacketBuf>,
}

impl Engine {
    /// An engine with the given policy and no SAs.
    pub fn new(cfg: EngineConfig, spd: Arc<Spd>) -> Self {
        let cache = FlowCache::new(cfg.flow_cache);
        let plan = Vec::with_capacity(cfg.max_batch);
        Engine {
            cache,
            spd,
            children: Vec::new(),
            inbound: SpiMap::default(),
            counters: Counters::default(),
            scratch: vec![0u8; crate::esp::buf::DEFAULT_CAPACITY],
            plan,
            extra: Vec::new(),
            spare: Vec::new(),
            cfg,
        }
    }

    /// Applies one control-thread update.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Policy(spd) => self.spd = spd,
            Update::Child { id, group, symmetric } => {
                let i = id as usize;
                if self.children.len() <= i {
                    self.children.resize_with(i + 1, || None);
                }
                let mut sas = self.children[i].take().map(|c| c.sas).unwrap_or_default();
                sas.resize(group.len(), None);
                self.children[i] = Some(Child { group, symmetric, sas });
            }
            Update::RemoveChild(id) => {
                if let Some(c) = self.children.get_mut(id as usize) {
                    *c = None;
                }
            }
            Update::Outbound { child, gateway, sa } => {
                if let Some(Some(c)) = self.children.get_mut(child as usize)
                    && let Some(slot) = c.sas.get_mut(gateway)
                {
                    *slot = sa;
                }
            }
            Update::Inbound(sa) => {
                self.inbound.insert(sa.spi(), *sa);
            }
            Update::RemoveInbound(spi) => {
                self.inbound.remove(&spi);
            }
            Update::Many(list) => {
                for u in list {
                    self.apply(u);
                }
            }
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The inbound SA with this SPI (for lifetime and usage checks).
    pub fn inbound_sa(&self, spi: u32) -> Option<&InboundSa> {
        self.inbound.get(&spi)
    }

    /// Fills `out` with (SPI, inner bytes, packets) of every inbound SA.
    pub fn inbound_usage(&self, out: &mut Vec<(u32, u64, u64)>) {
        out.clear();
        out.extend(self.inbound.iter().map(|(spi, sa)| {
            let (b, p) = sa.usage();
            (*spi, b, p)
        }));
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Packets produced beyond one per input (IPv4 fragments) by the last
    /// [`outbound_batch`](Self::outbound_batch); send them, then call
    /// [`recycle_extra`](Self::recycle_extra).
    pub fn extra(&mut self) -> &mut Vec<(PacketBuf, OutVerdict)> {
        &mut self.extra
    }

    /// Returns the buffers of [`extra`](Self::extra) to the engine's pool.
    pub fn recycle_extra(&mut self) {
        for (b, _) in self.extra.drain(..) {
            self.spare.push(b);
        }
    }

    /// The policy action for a flow (flow cache first).
    fn classify(&mut self, key: &crate::wire::flow::FlowKey) -> Action {
        self.cache.classify(&self.spd, key)
    }
}

#[cfg(test)]
mod tests;
