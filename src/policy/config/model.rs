//! The validated configuration model. Every value here has passed its
//! checks; defaults are filled in (docs/CONFIG.md lists them).

use super::proposal::{EspProposal, IkeProposal};
use super::selector::TsSpec;
use crate::crypto::{AeadAlg, Backend, KeyMaterial};
use crate::policy::identity::{Authorizer, IdPattern, Identity};
use crate::ts::TrafficSelector;
use core::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Global switches (`[settings]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Accept weak PRFs and groups (RFC 8247 "MUST NOT"/"SHOULD NOT").
    pub allow_weak: bool,
    /// Accept secrets written inline in the file (`psk`, `key`).
    pub allow_inline_secrets: bool,
    /// What happens to packets no rule matches.
    pub default_action: DefaultAction,
    /// AEAD backend.
    pub backend: Backend,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_weak: false,
            allow_inline_secrets: false,
            default_action: DefaultAction::Drop,
            backend: Backend::default(),
        }
    }
}

/// The action for packets that match no rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// Send them in clear, outside the tunnel (split tunneling).
    Bypass,
    /// Drop them.
    Drop,
}

/// A named address pool for road-warrior virtual IPs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Pool name (unique).
    pub name: String,
    /// Address ranges (any protocol/port parts are full).
    pub ranges: Vec<TrafficSelector>,
    /// DNS servers handed out with an address.
    pub dns: Vec<IpAddr>,
}

/// One gateway of a connection's multipath group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// Name (unique within the connection; defaults to `gwN`).
    pub name: String,
    /// Outer address.
    pub address: IpAddr,
    /// IKE/NAT-T UDP port.
    pub port: u16,
    /// Relative share of flows (> 0).
    pub weight: u32,
}

/// Which flow hash places flows on gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowHashMode {
    /// Hash of the directed 5-tuple.
    FiveTuple,
    /// Hash that is the same for both directions of a flow.
    Symmetric,
}

/// A pre-shared key source. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Read from this file (trailing newline stripped).
    File(PathBuf),
    /// Read from this environment variable.
    Env(String),
    /// Written in the config (needs `allow_inline_secrets`).
    Inline(Zeroizing<String>),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::File(p) => write!(f, "file {}", p.display()),
            Secret::Env(v) => write!(f, "env ${v}"),
            Secret::Inline(_) => f.write_str("inline <redacted>"),
        }
    }
}

impl Secret {
    /// Reads the secret (file or environment); done at start-up, not while
    /// loading, so loading stays a pure function of the text.
    pub fn resolve(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        match self {
            Secret::Inline(s) => Ok(Zeroizing::new(s.as_bytes().to_vec())),
            Secret::Env(v) => std::env::var(v)
                .map(|s| Zeroizing::new(s.into_bytes()))
                .map_err(|_| format!("environment variable {v} is not set")),
            Secret::File(p) => {
                let mut b = Zeroizing::new(
                    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
                );
                while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    b.pop();
                }
                if b.is_empty() {
                    return Err(format!("{} is empty", p.display()));
                }
                Ok(b)
            }
        }
    }
}

/// How one side authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// Pre-shared key.
    Psk,
    /// Certificate / raw public key signature.
    Pubkey,
}

/// Our side's identity and credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAuth {
    /// Method.
    pub method: AuthMethod,
    /// Our identity; `None` means our outer IP address.
    pub id: Option<Identity>,
    /// The PSK (shared by both sides when both use `psk`).
    pub psk: Option<Secret>,
    /// Our certificate (PEM/DER).
    pub cert: Option<PathBuf>,
    /// Our private key.
    pub key: Option<PathBuf>,
}

/// What we require of the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteAuth {
    /// Method.
    pub method: AuthMethod,
    /// Identities accepted (`%any` by default).
    pub id: IdPattern,
    /// The PSK, if different from ours.
    pub psk: Option<Secret>,
    /// Directory of trusted CA certificates.
    pub ca_dir: Option<PathBuf>,
    /// One trusted CA certificate.
    pub cacert: Option<PathBuf>,
}

/// strongSwan's `start_action` / `close_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAction {
    /// Do nothing.
    None,
    /// Install a trap: the first matching packet starts the SA.
    Trap,
    /// Start the SA now (or again, on close).
    Start,
}

/// What to do when dead peer detection declares the peer gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpdAction {
    /// Close the SA and forget it.
    Clear,
    /// Close it and install a trap.
    Trap,
    /// Re-establish at once.
    Restart,
}

