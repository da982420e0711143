//! NAT keepalives we send (RFC 3948 §2.3: one 0xFF byte in a UDP datagram
//! from our ESP-in-UDP port), so that a NAT between us and a peer keeps
//! its mapping while the tunnel is idle. Configured per outbound static SA
//! (`keepalive`); IKE will add its NAT detection later.
//!
//! Sans-IO: [`Keepalives`] only says which peers are due at a given
//! instant; the control loop sends the datagrams through its socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The one-byte payload of a NAT keepalive.
pub const KEEPALIVE: [u8; 1] = [0xFF];

/// One peer's schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Peer {
    addr: SocketAddr,
    every: Duration,
    next: Instant,
}

/// Which peers get a keepalive when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keepalives {
    peers: Vec<Peer>,
}

impl Keepalives {
    /// A schedule for `targets` (peer, interval). A peer named twice gets
    /// the shorter interval; a zero interval is ignored. The first
    /// keepalive goes out at once (it opens the NAT mapping).
    pub fn new(targets: &[(SocketAddr, Duration)], now: Instant) -> Keepalives {
        let mut k = Keepalives::default();
        k.update(targets, now);
        k
    }

    /// Replaces the targets (a reload). Peers that stay keep their next
    /// due time, capped at the new interval from now; new ones are due now.
    pub fn update(&mut self, targets: &[(SocketAddr, Duration)], now: Instant) {
        let mut peers: Vec<Peer> = Vec::new();
        for &(addr, every) in targets.iter().filter(|(_, e)| !e.is_zero()) {
            if let Some(p) = peers.iter_mut().find(|p| p.addr == addr) {
                p.every = p.every.min(every);
                continue;
            }
            peers.push(Peer { addr, every, next: now });
        }
        for p in &mut peers {
            if let Some(old) = self.peers.iter().find(|o| o.addr == p.addr) {
                p.next = old.next.min(now + p.every);
            }
        }
        self.peers = peers;
    }

    /// Peers due at `now` (pushed to `out`); each is rescheduled one
    /// interval later (from `now`, so a late loop does not burst).
    pub fn due(&mut self, now: Instant, out: &mut Vec<SocketAddr>) {
        for p in &mut self.peers {
            if p.next <= now {
                out.push(p.addr);
                p.next = now + p.every;
            }
        }
    }

    /// Peers and intervals, for the start-up line.
    pub fn describe(&self) -> String {
        let v: Vec<String> =
            self.peers.iter().map(|p| format!("{} every {}s", p.addr, p.every.as_secs())).collect();
        v.join(", ")
    }

    /// Whether no peer gets keepalives.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_at_once_then_every_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalives::new(&[(a("192.0.2.2:4500"), 20 * s), (a("192.0.2.3:4500"), 5 * s)], t0);
        let mut out = Vec::new();
        k.due(t0, &mut out);
        assert_eq!(out, [a("192.0.2.2:4500"), a("192.0.2.3:4500")]);
        out.clear();
        k.due(t0 + 4 * s, &mut out);
        assert!(out.is_empty());
        k.due(t0 + 5 * s, &mut out);
        assert_eq!(out, [a("192.0.2.3:4500")]);
        out.clear();
        // A loop that wakes late sends once, not a burst.
        k.due(t0 + 60 * s, &mut out);
        assert_eq!(out, [a("192.0.2.2:4500"), a("192.0.2.3:4500")]);
        out.clear();
        k.due(t0 + 61 * s, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn duplicates_take_the_shorter_interval_and_zero_is_off() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let p = a("[2001:db8::2]:4500");
        let mut k = Keepalives::new(&[(p, 30 * s), (p, 10 * s), (a("192.0.2.9:4500"), Duration::ZERO)], t0);
        assert_eq!(k.describe(), "[2001:db8::2]:4500 every 10s");
        let mut out = Vec::new();
        k.due(t0, &mut out);
        k.due(t0 + 10 * s, &mut out);
        assert_eq!(out, [p, p]);
        assert!(Keepalives::new(&[], t0).is_empty());
    }

    #[test]
    fn reload_keeps_the_schedule_of_peers_that_stay() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let (old, new) = (a("192.0.2.2:4500"), a("192.0.2.4:4500"));
        let mut k = Keepalives::new(&[(old, 20 * s)], t0);
        let mut out = Vec::new();
        k.due(t0, &mut out);
        out.clear();
        // At t0 + 5 s: old stays (next due t0 + 20 s, within the new 30 s),
        // new is due at once.
        k.update(&[(old, 30 * s), (new, 30 * s)], t0 + 5 * s);
        k.due(t0 + 5 * s, &mut out);
        assert_eq!(out, [new]);
        out.clear();
        k.due(t0 + 20 * s, &mut out);
        assert_eq!(out, [old]);
        out.clear();
        // A shorter interval pulls the next keepalive in.
        k.update(&[(old, 2 * s)], t0 + 21 * s);
        k.due(t0 + 23 * s, &mut out);
        assert_eq!(out, [old]);
    }
}
