//! Security association state: configuration, lifetimes and the two
//! directions' runtime types.
//!
//! An SA is always described from this endpoint's point of view:
//! `local_ts` covers our side of the tunnel (inner source of outbound
//! packets, inner destination of inbound ones), `remote_ts` the peer's side.
//! The same [`SaConfig`] shape serves both directions; the SPI is the one
//! carried in the ESP header (chosen by the receiver, RFC 4303 §2.1).

use super::replay::ReplayWindow;
use crate::crypto::{self, Aead, AeadAlg, Backend, CryptoError, KeyMaterial};
use crate::ts::TrafficSelector;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use std::net::IpAddr;
use std::time::Duration;

/// Byte, packet and time limits; 0 means "no limit".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of inner (plaintext) traffic.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Seconds since the SA was installed.
    pub secs: u64,
}

/// Soft limits ask the control plane to rekey; hard limits stop the SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// Crossing any of these reports [`LifetimeState::Soft`].
    pub soft: Limits,
    /// Crossing any of these stops the SA ([`LifetimeState::Hard`]).
    pub hard: Limits,
}

/// Where an SA stands against its lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LifetimeState {
    /// Within all limits.
    #[default]
    Live,
    /// A soft limit is crossed: rekey now.
    Soft,
    /// A hard limit is crossed: the SA no longer carries traffic.
    Hard,
}

impl Lifetime {
    /// The state after `bytes`/`packets` of traffic and `age` of time.
    pub fn state(&self, bytes: u64, packets: u64, age: Duration) -> LifetimeState {
        let secs = age.as_secs();
        let over = |l: &Limits| {
            (l.bytes != 0 && bytes >= l.bytes)
                || (l.packets != 0 && packets >= l.packets)
                || (l.secs != 0 && secs >= l.secs)
        };
        if over(&self.hard) {
            LifetimeState::Hard
        } else if over(&self.soft) {
            LifetimeState::Soft
        } else {
            LifetimeState::Live
        }
    }
}

/// Outer addresses of the tunnel, and UDP encapsulation (RFC 3948).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterPath {
    /// Our outer address.
    pub local: IpAddr,
    /// The peer's outer address.
    pub remote: IpAddr,
    /// `Some((local_port, remote_port))` for ESP-in-UDP, `None` for plain
    /// ESP (IP protocol 50).
    pub encap: Option<(u16, u16)>,
}

/// How the outer DSCP is chosen on encapsulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DscpMode {
    /// Copy the inner DSCP to the outer header (RFC 2983 uniform model on
    /// the way out). On decapsulation the inner DSCP is never changed.
    #[default]
    Copy,
    /// Always use this DSCP (0..=63) on the outer header.
    Fixed(u8),
}

/// ECN handling for tunnels (RFC 6040).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EcnMode {
    /// Normal mode: copy the inner ECN field to the outer header; on
    /// decapsulation combine outer and inner per RFC 6040 §4.2.
    #[default]
    Normal,
    /// Compatibility mode: the outer header is Not-ECT (RFC 6040 §4.1).
    Compatibility,
}

/// Everything needed to install one SA in one direction.
#[derive(Clone, Debug)]
pub struct SaConfig {
    /// SPI carried in the ESP header (chosen by the receiving side).
    pub spi: u32,
    /// The AEAD transform.
    pub alg: AeadAlg,
    /// Which library runs the AEAD.
    pub backend: Backend,
    /// `key || salt` for this direction.
    pub keymat: KeyMaterial,
    /// Extended (64-bit) sequence numbers (RFC 4304).
    pub esn: bool,
    /// Anti-replay window in packets (inbound only).
    pub replay_window: u32,
    /// Soft and hard limits.
    pub lifetime: Lifetime,
    /// Our side of the tunnel.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side of the tunnel.
    pub remote_ts: Vec<TrafficSelector>,
    /// Outer addresses and encapsulation.
    pub path: OuterPath,
    /// Outer DSCP policy.
    pub dscp: DscpMode,
    /// ECN handling.
    pub ecn: EcnMode,
    /// Traffic-flow confidentiality: pad inner packets up to this many bytes
    /// (RFC 4303 §2.4); 0 = off.
    pub tfc_pad_to: u16,
    /// Outer TTL / hop limit for [`super::Framing::Ip`].
    pub outer_ttl: u8,
}

impl SaConfig {
    /// A config with defaults for all but the essentials: no ESN, the
    /// default replay window, no lifetime limits, selectors covering
    /// everything of both families, DSCP copied, RFC 6040 normal mode, no
    /// TFC padding, outer TTL 64, default crypto backend.
    pub fn new(spi: u32, alg: AeadAlg, keymat: KeyMaterial, path: OuterPath) -> Self {
        let any = vec![TrafficSelector::any(false), TrafficSelector::any(true)];
        SaConfig {
            spi,
            alg,
            backend: Backend::default(),
            keymat,
            esn: false,
            replay_window: super::replay::DEFAULT_WINDOW,
            lifetime: Lifetime::default(),
            local_ts: any.clone(),
            remote_ts: any,
            path,
            dscp: DscpMode::Copy,
            ecn: EcnMode::Normal,
            tfc_pad_to: 0,
            outer_ttl: 64,
        }
    }
}