/// The outer header's DSCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OuterDscp {
    /// Copy the inner packet's DSCP.
    Copy,
    /// Always this value (0..=63).
    Fixed(u8),
}

/// CHILD SA lifetimes; 0 means "no limit".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChildLifetime {
    /// Seconds until rekeying starts.
    pub rekey_time: u64,
    /// Seconds until the SA is deleted (hard limit).
    pub life_time: u64,
    /// Up to this many seconds are subtracted at random from `rekey_time`.
    pub rand_time: u64,
    /// Bytes until rekeying.
    pub rekey_bytes: u64,
    /// Bytes until deletion.
    pub life_bytes: u64,
    /// Packets until rekeying.
    pub rekey_packets: u64,
    /// Packets until deletion.
    pub life_packets: u64,
}

/// A CHILD SA template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// Name (unique across the file, so rules can name it).
    pub name: String,
    /// Our side.
    pub local_ts: Vec<TsSpec>,
    /// The peer's side.
    pub remote_ts: Vec<TsSpec>,
    /// ESP proposals in order of preference.
    pub esp_proposals: Vec<EspProposal>,
    /// Lifetimes.
    pub lifetime: ChildLifetime,
    /// What to do at load time.
    pub start_action: StartAction,
    /// What to do when the peer closes the SA.
    pub close_action: StartAction,
    /// What to do when DPD declares the peer dead.
    pub dpd_action: DpdAction,
    /// Anti-replay window in packets.
    pub replay_window: u32,
    /// Outer DSCP.
    pub dscp: OuterDscp,
    /// Inner MTU (overrides the connection's).
    pub mtu: Option<u16>,
    /// Pin this child's traffic to one gateway (index into the
    /// connection's gateways) instead of hashing across all.
    pub gateway: Option<usize>,
}

/// An IKE connection (swanctl `connections.<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Name (unique).
    pub name: String,
    /// Our outer addresses (empty = any).
    pub local_addrs: Vec<IpAddr>,
    /// Our IKE port.
    pub local_port: u16,
    /// Remote gateways forming the multipath group (empty = any peer may
    /// connect: a responder).
    pub gateways: Vec<Gateway>,
    /// Flow hash used to place flows on gateways.
    pub hash: FlowHashMode,
    /// IKE proposals.
    pub proposals: Vec<IkeProposal>,
    /// IKE SA rekey interval in seconds (0 = never).
    pub rekey_time: u64,
    /// Random jitter subtracted from `rekey_time`.
    pub rand_time: u64,
    /// DPD interval (0 = off).
    pub dpd_delay: u64,
    /// DPD timeout.
    pub dpd_timeout: u64,
    /// NAT keepalive interval (0 = off).
    pub keepalive: u64,
    /// Virtual IPs to request (`0.0.0.0` / `::` = any).
    pub vips: Vec<IpAddr>,
    /// Pools (by name) to hand addresses out of, as a responder.
    pub pools: Vec<String>,
    /// Inner MTU.
    pub mtu: Option<u16>,
    /// Our authentication.
    pub local: LocalAuth,
    /// The peer's authentication.
    pub remote: RemoteAuth,
    /// CHILD SA templates.
    pub children: Vec<Child>,
    /// Per-user/per-group profiles; if empty, any peer matching `remote.id`
    /// may have every child.
    pub authorizer: Authorizer,
}

/// SA direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We receive with it.
    In,
    /// We send with it.
    Out,
}

/// Where a static SA's key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum StaticKey {
    /// In the file (needs `allow_inline_secrets`), already checked.
    Inline(KeyMaterial),
    /// A file holding the key as hex.
    File(PathBuf),
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaticKey::Inline(_) => f.write_str("<redacted>"),
            StaticKey::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// Decodes hex key text (`0x` prefix, spaces and colons allowed).
