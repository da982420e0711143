//! Multipath distribution and minimal-movement properties of the gateway
//! group (issue 3 item 6), over 100,000 synthetic flows.

use esptun::policy::multipath::{GatewayGroup, GatewayIdx, GatewaySpec};

const FLOWS: u64 = 100_000;

/// Flow hashes as a caller would produce them: independent of the group's
/// own mixing (a Weyl sequence through a different multiplier and shifts).
fn flow_hash(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0xd6e8_feb8_6659_fd93).wrapping_add(0x9e37_79b9);
    x ^= x >> 32;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^ (x >> 29)
}

fn group(weights: &[u32]) -> GatewayGroup {
    let specs: Vec<_> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| GatewaySpec {
            id: esptun::policy::multipath::gateway_id(format!("192.0.2.{}:4500", i + 1).as_bytes()),
            weight: *w,
        })
        .collect();
    GatewayGroup::new(&specs).unwrap()
}

fn placement(g: &GatewayGroup) -> Vec<GatewayIdx> {
    (0..FLOWS).map(|i| g.pick(flow_hash(i)).unwrap()).collect()
}

/// Each gateway's share is within 5 % *relative to its expected share*
/// (weight / total): e.g. weight 1 of 10 expects 10,000 flows, allowed
/// 9,500..=10,500.
#[test]
fn shares_follow_weights() {
    let weights = [1u32, 2, 3, 4];
    let total: u32 = weights.iter().sum();
    let place = placement(&group(&weights));
    for (idx, w) in weights.iter().enumerate() {
        let got = place.iter().filter(|p| **p == idx).count() as f64;
        let want = FLOWS as f64 * f64::from(*w) / f64::from(total);
        let rel = (got - want).abs() / want;
        assert!(
            rel <= 0.05,
            "gateway {idx} weight {w}: {got} flows, expected {want} (off by {:.2} %)",
            rel * 100.0
        );
    }
}

/// Taking one gateway down moves exactly its flows, no others; bringing it
/// back restores the original placement exactly.
#[test]
fn down_moves_only_its_flows_and_up_restores() {
    let g = group(&[1, 2, 3, 4]);
    let before = placement(&g);
    for down in 0..4 {
        assert!(g.set_up(down, false));
        let during = placement(&g);
        for (b, d) in before.iter().zip(&during) {
            if *b == down {
                assert_ne!(*d, down, "flow left on a down gateway");
            } else {
                assert_eq!(b, d, "a flow of another gateway moved");
            }
        }
        // The down gateway's flows spread over the others by weight: each
        // other gateway received some.
        for other in (0..4).filter(|o| *o != down) {
            assert!(before.iter().zip(&during).any(|(b, d)| *b == down && *d == other));
        }
        assert!(g.set_up(down, true));
        assert_eq!(placement(&g), before, "placement not restored after gateway {down} came back");
    }
}

/// Adding a fifth gateway of equal weight moves about 1/5 of the flows, all
/// of them onto the new gateway; with weights it moves about weight/total.
#[test]
fn adding_moves_about_one_in_n_plus_one() {
    for (weights, new_weight) in [(vec![1u32, 1, 1, 1], 1u32), (vec![1, 2, 3, 4], 5)] {
        let mut g = group(&weights);
        let before = placement(&g);
        let new = g
            .add(GatewaySpec {
                id: esptun::policy::multipath::gateway_id(b"192.0.2.200:4500"),
                weight: new_weight,
            })
            .unwrap();
        let after = placement(&g);
        let mut moved = 0u64;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*a, new, "a flow moved between old gateways");
                moved += 1;
            }
        }
        let total: u32 = weights.iter().sum::<u32>() + new_weight;
        let want = FLOWS as f64 * f64::from(new_weight) / f64::from(total);
        let rel = (moved as f64 - want).abs() / want;
        assert!(rel <= 0.05, "moved {moved}, expected about {want}");
    }
}

/// Placement depends on gateway identities, not list order.
#[test]
fn order_of_configuration_does_not_matter() {
    let a = group(&[1, 2, 3]);
    let ids: Vec<_> = (0..3).map(|i| a.spec(i).unwrap()).collect();
    let b = GatewayGroup::new(&[ids[2], ids[0], ids[1]]).unwrap();
    let map_b = [2usize, 0, 1]; // b's index -> a's index
    for i in 0..10_000 {
        let h = flow_hash(i);
        assert_eq!(a.pick(h), b.pick(h).map(|x| map_b[x]));
    }
}
