//! Issue 4 item 7: after warm-up, the in-process pipeline (classify, pick
//! a gateway, seal, open) allocates nothing per packet. A counting global
//! allocator counts every allocation of this test binary.

use esptun::crypto::{AeadAlg, KeyMaterial};
use esptun::engine::{Engine, EngineConfig, InVerdict, OutVerdict, Update};
use esptun::esp::{InboundSa, OutboundSa, OuterPath, PacketBuf, SaConfig};
use esptun::policy::multipath::{GatewayGroup, GatewaySpec, gateway_id};
use esptun::policy::spd::{Action, AddrRange, Rule, RuleSelector, Spd};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only
// counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn packet(sport: u16) -> Vec<u8> {
    let mut p = vec![0u8; 1000];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&1000u16.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[198, 51, 100, 1]);
    p[16..20].copy_from_slice(&[203, 0, 113, 1]);
    let c = esptun::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..26].copy_from_slice(&980u16.to_be_bytes());
    p
}

#[test]
fn steady_state_pipeline_does_not_allocate() {
    let rules = [Rule {
        selector: RuleSelector::addrs(
            AddrRange::prefix("198.51.100.0".parse().unwrap(), 24).unwrap(),
            AddrRange::prefix("203.0.113.0".parse().unwrap(), 24).unwrap(),
        ),
        action: Action::Protect(0),
    }];
    let spd = Arc::new(Spd::compile(&rules, Action::Drop).unwrap());
    let specs: Vec<GatewaySpec> = (0..3u8).map(|i| GatewaySpec { id: gateway_id(&[i]), weight: 1 }).collect();
    let group = Arc::new(GatewayGroup::new(&specs).unwrap());
    let mut a = Engine::new(EngineConfig::default(), spd.clone());
    let mut b = Engine::new(EngineConfig::default(), spd);
    a.apply(Update::Child { id: 0, group, symmetric: true });
    for i in 0..3u8 {
        let alg = AeadAlg::AesGcm128;
        let path = OuterPath {
            local: "192.0.2.1".parse().unwrap(),
            remote: IpAddr::from([192, 0, 2, 10 + i]),
            encap: Some((4500, 4500)),
        };
        let cfg = SaConfig::new(0x1000 + u32::from(i), alg, KeyMaterial::new(alg, &[i; 20]).unwrap(), path);
        a.apply(Update::outbound(0, usize::from(i), Arc::new(OutboundSa::new(cfg.clone()).unwrap())));
        b.apply(Update::Inbound(Box::new(InboundSa::new(cfg).unwrap())));
    }
    const BATCH: usize = 32;
    let templates: Vec<Vec<u8>> = (0..BATCH as u16).map(|i| packet(1000 + i)).collect();
    let mut bufs: Vec<PacketBuf> = templates.iter().map(|t| PacketBuf::from_packet(t)).collect();
    let mut out = [OutVerdict::Bypass; BATCH];
    let mut res = [InVerdict::Control; BATCH];
    let mut run = |rounds: usize| {
        for _ in 0..rounds {
            for (b, t) in bufs.iter_mut().zip(&templates) {
                b.set(t).unwrap();
            }
            a.outbound_batch(&mut bufs, &mut out);
            b.inbound_batch(&mut bufs, &[], &mut res);
            assert!(res.iter().all(|r| *r == InVerdict::Deliver), "{res:?}");
        }
    };
    run(100); // warm-up: flow cache, lazy statics
    let before = ALLOCS.load(Ordering::Relaxed);
    let rounds = 1_000_000 / BATCH + 1;
    run(rounds);
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations over {} packets", rounds * BATCH);
}
