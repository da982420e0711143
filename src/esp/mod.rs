//! ESP (RFC 4303) in tunnel mode: security associations, seal and open
//! into caller-owned buffers, anti-replay with ESN, DSCP/ECN handling and
//! PMTU.
//!
//! Everything here is sans-IO: bytes in, bytes and a `Copy` result out.

pub mod buf;
pub mod drop;
pub mod frag;
pub mod open;
pub mod pmtu;
pub mod replay;
pub mod sa;
pub mod seal;

pub use buf::PacketBuf;
pub use drop::{DropCounters, DropReason};
pub use open::{Opened, Outer, peek_spi, strip_outer};
pub use replay::{ReplayError, ReplayWindow};
pub use sa::{
    DscpMode, EcnMode, InboundSa, Lifetime, LifetimeState, Limits, OutboundSa, OuterPath, SaConfig, SaError,
};
pub use seal::{Framing, Sealed};

#[cfg(test)]
mod tests;
