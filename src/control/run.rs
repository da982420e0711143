//! `esptun run -c FILE`: bring a tunnel up from a configuration with static
//! SAs, run the workers until SIGINT/SIGTERM, print the counters.
//!
//! Bring-up, in order: validate the file and compile the policy; build the
//! SAs (keys read from their files now); bind the UDP group (one socket per
//! worker and one for the control thread, SO_REUSEPORT) on the SAs' local
//! address and port and attach the SPI steering program, so the worker
//! `SPI mod N` receives each inbound SA's packets and the control thread
//! NAT keepalives and IKE (`super::socket`); open the multi-queue TUN device (one queue per worker)
//! with its addresses and MTU; add the routes; start one pinned worker per
//! queue, each with its own engine that already holds its SAs.
//!
//! IKE connections are validated but not negotiated yet: only
//! `[[static_sas]]` carry traffic.

use super::keepalive::Keepalives;
use super::routes;
use super::socket::ControlSocket;
use crate::dataplane::backend::{AnyIo, BackendKind};
use crate::dataplane::tun::{TunConfig, TunDevice};
use crate::dataplane::udp::{UdpConfig, UdpGroup, attach_spi_steering};
use crate::dataplane::worker::{Worker, WorkerConfig, WorkerStats};
use crate::engine::{Engine, EngineConfig, Update};
use crate::esp::{DscpMode, InboundSa, OutboundSa, OuterPath, SaConfig};
use crate::ops::metrics::{self, Exporter, Registry};
use crate::policy::compile::compile;
use crate::policy::config::{
    Config, Cpus, Direction, FlowHashMode, Interface, IoChoice, OuterDscp, StaticSa, Target,
};
use crate::policy::multipath::{GatewayGroup, GatewayIdx, GatewaySpec, gateway_id};
use crate::policy::spd::{ChildId, Spd};
use crossbeam_channel::Sender;
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
    /// CPU pinning (overrides `cpus`).
    pub cpus: Option<Cpus>,
    /// Turn offloads off (overrides `offloads`).
    pub no_offloads: bool,
    /// Print the counters this often (none: only at exit).
    pub stats_every: Option<Duration>,
    /// Stop after this long (tests, benchmarks); none: until a signal.
    pub duration: Option<Duration>,
    /// Serve Prometheus metrics here (overrides `metrics`).
    pub metrics: Option<SocketAddr>,
}

/// How often the control loop records the totals for the exporter (the
/// workers publish theirs every 100 ms).
const METRICS_EVERY: Duration = Duration::from_millis(250);

/// Set by the signal handler on SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);
/// Set by the signal handler on SIGHUP.
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Ordering::Relaxed);
    } else {
        STOP.store(true, Ordering::Relaxed);
    }
}