/// Why an SA could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    /// Key material does not fit the transform.
    #[error("key material: {0}")]
    Crypto(#[from] CryptoError),
    /// SPIs 0..=255 are reserved (RFC 4303 §2.1).
    #[error("SPI {0} is reserved (0-255)")]
    ReservedSpi(u32),
    /// The replay window size is not supported.
    #[error("replay window size not supported")]
    ReplayWindow,
    /// Outer addresses of different families.
    #[error("outer local and remote addresses are of different families")]
    MixedFamily,
    /// A DSCP above 63.
    #[error("DSCP must be 0..=63")]
    BadDscp,
}

fn check_common(cfg: &SaConfig) -> Result<Box<dyn Aead>, SaError> {
    if cfg.spi < 256 {
        return Err(SaError::ReservedSpi(cfg.spi));
    }
    if cfg.path.local.is_ipv4() != cfg.path.remote.is_ipv4() {
        return Err(SaError::MixedFamily);
    }
    if let DscpMode::Fixed(d) = cfg.dscp
        && d > 63
    {
        return Err(SaError::BadDscp);
    }
    Ok(crypto::new_aead(cfg.backend, cfg.alg, cfg.keymat.expose())?)
}

/// The sending side of an SA. `seal` takes `&self`: several workers may
/// share one outbound SA; each batch takes its sequence numbers with one
/// atomic add, so no sequence number is ever used twice.
pub struct OutboundSa {
    pub(super) cfg: SaConfig,
    pub(super) aead: Box<dyn Aead>,
    /// Next sequence number to hand out (starts at 1).
    pub(super) next_seq: AtomicU64,
    /// Inner bytes sealed so far.
    pub(super) bytes: AtomicU64,
}

impl OutboundSa {
    /// Creates the SA; the first packet gets sequence number 1.
    pub fn new(cfg: SaConfig) -> Result<Self, SaError> {
        let aead = check_common(&cfg)?;
        Ok(OutboundSa { cfg, aead, next_seq: AtomicU64::new(1), bytes: AtomicU64::new(0) })
    }

    /// The configuration this SA was built from.
    pub fn config(&self) -> &SaConfig {
        &self.cfg
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.cfg.spi
    }

    /// Sets the next sequence number (tests and the benchmark rig; never
    /// move it backwards on a live SA: that would reuse nonces).
    pub fn set_next_seq(&self, seq: u64) {
        self.next_seq.store(seq, Ordering::Relaxed);
    }

    /// The next sequence number that will be used.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// Highest sequence number this SA may send: 2^32-1, or 2^64-1 with
    /// ESN (RFC 4303 §3.3.3: never cycle).
    pub fn max_seq(&self) -> u64 {
        if self.cfg.esn { u64::MAX } else { u64::from(u32::MAX) }
    }

    /// Inner bytes and packets sealed so far.
    pub fn usage(&self) -> (u64, u64) {
        let sent = self.next_seq.load(Ordering::Relaxed).saturating_sub(1);
        (self.bytes.load(Ordering::Relaxed), sent)
    }

    /// Lifetime state at `age` since installation.
    pub fn lifetime_state(&self, age: Duration) -> LifetimeState {
        let (b, p) = self.usage();
        self.cfg.lifetime.state(b, p, age)
    }
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.cfg.spi))
            .field("alg", &self.cfg.alg)
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

/// The receiving side of an SA, owned by exactly one worker (single-writer
/// replay window, plain counters).
pub struct InboundSa {
    pub(super) cfg: SaConfig,
    pub(super) aead: Box<dyn Aead>,
    pub(super) replay: ReplayWindow,
    pub(super) bytes: u64,
    pub(super) packets: u64,
    /// Both selector lists cover everything of both families: the inbound
    /// selector check can be skipped.
    pub(super) ts_any: bool,
}

impl InboundSa {
    /// Creates the SA with an empty replay window.
    pub fn new(cfg: SaConfig) -> Result<Self, SaError> {
        let aead = check_common(&cfg)?;
        let replay = ReplayWindow::new(cfg.replay_window, cfg.esn).map_err(|_| SaError::ReplayWindow)?;
        let covers_all = |list: &[TrafficSelector]| {
            [false, true].iter().all(|&v6| list.iter().any(|ts| ts.is_v6() == v6 && ts.is_any()))
        };
        let ts_any = covers_all(&cfg.local_ts) && covers_all(&cfg.remote_ts);
        Ok(InboundSa { cfg, aead, replay, bytes: 0, packets: 0, ts_any })
    }

    /// The configuration this SA was built from.
    pub fn config(&self) -> &SaConfig {
        &self.cfg
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.cfg.spi
    }

    /// Inner bytes and packets accepted so far.
    pub fn usage(&self) -> (u64, u64) {
        (self.bytes, self.packets)
    }

    /// Highest sequence number accepted so far.
    pub fn highest_seq(&self) -> u64 {
        self.replay.top()
    }

    /// Lifetime state at `age` since installation.
    pub fn lifetime_state(&self, age: Duration) -> LifetimeState {
        self.cfg.lifetime.state(self.bytes, self.packets, age)
    }

    /// Marks `seq` as received, moving the window there: for tests and
    /// fixtures that start an ESN SA beyond 2^32 (the high half is inferred
    /// from the window).
    #[doc(hidden)]
    pub fn prime_replay(&mut self, seq: u64) {
        self.replay.commit(seq);
    }
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.cfg.spi))
            .field("alg", &self.cfg.alg)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}
