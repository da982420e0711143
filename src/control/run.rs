//! `esptun run -c FILE`: bring a tunnel up from a configuration with static
//! SAs, run the workers until SIGINT/SIGTERM, print the counters.
//!
//! Bring-up, in order: validate the file and compile the policy; build the
//! SAs (keys read from their files now); bind the UDP group (one socket per
//! worker, SO_REUSEPORT) on the SAs' local address and port and attach the
//! SPI steering program, so the worker `SPI mod N` receives each inbound
//! SA's packets; open the multi-queue TUN device (one queue per worker)
//! with its addresses and MTU; add the routes; start one pinned worker per
//! queue, each with its own engine that already holds its SAs.
//!
//! IKE connections are validated but not negotiated yet: only
//! `[[static_sas]]` carry traffic.

use super::routes;
use crate::dataplane::backend::{AnyIo, BackendChoice, BackendKind};
use crate::dataplane::tun::{TunConfig, TunDevice};
use crate::dataplane::udp::{UdpConfig, UdpGroup, attach_spi_steering};
use crate::dataplane::worker::{Worker, WorkerConfig, WorkerStats};
use crate::engine::{Engine, EngineConfig, Update};
use crate::esp::{DscpMode, InboundSa, OutboundSa, OuterPath, SaConfig};
use crate::policy::compile::{CompiledPolicy, compile};
use crate::policy::config::{Config, Direction, Interface, IoChoice, OuterDscp, StaticSa, Target};
use crate::policy::multipath::{GatewayGroup, GatewaySpec, gateway_id};
use crate::policy::spd::ChildId;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Command-line overrides of the `[interface]` section.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The configuration file.
    pub config: PathBuf,
    /// I/O backend (overrides `io`).
    pub io: Option<IoChoice>,
    /// Worker count (overrides `workers`).
    pub workers: Option<usize>,
    /// Turn offloads off (overrides `offloads`).
    pub no_offloads: bool,
    /// Print the counters this often (none: only at exit).
    pub stats_every: Option<Duration>,
    /// Stop after this long (tests, benchmarks); none: until a signal.
    pub duration: Option<Duration>,
}

