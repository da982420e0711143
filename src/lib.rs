//! esptun: a userspace IPsec VPN endpoint (IKEv2 + ESP) on a TUN device.
//!
//! The crate is layered; protocol layers are sans-IO (bytes and `now` in,
//! bytes and events out) and never import I/O code:
//!
//! - [`wire`]: zero-copy, panic-free views over packet bytes (IPv4, IPv6 with
//!   extension headers, UDP, TCP, ICMP, ESP, ESP-in-UDP per RFC 3948) and
//!   emitters for outer headers with correct checksums.
//! - [`crypto`]: the ESP AEADs (AES-GCM-16 per RFC 4106, ChaCha20-Poly1305
//!   per RFC 7634) behind one trait, with a fast default backend (AWS-LC)
//!   and the RustCrypto crates as an alternative.
//! - [`ts`]: traffic selectors (RFC 7296 §3.13.1 ranges) shared by ESP's
//!   inbound check, the policy layer and IKE.
//! - [`esp`]: security associations, tunnel-mode seal/open into caller-owned
//!   buffers, anti-replay with ESN, ECN/DSCP handling and PMTU.
//! - [`policy`]: configuration model, validation and the SPD.
//! - [`engine`]: the per-worker sans-IO packet pipeline (SPD, gateway
//!   choice, PMTU, ESP seal/open over batches) and its control updates.
//! - [`dataplane`]: TUN and UDP devices and the two I/O backends.
//! - [`ops`]: the benchmark rig and other operator tools.
//! - [`control`]: bring-up from a configuration (`esptun run`), routes.
//!
//! docs/ARCHITECTURE.md holds the full layer map and the reasons behind it.

pub mod control;
pub mod crypto;
pub mod dataplane;
pub mod engine;
pub mod esp;
#[doc(hidden)]
pub mod fuzzing;
pub mod ops;
pub mod policy;
pub mod ts;
pub mod wire;
