//! Why a packet was dropped: one `Copy` reason per cause, counted per
//! worker. Strings exist only for metrics labels and rate-limited logs.

use core::fmt;

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $label:literal,)*) => {
        /// The reason a packet was not sealed or opened.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[$doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in declaration order (index = `as usize`).
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons.
            pub const COUNT: usize = DropReason::ALL.len();

            /// A stable snake_case label for metrics.
            pub const fn label(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than the smallest valid packet of its kind.
    Truncated => "truncated",
    /// Larger than the format or the buffer allows.
    Oversized => "oversized",
    /// The outer IP/UDP header is malformed.
    OuterMalformed => "outer_malformed",
    /// Not ESP: an IKE packet (non-ESP marker) on the ESP path.
    NotEsp => "not_esp",
    /// An IKE message (non-ESP marker) that no IKE connection handles yet
    /// (static SAs only): counted by the control thread, then dropped.
    IkeUnhandled => "ike_unhandled",
    /// ESP on the control thread's socket (the steering program sends it
    /// to the workers; only a detached program lets this happen).
    Misrouted => "misrouted",
    /// A 1-byte NAT-keepalive (RFC 3948 §2.3): consumed, not forwarded.
    NatKeepalive => "nat_keepalive",
    /// No inbound SA has this SPI.
    UnknownSpi => "unknown_spi",
    /// The sequence number was already received.
    Replayed => "replayed",
    /// The sequence number is older than the replay window.
    TooOld => "too_old",
    /// The ICV did not verify.
    AuthFailed => "auth_failed",
    /// Padding bytes are not 1, 2, 3, ... or the pad length is too long.
    BadPadding => "bad_padding",
    /// Next header is neither IPv4 (4), IPv6 (41) nor a dummy (59).
    BadNextHeader => "bad_next_header",
    /// A TFC dummy packet (next header 59, RFC 4303 §2.6): discarded.
    DummyPacket => "dummy_packet",
    /// The inner packet is not a valid IP packet.
    InnerMalformed => "inner_malformed",
    /// The inner IP version disagrees with the ESP next header.
    InnerVersionMismatch => "inner_version_mismatch",
    /// The inner packet is outside the SA's traffic selectors
    /// (RFC 4301 §5.2).
    SelectorMismatch => "selector_mismatch",
    /// Outer CE on a Not-ECT inner packet (RFC 6040 §4.2).
    EcnCeOnNotEct => "ecn_ce_on_not_ect",
    /// The sequence number space is used up; the SA must be rekeyed.
    SeqExhausted => "seq_exhausted",
    /// The SA's hard lifetime (bytes or packets) is reached.
    LifetimeExpired => "lifetime_expired",
    /// The buffer lacks the headroom or tailroom for the ESP framing.
    NoRoom => "no_room",
    /// The packet exceeds the path MTU (an ICMP error is due instead).
    TooBig => "too_big",
    /// No policy matched the packet.
    NoPolicy => "no_policy",
    /// The policy's child has no usable gateway: all are down, or none has
    /// an outbound SA yet.
    NoGateway => "no_gateway",
    /// A policy said to drop the packet.
    PolicyDrop => "policy_drop",
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Per-reason drop counters, owned by one worker (no atomics, no locks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl DropCounters {
    /// Counts one drop.
    #[inline]
    pub fn inc(&mut self, reason: DropReason) {
        self.counts[reason as usize] += 1;
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another set of counters to this one (aggregation).
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    /// Non-zero counters as (reason, count).
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r))).filter(|&(_, n)| n != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unique_and_counters() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(seen.insert(r.label()));
        }
        let mut c = DropCounters::default();
        c.inc(DropReason::AuthFailed);
        c.inc(DropReason::AuthFailed);
        c.inc(DropReason::Replayed);
        let mut d = DropCounters::default();
        d.merge(&c);
        assert_eq!(d.get(DropReason::AuthFailed), 2);
        assert_eq!(d.total(), 3);
        assert_eq!(d.nonzero().count(), 2);
    }
}
