//! The control side: bringing the tunnel up from a configuration, routes,
//! signals and counters (IKE will join here).
//!
//! - [`run`]: `esptun run -c FILE` (static SAs): devices, SAs, workers.
//! - [`routes`]: policy destinations as prefixes, `ip route` into the TUN.
//! - [`socket`]: the control thread's UDP socket (keepalives, IKE).
//! - [`keepalive`]: when to send NAT keepalives to which peer.

pub mod keepalive;
pub mod routes;
pub mod run;
pub mod socket;