/// Set by the signal handler.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Runs the tunnel; returns the final counters of all workers, or an error
/// message for the operator.
pub fn run(opts: &RunOptions) -> Result<WorkerStats, String> {
    let cfg = Config::load(&opts.config).map_err(|errs| {
        let mut s = String::new();
        for e in errs.iter() {
            s.push_str(&format!("{e}\n"));
        }
        s.push_str(&format!("{}: {} error(s)", opts.config.display(), errs.len()));
        s
    })?;
    if cfg.static_sas.is_empty() {
        return Err(format!(
            "{}: `esptun run` needs [[static_sas]] for now (IKE connections are not negotiated yet)",
            opts.config.display()
        ));
    }
    let mut iface = cfg.interface.clone();
    if let Some(io) = opts.io {
        iface.io = io;
    }
    if let Some(w) = opts.workers {
        iface.workers = w;
    }
    if opts.no_offloads {
        iface.offloads = false;
    }
    let plan = Plan::build(&cfg, &iface)?;
    let kind = match iface.io {
        IoChoice::Auto => BackendChoice::Auto.resolve(),
        IoChoice::Uring => {
            crate::dataplane::backend::uring_usable()
                .map_err(|e| format!("io = \"uring\": io_uring unusable: {e}"))?;
            BackendKind::Uring
        }
        IoChoice::Syscall => BackendKind::Syscall,
    };
    let n = plan.workers;

    // UDP: one socket per worker, steered by SPI.
    let mut ucfg = UdpConfig::new(plan.local, n);
    ucfg.gso = false;
    ucfg.gro = false;
    let group = UdpGroup::bind(&ucfg).map_err(|e| format!("cannot bind UDP {}: {e}", plan.local))?;
    if n > 1 {
        attach_spi_steering(group.sockets(), n as u32, 0).map_err(|e| format!("SPI steering: {e}"))?;
    }

    // TUN: one queue per worker.
    let mut tcfg = TunConfig::new(&iface.name);
    tcfg.queues = n;
    tcfg.mtu = plan.mtu;
    tcfg.addrs = iface.addresses.clone();
    tcfg.vnet_hdr = false;
    (tcfg.tso4, tcfg.tso6, tcfg.uso) = (false, false, false);
    let tun = TunDevice::open(&tcfg).map_err(|e| format!("cannot open TUN device {}: {e}", iface.name))?;
    let dev = tun.name().to_string();
    routes::install(&dev, &plan.routes)?;

    eprintln!(
        "esptun: {dev} up (mtu {}), {} worker(s), {kind:?} I/O, UDP {}, {} outbound / {} inbound SA(s)",
        plan.mtu,
        n,
        group.local_addr(),
        plan.outbound.len(),
        plan.inbound.len()
    );

    // SAFETY: `on_signal` only stores to an atomic, which is
    // async-signal-safe; the handler stays valid for the whole program.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    let mut stats = Vec::new();
    let mut senders = Vec::new();
    for (i, (sock, queue)) in group.into_sockets().into_iter().zip(tun.into_queues()).enumerate() {
        let io = AnyIo::open(kind, Some(sock), Some(queue))
            .map_err(|e| format!("worker {i}: {kind:?} I/O: {e}"))?;
        let engine = plan.engine(i)?;
        let (tx, rx) = crossbeam_channel::bounded::<Update>(64);
        let st = Arc::new(Mutex::new(WorkerStats::default()));
        let wcfg = WorkerConfig { index: i, batch: 64, core: cores.get(i % cores.len().max(1)).copied() };
        let w = Worker::new(wcfg, io, engine, rx, None, stop.clone(), st.clone());
        let h = std::thread::Builder::new()
            .name(format!("esptun-w{i}"))
            .spawn(move || w.run())
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        handles.push(h);
        stats.push(st);
        senders.push(tx);
    }

    let start = Instant::now();
    let mut last = Instant::now();
    while !STOP.load(Ordering::Relaxed) && !handles.iter().any(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if let Some(every) = opts.stats_every
            && last.elapsed() >= every
        {
            eprintln!("{}", summary(&aggregate(&stats)));
            last = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(senders);
    let mut total = WorkerStats::default();
    let mut err = None;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(s)) => total.merge(&s),
            Ok(Err(e)) => err = Some(format!("worker {i}: I/O error: {e}")),
            Err(_) => err = Some(format!("worker {i} panicked")),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// What the configuration asks for, resolved before anything is opened.
struct Plan {
    workers: usize,
    local: SocketAddr,
    mtu: u16,
    path_mtu: u16,
    routes: Vec<(IpAddr, u8)>,
    policy: CompiledPolicy,
    /// Outbound SAs by child id.
    outbound: Vec<(ChildId, Arc<OutboundSa>)>,
    /// Inbound SA configs (each engine builds its own SA from them).
    inbound: Vec<SaConfig>,
}

impl Plan {
    fn build(cfg: &Config, iface: &Interface) -> Result<Plan, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = if iface.workers == 0 { cores } else { iface.workers };
        let policy = compile(cfg);
        let mut outbound = Vec::new();
        let mut inbound = Vec::new();
        let mut local: Option<SocketAddr> = None;
        for (i, s) in cfg.static_sas.iter().enumerate() {
            let Some((lport, _)) = s.encap else {
                return Err(format!(
                    "static SA \"{}\": encap = false (IP protocol 50) is not supported by `esptun run`; use ESP-in-UDP",
                    s.name
                ));
            };
            let addr = SocketAddr::new(s.local, lport);
            match local {
                None => local = Some(addr),
                Some(l) if l == addr => {}
                Some(l) => {
                    return Err(format!(
                        "static SA \"{}\" uses local {addr}, another uses {l}: all static SAs must share one local address and port",
                        s.name
                    ));
                }
            }
            let sa = sa_config(cfg, s)?;
            match s.direction {
                Direction::Out => {
                    let id = policy
                        .targets
                        .iter()
                        .position(|t| *t == Target::StaticSa(i))
                        .ok_or_else(|| format!("static SA \"{}\" has no policy target", s.name))?;
                    let out = OutboundSa::new(sa).map_err(|e| format!("static SA \"{}\": {e}", s.name))?;
                    outbound.push((id as ChildId, Arc::new(out)));
                }
                Direction::In => {
                    InboundSa::new(sa.clone()).map_err(|e| format!("static SA \"{}\": {e}", s.name))?;
                    inbound.push(sa);
                }
            }
        }
        let local = local.ok_or("no static SA")?;
        let path_mtu = iface.path_mtu;
        let inner_max =
            outbound.iter().map(|(_, sa)| sa.max_inner_len(path_mtu.into())).min().unwrap_or(1400);
        let mtu = iface.mtu.unwrap_or(inner_max.min(usize::from(u16::MAX)) as u16);
        let routes = match &iface.routes {
            Some(r) => r.clone(),
            None => policy.tunnel_destinations().iter().flat_map(routes::range_to_prefixes).collect(),
        };
        Ok(Plan { workers, local, mtu, path_mtu, routes, policy, outbound, inbound })
    }

    /// The engine of worker `i`: the whole policy, every outbound SA (one
    /// gateway per static SA), and the inbound SAs steered to it.
    fn engine(&self, i: usize) -> Result<Engine, String> {
        let spd = Arc::new(self.policy.to_spd().map_err(|e| format!("policy: {e}"))?);
        let ecfg = EngineConfig { path_mtu: self.path_mtu.into(), ..EngineConfig::default() };
        let mut e = Engine::new(ecfg, spd);
        for (id, sa) in &self.outbound {
            let remote = sa.config().path.remote;
            let gw = GatewaySpec { id: gateway_id(remote.to_string().as_bytes()), weight: 1 };
            let group = Arc::new(GatewayGroup::new(&[gw]).map_err(|e| format!("gateway group: {e}"))?);
            e.apply(Update::Child { id: *id, group, symmetric: false });
            e.apply(Update::Outbound { child: *id, gateway: 0, sa: Some(sa.clone()) });
        }
        for sa in self.inbound.iter().filter(|s| s.spi as usize % self.workers == i) {
            let inb = InboundSa::new(sa.clone()).map_err(|e| format!("inbound SA {:#x}: {e}", sa.spi))?;
            e.apply(Update::Inbound(Box::new(inb)));
        }
        Ok(e)
    }
}

fn sa_config(cfg: &Config, s: &StaticSa) -> Result<SaConfig, String> {
    let keymat = s.key.keymat(s.alg).map_err(|e| format!("static SA \"{}\": {e}", s.name))?;
    let path = OuterPath { local: s.local, remote: s.remote, encap: s.encap };
    let mut sa = SaConfig::new(s.spi, s.alg, keymat, path);
    sa.backend = cfg.settings.backend;
    sa.esn = s.esn;
    sa.replay_window = s.replay_window;
    sa.local_ts = s.local_ts.clone();
    sa.remote_ts = s.remote_ts.clone();
    sa.dscp = match s.dscp {
        OuterDscp::Copy => DscpMode::Copy,
        OuterDscp::Fixed(d) => DscpMode::Fixed(d),
    };
    Ok(sa)
}

fn aggregate(stats: &[Arc<Mutex<WorkerStats>>]) -> WorkerStats {
    let mut t = WorkerStats::default();
    for s in stats {
        if let Ok(s) = s.lock() {
            t.merge(&s);
        }
    }
    t
}

/// One line of counters for the operator.
pub fn summary(s: &WorkerStats) -> String {
    let e = &s.engine;
    let mut line = format!(
        "tx {} pkts {} B, rx {} pkts {} B, icmp {}, frags {}, keepalives {}, ike {}",
        e.tx_packets, e.tx_bytes, e.rx_packets, e.rx_bytes, e.icmp_errors, e.fragments, e.keepalives, e.ike
    );
    for (r, n) in e.drops.nonzero() {
        line.push_str(&format!(", drop {} {n}", r.label()));
    }
    for (name, n) in s.io.drops() {
        if n > 0 {
            line.push_str(&format!(", io drop {name} {n}"));
        }
    }
    line
}