pub fn decode_hex_key(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let digits: Zeroizing<Vec<u8>> =
        Zeroizing::new(t.bytes().filter(|c| !matches!(c, b' ' | b':' | b'\n' | b'\r' | b'\t')).collect());
    if digits.len() % 2 != 0 {
        return Err("key has an odd number of hex digits".into());
    }
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
    for pair in digits.chunks_exact(2) {
        match (val(pair[0]), val(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return Err("key is not hex".into()),
        }
    }
    Ok(out)
}

impl StaticKey {
    /// The key material; reads and checks the file for [`StaticKey::File`].
    pub fn keymat(&self, alg: AeadAlg) -> Result<KeyMaterial, String> {
        match self {
            StaticKey::Inline(k) => Ok(k.clone()),
            StaticKey::File(p) => {
                let text = Zeroizing::new(
                    std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
                );
                let bytes = decode_hex_key(&text)?;
                KeyMaterial::new(alg, &bytes).map_err(|_| {
                    format!("{}: {alg} needs {} key bytes (key + 4-byte salt)", p.display(), alg.keymat_len())
                })
            }
        }
    }
}

/// A manually keyed SA, like `ip xfrm state add`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticSa {
    /// Name (unique; rules may name outbound ones).
    pub name: String,
    /// Direction.
    pub direction: Direction,
    /// SPI (>= 256).
    pub spi: u32,
    /// AEAD transform.
    pub alg: AeadAlg,
    /// Key source.
    pub key: StaticKey,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Our outer address.
    pub local: IpAddr,
    /// Peer's outer address.
    pub remote: IpAddr,
    /// `Some((local_port, remote_port))` for ESP-in-UDP.
    pub encap: Option<(u16, u16)>,
    /// Our side's selectors.
    pub local_ts: Vec<TrafficSelector>,
    /// Peer side's selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Anti-replay window (inbound).
    pub replay_window: u32,
    /// Outer DSCP (outbound).
    pub dscp: OuterDscp,
    /// Outbound only: this SA keys one gateway of a connection's child
    /// (manual keying of a multipath child) instead of being a policy
    /// target of its own.
    pub via: Option<StaticVia>,
    /// Outbound ESP-in-UDP only: send a NAT keepalive to the peer every
    /// this many seconds (0 = off).
    pub keepalive: u64,
}

/// The child and gateway a keyed-by-hand outbound SA serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticVia {
    /// Connection index.
    pub conn: usize,
    /// Child index within the connection.
    pub child: usize,
    /// Gateway index within the connection.
    pub gateway: usize,
}

/// Where a `protect` rule sends packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A CHILD SA template: (connection index, child index).
    Child(usize, usize),
    /// An outbound static SA (index into `static_sas`).
    StaticSa(usize),
}

/// A rule's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// Through the tunnel.
    Protect(Target),
    /// In clear.
    Bypass,
    /// Dropped.
    Drop,
}

/// An explicit `[[rules]]` entry (selectors are address ranges only; the
/// protocol and ports are separate fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// Name (defaults to `#N`, N counting rules from 1).
    pub name: String,
    /// 1-based line of the rule in the file, for messages.
    pub line: usize,
    /// Action.
    pub action: RuleAction,
    /// Source ranges (any of them matches).
    pub src: Vec<TrafficSelector>,
    /// Destination ranges.
    pub dst: Vec<TrafficSelector>,
    /// Protocol, `None` = any.
    pub proto: Option<u8>,
    /// Source ports (inclusive).
    pub src_ports: (u16, u16),
    /// Destination ports (inclusive).
    pub dst_ports: (u16, u16),
    /// Bit `d` set = DSCP `d` matches; `None` = any DSCP.
    pub dscp: Option<u64>,
}

/// Which I/O backend the workers use (`[interface] io`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoChoice {
    /// io_uring when the kernel allows it, else syscalls.
    #[default]
    Auto,
    /// io_uring only.
    Uring,
    /// recvmmsg/sendmmsg and read/write only.
    Syscall,
}

/// Which CPUs the workers are pinned to (`[interface] cpus`, `--cpus`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cpus {
    /// Worker `i` on the `i`-th CPU of esptun's affinity mask (wrapping).
    #[default]
    Auto,
    /// No pinning: the scheduler places the workers.
    Unpinned,
    /// Worker `i` on CPU `list[i % list.len()]`; with `workers = 0`, one
    /// worker per listed CPU.
    List(Vec<usize>),
}

/// Highest CPU number accepted in a list (the kernel's CPU_SETSIZE - 1).
pub const MAX_CPU: usize = 1023;

