//! Metrics: the counters of `esptun run` through the `metrics` facade, and
//! a small Prometheus text-format exporter over HTTP.
//!
//! Flow: workers keep plain per-thread counters (no atomics on the hot
//! path) and publish copies every 100 ms; the control thread adds them up
//! and, when metrics are on, records the totals with [`publish`]
//! (`metrics::counter!(..).absolute(..)`, so a series only ever moves
//! forward). [`Registry`] is the `metrics::Recorder` that keeps them; it is
//! installed as the process's global recorder, so later control-plane code
//! (IKE) can use the `metrics` macros anywhere. [`Exporter`] serves
//! `GET /metrics` in the Prometheus text exposition format 0.0.4 from its
//! own thread.
//!
//! Why not `metrics-exporter-prometheus`: it brings an async HTTP stack
//! (hyper, tokio) for one plain-text page; this exporter is ~150 lines of
//! std networking that answers one request per connection, with read and
//! write timeouts and a request size limit, and renders from the same
//! facade, so switching to that crate later changes only the installation.
//! Histograms are not kept (nothing records one yet).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use crate::dataplane::backend::{Interest, poll_wait};
use crate::dataplane::worker::WorkerStats;
use crate::esp::DropReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One series: name and sorted labels.
type SeriesKey = (String, Vec<(String, String)>);

#[derive(Default)]
struct Inner {
    series: BTreeMap<SeriesKey, (Kind, Arc<AtomicU64>)>,
    help: BTreeMap<String, String>,
}

/// A `metrics::Recorder` that keeps counters and gauges for [`Registry::render`].
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn handle(&self, kind: Kind, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<(String, String)> =
            key.labels().map(|l| (l.key().to_string(), l.value().to_string())).collect();
        labels.sort();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let e = g.series.entry((sanitize(key.name()), labels)).or_insert_with(|| (kind, Arc::default()));
        e.1.clone()
    }

    fn describe(&self, key: &KeyName, help: &SharedString) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.help.insert(sanitize(key.as_str()), help.to_string());
    }

    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub fn render(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut last: Option<&str> = None;
        for ((name, labels), (kind, v)) in &g.series {
            if last != Some(name.as_str()) {
                if let Some(h) = g.help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {}", h.replace('\\', "\\\\").replace('\n', "\\n"));
                }
                let t = if *kind == Kind::Counter { "counter" } else { "gauge" };
                let _ = writeln!(out, "# TYPE {name} {t}");
                last = Some(name);
            }
            out.push_str(name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(out, "{sep}{}=\"{}\"", sanitize(k), escape(val));
                }
                out.push('}');
            }
            let raw = v.load(Ordering::Relaxed);
            match kind {
                Kind::Counter => {
                    let _ = writeln!(out, " {raw}");
                }
                Kind::Gauge => {
                    let _ = writeln!(out, " {}", f64::from_bits(raw));
                }
            }
        }
        out
    }
}