/// Runs the tunnel; returns the final counters of all workers, or an error
/// message for the operator.
pub fn run(opts: &RunOptions) -> Result<WorkerStats, String> {
    let cfg = load(&opts.config)?;
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
    if let Some(c) = &opts.cpus {
        iface.cpus = c.clone();
    }
    if opts.no_offloads {
        iface.offloads = false;
    }
    if opts.metrics.is_some() {
        iface.metrics = opts.metrics;
    }
    let mut plan = Plan::build(&cfg, &iface, None)?;
    let kind = match iface.io {
        IoChoice::Auto => match crate::dataplane::backend::uring_usable() {
            Ok(()) => BackendKind::Uring,
            Err(e) => {
                eprintln!("esptun: io_uring unusable here ({e}): using the syscall backend");
                BackendKind::Syscall
            }
        },
        IoChoice::Uring => {
            crate::dataplane::backend::uring_usable()
                .map_err(|e| format!("io = \"uring\": io_uring unusable: {e}"))?;
            BackendKind::Uring
        }
        IoChoice::Syscall => BackendKind::Syscall,
    };
    let n = plan.workers;
    // The CPUs esptun may run on (its affinity mask, e.g. a container's
    // cpuset), and each worker's pin (checked before anything is set up).
    let allowed: Vec<usize> =
        core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let pins = (0..n).map(|i| iface.cpus.for_worker(i, &allowed)).collect::<Result<Vec<_>, _>>()?;
    let pinned = if pins.iter().all(Option::is_none) {
        "unpinned".to_string()
    } else {
        let p: Vec<String> = pins.iter().map(|c| c.map_or("-".into(), |c| c.to_string())).collect();
        format!("on CPUs {}", p.join(","))
    };

    // UDP: one socket per worker, steered by SPI, and the control
    // thread's socket last (keepalives, IKE).
    let mut ucfg = UdpConfig::new(plan.local, n + 1);
    ucfg.gso = iface.offloads;
    ucfg.gro = iface.offloads;
    let group = UdpGroup::bind(&ucfg).map_err(|e| format!("cannot bind UDP {}: {e}", plan.local))?;
    let udp_features = group.features();
    attach_spi_steering(group.sockets(), n as u32, n as u32).map_err(|e| format!("SPI steering: {e}"))?;
    let mut sockets = group.into_sockets();
    let control_sock = sockets.pop().ok_or("UDP group without a control socket")?;
    let mut control =
        ControlSocket::new(control_sock).map_err(|e| format!("control socket on {}: {e}", plan.local))?;

    // TUN: one queue per worker.
    let mut tcfg = TunConfig::new(&iface.name);
    tcfg.queues = n;
    tcfg.mtu = plan.mtu;
    tcfg.addrs = iface.addresses.clone();
    // TSO4/TSO6 and USO super-packets from the kernel are split before
    // sealing (USO where the kernel has it, Linux 6.2+).
    tcfg.vnet_hdr = iface.offloads;
    (tcfg.tso4, tcfg.tso6, tcfg.uso) = (iface.offloads, iface.offloads, iface.offloads);
    let tun = TunDevice::open(&tcfg).map_err(|e| format!("cannot open TUN device {}: {e}", iface.name))?;
    let offloads = tun.offloads();
    let dev = tun.name().to_string();
    routes::install(&dev, &plan.routes)?;

    for c in &cfg.connections {
        for ch in c.children.iter().filter(|ch| {
            !plan.outbound.iter().any(|o| {
                o.src.via.is_some_and(|v| {
                    cfg.connections[v.conn].name == c.name && c.children[v.child].name == ch.name
                })
            })
        }) {
            eprintln!(
                "esptun: child {}/{} has no static SA and IKE is not negotiated yet: its traffic is dropped",
                c.name, ch.name
            );
        }
    }

    // SAFETY: `on_signal` only stores to an atomic, which is
    // async-signal-safe; the handler stays valid for the whole program.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, on_signal as *const () as libc::sighandler_t);
    }

    // Metrics: the registry is the global `metrics` recorder; the control
    // loop publishes the totals into it, the exporter thread serves them.
    let exporter = match iface.metrics {
        None => None,
        Some(addr) => {
            let registry = Arc::new(Registry::new());
            metrics::install(registry.clone())?;
            metrics::describe();
            let ex = Exporter::start(addr, registry)
                .map_err(|e| format!("metrics: cannot listen on {addr}: {e}"))?;
            eprintln!("esptun: metrics on http://{}/metrics", ex.local_addr());
            Some(ex)
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<()>(n);
    let mut handles = Vec::new();
    let mut stats = Vec::new();
    let mut senders = Vec::new();
    for (i, (sock, queue)) in sockets.into_iter().zip(tun.into_queues()).enumerate() {
        let io = AnyIo::open(kind, Some(sock), Some(queue))
            .map_err(|e| format!("worker {i}: {kind:?} I/O: {e}"))?;
        let engine = plan.engine(i)?;
        let (tx, rx) = crossbeam_channel::bounded::<Update>(64);
        let st = Arc::new(Mutex::new(WorkerStats::default()));
        let wcfg = WorkerConfig {
            index: i,
            batch: 64,
            core: pins[i].map(|id| core_affinity::CoreId { id }),
            vnet: offloads.vnet_hdr,
            gso: udp_features.gso,
            gro: udp_features.gro,
        };
        let w = Worker::new(wcfg, io, engine, rx, None, stop.clone(), st.clone());
        let ready = ready_tx.clone();
        let h = std::thread::Builder::new()
            .name(format!("esptun-w{i}"))
            .spawn(move || {
                w.run_then(move || {
                    let _ = ready.send(());
                })
            })
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        handles.push(h);
        stats.push(st);
        senders.push(tx);
    }
    // "up" once every worker is pinned and about to take its first batch
    // (a worker that ends first is reported by the loop below; once all
    // have ended, the channel is closed and the wait ends).
    drop(ready_tx);
    let t0 = Instant::now();
    for _ in 0..n {
        let left = Duration::from_secs(5).saturating_sub(t0.elapsed());
        if ready_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    eprintln!(
        "esptun: {dev} up (mtu {}), {} worker(s) {pinned}, {kind:?} I/O, UDP {}, {} outbound / {} inbound SA(s), offloads: tso {} uso {} gso {} gro {}",
        plan.mtu,
        n,
        plan.local,
        plan.outbound.len(),
        plan.inbound.len(),
        offloads.tso4,
        offloads.uso,
        udp_features.gso,
        udp_features.gro
    );

    let start = Instant::now();
    let mut last = Instant::now();
    let mut last_publish = Instant::now();
    let mut keepalives = Keepalives::new(&plan.keepalives, start);
    if !keepalives.is_empty() {
        eprintln!("esptun: NAT keepalives to {}", keepalives.describe());
    }
    let mut due = Vec::new();
    while !STOP.load(Ordering::Relaxed) && !handles.iter().any(|h| h.is_finished()) {
        // The control socket's datagrams, or 50 ms of quiet.
        if let Err(e) = control.serve(Duration::from_millis(50)) {
            eprintln!("esptun: control socket: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
        due.clear();
        keepalives.due(Instant::now(), &mut due);
        for &to in &due {
            if let Err(e) = control.send_keepalive(to) {
                eprintln!("esptun: NAT keepalive to {to}: {e}");
            }
        }
        if opts.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if RELOAD.swap(false, Ordering::Relaxed) {
            match reload(opts, &iface, &plan, &senders) {
                Ok(p) => {
                    keepalives.update(&p.keepalives, Instant::now());
                    plan = p;
                }
                Err(e) => eprintln!("esptun: reload refused, running configuration kept:\n{e}"),
            }
        }
        if let Some(every) = opts.stats_every
            && last.elapsed() >= every
        {
            eprintln!("{}", summary(&aggregate(&stats, control.counters())));
            last = Instant::now();
        }
        if exporter.is_some() && last_publish.elapsed() >= METRICS_EVERY {
            metrics::publish(&aggregate(&stats, control.counters()), n);
            last_publish = Instant::now();
        }
    }
    drop(exporter);
    stop.store(true, Ordering::Relaxed);
    drop(senders);
    let mut total = WorkerStats::default();
    total.engine.merge(control.counters());
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

/// One outbound SA and where the engines put it.
struct OutPlan {
    child: ChildId,
    gateway: GatewayIdx,
    sa: Arc<OutboundSa>,
    /// The configuration entry it came from (reloads keep unchanged SAs,
    /// and with them their sequence counters).
    src: StaticSa,
}

/// A protect target's gateway group.
struct GroupPlan {
    child: ChildId,
    group: Arc<GatewayGroup>,
    symmetric: bool,
}

/// What the configuration asks for, resolved before anything is opened.
struct Plan {
    workers: usize,
    local: SocketAddr,
    mtu: u16,
    path_mtu: u16,
    routes: Vec<(IpAddr, u8)>,
    /// The compiled SPD, shared by every engine.
    spd: Arc<Spd>,
    groups: Vec<GroupPlan>,
    outbound: Vec<OutPlan>,
    /// Inbound SA configs with their entries (each engine builds its own
    /// SA from them).
    inbound: Vec<(SaConfig, StaticSa)>,
    /// NAT keepalive targets: (peer, interval) of outbound ESP-in-UDP SAs
    /// with `keepalive`.
    keepalives: Vec<(SocketAddr, Duration)>,
}

impl Plan {
    /// Resolves `cfg`. With `prev` (a reload), outbound SAs whose entry is
    /// unchanged are kept as they are, and a changed SA with a known SPI
    /// continues its predecessor's sequence numbers, so no nonce is reused.
    fn build(cfg: &Config, iface: &Interface, prev: Option<&Plan>) -> Result<Plan, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = match (&iface.cpus, iface.workers) {
            (Cpus::List(l), 0) => l.len(),
            (_, 0) => cores,
            (_, w) => w,
        };
        let policy = compile(cfg);
        let target_id = |t: Target| policy.targets.iter().position(|x| *x == t).map(|i| i as ChildId);
        let mut groups = Vec::new();
        for (id, t) in policy.targets.iter().enumerate() {
            let (specs, symmetric) = match *t {
                Target::Child(ci, k) => {
                    let conn = &cfg.connections[ci];
                    // A child pinned to one gateway has a group of one.
                    let specs: Vec<GatewaySpec> = conn
                        .gateways
                        .iter()
                        .enumerate()
                        .filter(|(g, _)| conn.children[k].gateway.is_none_or(|p| p == *g))
                        .map(|(_, g)| GatewaySpec { id: gw_id(g.address), weight: g.weight })
                        .collect();
                    (specs, conn.hash == FlowHashMode::Symmetric)
                }
                Target::StaticSa(i) => {
                    (vec![GatewaySpec { id: gw_id(cfg.static_sas[i].remote), weight: 1 }], false)
                }
            };
            if specs.is_empty() {
                continue;
            }
            let group = GatewayGroup::new(&specs).map_err(|e| format!("gateway group: {e}"))?;
            groups.push(GroupPlan { child: id as ChildId, group: Arc::new(group), symmetric });
        }
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
            match s.direction {
                Direction::Out => {
                    let (child, gateway) = match s.via {
                        Some(v) => {
                            // Index within the child's group (a pinned child has only its gateway).
                            let gw = match cfg.connections[v.conn].children[v.child].gateway {
                                None => v.gateway,
                                Some(p) if p == v.gateway => 0,
                                Some(_) => {
                                    return Err(format!(
                                        "static SA \"{}\": its child is pinned to another gateway",
                                        s.name
                                    ));
                                }
                            };
                            (target_id(Target::Child(v.conn, v.child)), gw)
                        }
                        None => (target_id(Target::StaticSa(i)), 0),
                    };
                    let child =
                        child.ok_or_else(|| format!("static SA \"{}\" has no policy target", s.name))?;
                    let old = prev.and_then(|p| {
                        p.outbound.iter().find(|o| o.src.spi == s.spi && o.src.remote == s.remote)
                    });
                    let sa = match old {
                        Some(o) if o.src == *s => o.sa.clone(),
                        _ => {
                            let sa = OutboundSa::new(sa_config(cfg, s)?)
                                .map_err(|e| format!("static SA \"{}\": {e}", s.name))?;
                            if let Some(o) = old {
                                sa.set_next_seq(o.sa.next_seq());
                            }
                            Arc::new(sa)
                        }
                    };
                    outbound.push(OutPlan { child, gateway, sa, src: s.clone() });
                }
                Direction::In => {
                    let sa = sa_config(cfg, s)?;
                    InboundSa::new(sa.clone()).map_err(|e| format!("static SA \"{}\": {e}", s.name))?;
                    inbound.push((sa, s.clone()));
                }
            }
        }
        // Gateways with no outbound SA cannot carry flows: mark them down.
        for g in &groups {
            for idx in 0..g.group.len() {
                let keyed = outbound.iter().any(|o| o.child == g.child && o.gateway == idx);
                g.group.set_up(idx, keyed);
            }
        }
        let local = local.ok_or("no static SA")?;
        let path_mtu = iface.path_mtu;
        let inner_max = outbound.iter().map(|o| o.sa.max_inner_len(path_mtu.into())).min().unwrap_or(1400);
        let mtu = iface.mtu.unwrap_or(inner_max.min(usize::from(u16::MAX)) as u16);
        let routes = match &iface.routes {
            Some(r) => r.clone(),
            None => policy.tunnel_destinations().iter().flat_map(routes::range_to_prefixes).collect(),
        };
        let spd = Arc::new(policy.to_spd().map_err(|e| format!("policy: {e}"))?);
        let keepalives = cfg
            .static_sas
            .iter()
            .filter(|s| s.direction == Direction::Out && s.keepalive > 0)
            .filter_map(|s| {
                s.encap.map(|(_, rp)| (SocketAddr::new(s.remote, rp), Duration::from_secs(s.keepalive)))
            })
            .collect();
        Ok(Plan { workers, local, mtu, path_mtu, routes, spd, groups, outbound, inbound, keepalives })
    }

    /// Whether worker `i` owns inbound SPI `spi` (the steering program
    /// sends `SPI mod N` to socket N).
    fn owns(&self, i: usize, spi: u32) -> bool {
        spi as usize % self.workers == i
    }

    /// The updates that take worker `i` from `prev` (or from nothing) to
    /// this plan, in make-before-break order: new inbound SAs, children and
    /// outbound SAs, the policy, then removals.
    fn updates(&self, i: usize, prev: Option<&Plan>) -> Result<Vec<Update>, String> {
        let mut u = Vec::new();
        for (cfg, src) in self.inbound.iter().filter(|(c, _)| self.owns(i, c.spi)) {
            let same = prev.is_some_and(|p| p.inbound.iter().any(|(_, s)| s == src));
            if !same {
                let sa =
                    InboundSa::new(cfg.clone()).map_err(|e| format!("inbound SA {:#x}: {e}", cfg.spi))?;
                u.push(Update::Inbound(Box::new(sa)));
            }
        }
        for g in &self.groups {
            u.push(Update::Child { id: g.child, group: g.group.clone(), symmetric: g.symmetric });
            for idx in 0..g.group.len() {
                let sa = self
                    .outbound
                    .iter()
                    .find(|o| o.child == g.child && o.gateway == idx)
                    .map(|o| o.sa.clone());
                u.push(Update::Outbound { child: g.child, gateway: idx, sa });
            }
        }
        u.push(Update::Policy(self.spd.clone()));
        if let Some(p) = prev {
            for g in p.groups.iter().filter(|g| !self.groups.iter().any(|n| n.child == g.child)) {
                u.push(Update::RemoveChild(g.child));
            }
            for (c, _) in p.inbound.iter().filter(|(c, _)| p.owns(i, c.spi)) {
                if !self.inbound.iter().any(|(n, _)| n.spi == c.spi) {
                    u.push(Update::RemoveInbound(c.spi));
                }
            }
        }
        Ok(u)
    }

    /// The engine of worker `i`, already holding its SAs.
    fn engine(&self, i: usize) -> Result<Engine, String> {
        let ecfg = EngineConfig { path_mtu: self.path_mtu.into(), ..EngineConfig::default() };
        let mut e = Engine::new(ecfg, self.spd.clone());
        e.apply(Update::Many(self.updates(i, None)?));
        Ok(e)
    }
}

/// A gateway's identity in the flow hash: its address, so every worker
/// and every restart places flows alike.
fn gw_id(addr: IpAddr) -> u64 {
    gateway_id(addr.to_string().as_bytes())
}

/// SIGHUP: re-reads the file; when it is valid, sends every worker the
/// updates to the new plan (each applies them between two batches) and
/// returns it. `[interface]` changes need a restart and are reported.
fn reload(
    opts: &RunOptions,
    iface: &Interface,
    cur: &Plan,
    senders: &[Sender<Update>],
) -> Result<Plan, String> {
    let cfg = load(&opts.config)?;
    let mut new_iface = cfg.interface.clone();
    // Command-line overrides stay in force.
    (new_iface.io, new_iface.workers, new_iface.offloads) = (iface.io, iface.workers, iface.offloads);
    if opts.metrics.is_some() {
        new_iface.metrics = iface.metrics;
    }
    if opts.cpus.is_some() {
        new_iface.cpus = iface.cpus.clone();
    }
    // Routes follow the file; the rest of [interface] needs a restart.
    let eff = Interface { routes: new_iface.routes.clone(), ..iface.clone() };
    if new_iface != eff {
        eprintln!("esptun: [interface] changes other than routes take effect at the next start only");
    }
    let plan = Plan::build(&cfg, &eff, Some(cur))?;
    if plan.local != cur.local {
        return Err(format!(
            "local address changed from {} to {}: restart esptun for that",
            cur.local, plan.local
        ));
    }
    let mut all = Vec::with_capacity(senders.len());
    for i in 0..senders.len() {
        all.push(plan.updates(i, Some(cur))?);
    }
    for (tx, u) in senders.iter().zip(all) {
        tx.send(Update::Many(u)).map_err(|_| "a worker has stopped".to_string())?;
    }
    routes::install(&iface.name, &plan.routes)?;
    routes::remove(&iface.name, &routes::gone(&cur.routes, &plan.routes))?;
    eprintln!(
        "esptun: reloaded {} ({} outbound / {} inbound SA(s))",
        opts.config.display(),
        plan.outbound.len(),
        plan.inbound.len()
    );
    Ok(plan)
}

/// Reads and validates the configuration, errors joined for the operator.
fn load(path: &std::path::Path) -> Result<Config, String> {
    Config::load(path).map_err(|errs| {
        let mut s = String::new();
        for e in errs.iter() {
            s.push_str(&format!("{e}\n"));
        }
        s.push_str(&format!("{}: {} error(s)", path.display(), errs.len()));
        s
    })
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

/// The workers' counters and the control socket's, added up.
fn aggregate(stats: &[Arc<Mutex<WorkerStats>>], control: &crate::engine::Counters) -> WorkerStats {
    let mut t = WorkerStats::default();
    t.engine.merge(control);
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
        "tx {} pkts {} B, rx {} pkts {} B, icmp {}, frags {}, keepalives {}, ike {}, tun super tcp {} udp {}, udp gso {}, tun gro {}",
        e.tx_packets,
        e.tx_bytes,
        e.rx_packets,
        e.rx_bytes,
        e.icmp_errors,
        e.fragments,
        e.keepalives,
        e.ike,
        s.io.tso_packets,
        s.io.uso_packets,
        s.io.gso_sends,
        s.io.gro_writes
    );
    for (r, n) in e.drops.nonzero() {
        line.push_str(&format!(", drop {} {n}", r.label()));
    }
    for (name, n) in s.io.drops() {
        if n > 0 {
            line.push_str(&format!(", io drop {name} {n}"));
        }
    }
    for (spi, _, pkts) in &s.inbound {
        line.push_str(&format!(", sa in {spi:#010x} {pkts} pkts"));
    }
    line
}