impl std::str::FromStr for Cpus {
    type Err = String;
    /// `auto`, `none`, or CPU numbers and ranges as taskset writes them
    /// (`0-3,6`).
    fn from_str(s: &str) -> Result<Cpus, String> {
        match s.trim() {
            "auto" => return Ok(Cpus::Auto),
            "none" => return Ok(Cpus::Unpinned),
            _ => {}
        }
        let mut list = Vec::new();
        for part in s.split(',').map(str::trim) {
            let num = |t: &str| -> Result<usize, String> {
                t.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n <= MAX_CPU)
                    .ok_or_else(|| format!("`{t}` is not a CPU number (0..={MAX_CPU})"))
            };
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            if lo > hi {
                return Err(format!("CPU range `{part}` is inverted"));
            }
            list.extend(lo..=hi);
        }
        Cpus::list(list)
    }
}

impl Cpus {
    /// A validated list: non-empty, each CPU at most once.
    pub fn list(list: Vec<usize>) -> Result<Cpus, String> {
        if list.is_empty() {
            return Err("the CPU list is empty".into());
        }
        if let Some(d) = list.iter().enumerate().find(|(i, c)| list[..*i].contains(c)).map(|(_, c)| c) {
            return Err(format!("CPU {d} is listed twice"));
        }
        if let Some(c) = list.iter().find(|&&c| c > MAX_CPU) {
            return Err(format!("CPU {c} is beyond {MAX_CPU}"));
        }
        Ok(Cpus::List(list))
    }

    /// The CPU for worker `i`, given the CPUs esptun may run on (its
    /// affinity mask); an error names a listed CPU outside that mask.
    pub fn for_worker(&self, i: usize, allowed: &[usize]) -> Result<Option<usize>, String> {
        match self {
            Cpus::Unpinned => Ok(None),
            Cpus::Auto => Ok(if allowed.is_empty() { None } else { Some(allowed[i % allowed.len()]) }),
            Cpus::List(l) => {
                let c = l[i % l.len()];
                if allowed.contains(&c) {
                    Ok(Some(c))
                } else {
                    Err(format!("cpus: CPU {c} is not one esptun may run on (allowed: {allowed:?})"))
                }
            }
        }
    }
}

impl std::fmt::Display for Cpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cpus::Auto => f.write_str("auto"),
            Cpus::Unpinned => f.write_str("none"),
            Cpus::List(l) => {
                let s: Vec<String> = l.iter().map(ToString::to_string).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// The TUN device and workers (`[interface]`), for `esptun run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// TUN device name (at most 15 bytes).
    pub name: String,
    /// Addresses (with prefix length) put on the device.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Device MTU; `None` = the path MTU minus the largest ESP overhead.
    pub mtu: Option<u16>,
    /// MTU of the outer path.
    pub path_mtu: u16,
    /// Routes into the device; `None` = every destination the policy
    /// protects.
    pub routes: Option<Vec<(IpAddr, u8)>>,
    /// Worker threads; 0 = one per core (one per listed CPU with a list).
    pub workers: usize,
    /// CPU pinning of the workers.
    pub cpus: Cpus,
    /// I/O backend.
    pub io: IoChoice,
    /// Use TUN/UDP offloads (TSO, GSO, GRO) where the kernel has them.
    pub offloads: bool,
    /// Serve Prometheus metrics over HTTP on this address (`None`: off).
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for Interface {
    fn default() -> Self {
        Interface {
            name: "esptun0".into(),
            addresses: Vec::new(),
            mtu: None,
            path_mtu: 1500,
            routes: None,
            workers: 0,
            cpus: Cpus::Auto,
            io: IoChoice::Auto,
            offloads: true,
            metrics: None,
        }
    }
}

/// A whole validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// File name used in messages.
    pub source: String,
    /// `[settings]`.
    pub settings: Settings,
    /// `[[pools]]`.
    pub pools: Vec<Pool>,
    /// `[[connections]]`.
    pub connections: Vec<Connection>,
    /// `[[static_sas]]`.
    pub static_sas: Vec<StaticSa>,
    /// `[[rules]]`, in order.
    pub rules: Vec<PolicyRule>,
    /// `[interface]` (defaults when absent).
    pub interface: Interface,
}