impl Recorder for Registry {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(&key, &description);
    }
    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(&key, &description);
    }
    fn describe_histogram(&self, _key: KeyName, _unit: Option<Unit>, _description: SharedString) {}
    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(Kind::Counter, key))
    }
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(Kind::Gauge, key))
    }
    fn register_histogram(&self, _key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Lets an `Arc<Registry>` be the global recorder while the exporter
/// renders from the same registry.
struct Shared(Arc<Registry>);

impl Recorder for Shared {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
}

/// Installs `registry` as the process's global `metrics` recorder (once
/// per process; a second call fails).
pub fn install(registry: Arc<Registry>) -> Result<(), String> {
    metrics::set_global_recorder(Shared(registry))
        .map_err(|_| "a metrics recorder is already installed".into())
}

/// Metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`; anything else becomes `_`.
fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Label values: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Describes the series [`publish`] records (HELP lines).
pub fn describe() {
    let c = |name: &'static str, help: &'static str| metrics::describe_counter!(name, help);
    c("esptun_tx_packets_total", "Packets sealed and sent into the tunnel.");
    c("esptun_tx_bytes_total", "Inner bytes of the packets sealed.");
    c("esptun_rx_packets_total", "Packets opened and written to the TUN device.");
    c("esptun_rx_bytes_total", "Inner bytes of the packets opened.");
    c("esptun_bypassed_packets_total", "Packets a bypass policy let past the tunnel.");
    c("esptun_icmp_errors_total", "ICMP/ICMPv6 too-big errors generated.");
    c("esptun_fragments_total", "IPv4 fragments made before sealing.");
    c("esptun_keepalives_total", "NAT keepalives received.");
    c("esptun_keepalives_sent_total", "NAT keepalives sent.");
    c("esptun_ike_messages_total", "IKE messages (non-ESP marker) received.");
    c("esptun_soft_lifetime_total", "Packets on an SA past its soft lifetime.");
    c("esptun_drops_total", "Packets dropped by the ESP engine or control socket, by reason.");
    c("esptun_io_drops_total", "Packets dropped by the I/O layer, by reason.");
    c("esptun_sa_rx_packets_total", "Packets opened per inbound SA.");
    c("esptun_sa_rx_bytes_total", "Inner bytes opened per inbound SA.");
    c("esptun_gso_sends_total", "UDP GSO sends (each several ESP packets).");
    c("esptun_gro_writes_total", "TUN writes carrying a coalesced TCP super-packet.");
    c("esptun_tso_packets_total", "TCP super-packets (TSO) read from the TUN and split.");
    c("esptun_uso_packets_total", "UDP super-packets (USO) read from the TUN and split.");
    c(
        "esptun_uring_nobufs_total",
        "io_uring multishot receives ended by an empty buffer ring (re-armed; nothing lost).",
    );
    metrics::describe_gauge!("esptun_workers", "Worker threads running.");
}

/// Records the totals `s` through the current `metrics` recorder.
pub fn publish(s: &WorkerStats, workers: usize) {
    let e = &s.engine;
    for (name, v) in [
        ("esptun_tx_packets_total", e.tx_packets),
        ("esptun_tx_bytes_total", e.tx_bytes),
        ("esptun_rx_packets_total", e.rx_packets),
        ("esptun_rx_bytes_total", e.rx_bytes),
        ("esptun_bypassed_packets_total", e.bypassed),
        ("esptun_icmp_errors_total", e.icmp_errors),
        ("esptun_fragments_total", e.fragments),
        ("esptun_keepalives_total", e.keepalives),
        ("esptun_keepalives_sent_total", e.keepalives_sent),
        ("esptun_ike_messages_total", e.ike),
        ("esptun_soft_lifetime_total", e.soft_lifetime),
        ("esptun_gso_sends_total", s.io.gso_sends),
        ("esptun_gro_writes_total", s.io.gro_writes),
        ("esptun_tso_packets_total", s.io.tso_packets),
        ("esptun_uso_packets_total", s.io.uso_packets),
        ("esptun_uring_nobufs_total", s.io.ring_nobufs),
    ] {
        metrics::counter!(name).absolute(v);
    }
    // Every reason, zero or not, so rates and alerts see the series.
    for r in DropReason::ALL {
        metrics::counter!("esptun_drops_total", "reason" => r.label()).absolute(e.drops.get(*r));
    }
    for (r, n) in s.io.drops() {
        metrics::counter!("esptun_io_drops_total", "reason" => r).absolute(n);
    }
    for &(spi, bytes, pkts) in &s.inbound {
        let spi = format!("{spi:#010x}");
        metrics::counter!("esptun_sa_rx_packets_total", "spi" => spi.clone()).absolute(pkts);
        metrics::counter!("esptun_sa_rx_bytes_total", "spi" => spi).absolute(bytes);
    }
    metrics::gauge!("esptun_workers").set(workers as f64);
}

/// Largest request accepted (headers included).
const MAX_REQUEST: usize = 8 << 10;
/// Per-connection read/write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP exporter's thread; stops (and joins) on drop.
pub struct Exporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Listens on `addr` and serves `registry` from a thread.
    pub fn start(addr: SocketAddr, registry: Arc<Registry>) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("esptun-metrics".into()).spawn(move || {
            let read = Interest { udp_read: true, ..Interest::default() };
            while !flag.load(Ordering::Relaxed) {
                // Wake up now and then to see the stop flag.
                let ready =
                    poll_wait(Some(listener.as_raw_fd()), None, read, Some(Duration::from_millis(200)));
                if !ready.is_ok_and(|r| r.udp_read) {
                    continue;
                }
                while let Ok((conn, _)) = listener.accept() {
                    // One bad client must not stop the exporter.
                    let _ = answer(conn, &registry);
                }
            }
        })?;
        Ok(Exporter { addr, stop, thread: Some(thread) })
    }

    /// The address it listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request and answers it; the connection is closed after.
fn answer(mut conn: TcpStream, registry: &Registry) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        if req.len() > MAX_REQUEST {
            return respond(&mut conn, "431 Request Header Fields Too Large", "request too large\n");
        }
    }
    let line = req.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => respond(&mut conn, "200 OK", &registry.render()),
        ("GET", "/") => respond(&mut conn, "200 OK", "esptun metrics: GET /metrics\n"),
        ("GET", _) => respond(&mut conn, "404 Not Found", "not found; try /metrics\n"),
        _ => respond(&mut conn, "405 Method Not Allowed", "only GET\n"),
    }
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests;
