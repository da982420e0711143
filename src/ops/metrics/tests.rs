use super::*;
use std::time::Instant;

fn stats() -> WorkerStats {
    let mut s = WorkerStats::default();
    s.engine.tx_packets = 5;
    s.engine.rx_bytes = 1400;
    s.engine.drops.inc(DropReason::AuthFailed);
    s.engine.drops.inc(DropReason::AuthFailed);
    s.io.tun_write_drops = 4;
    s.inbound = vec![(0x1234, 900, 7)];
    s
}

fn rendered(s: &WorkerStats) -> String {
    let r = Registry::new();
    metrics::with_local_recorder(&r, || {
        describe();
        publish(s, 2);
    });
    r.render()
}

#[test]
fn publish_renders_prometheus_text() {
    let text = rendered(&stats());
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "esptun_tx_packets_total 5",
        "esptun_rx_bytes_total 1400",
        "esptun_drops_total{reason=\"auth_failed\"} 2",
        "esptun_drops_total{reason=\"unknown_spi\"} 0",
        "esptun_io_drops_total{reason=\"tun_write\"} 4",
        "esptun_sa_rx_packets_total{spi=\"0x00001234\"} 7",
        "esptun_sa_rx_bytes_total{spi=\"0x00001234\"} 900",
        "esptun_workers 2",
        "# TYPE esptun_drops_total counter",
        "# TYPE esptun_workers gauge",
        "# HELP esptun_tx_packets_total Packets sealed and sent into the tunnel.",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
    }
    // One TYPE line per family, before its first sample.
    let drops_type = lines.iter().position(|l| *l == "# TYPE esptun_drops_total counter").unwrap();
    let first = lines.iter().position(|l| l.starts_with("esptun_drops_total{")).unwrap();
    assert!(drops_type < first);
    assert_eq!(lines.iter().filter(|l| l.starts_with("# TYPE esptun_drops_total")).count(), 1);
    let reasons = lines.iter().filter(|l| l.starts_with("esptun_drops_total{")).count();
    assert_eq!(reasons, DropReason::COUNT, "every drop reason is a series");
}

#[test]
fn counters_never_go_back() {
    let r = Registry::new();
    let mut s = stats();
    metrics::with_local_recorder(&r, || publish(&s, 1));
    s.engine.tx_packets = 3; // a smaller total (cannot happen; must not rewind)
    metrics::with_local_recorder(&r, || publish(&s, 1));
    assert!(r.render().lines().any(|l| l == "esptun_tx_packets_total 5"));
    s.engine.tx_packets = 9;
    metrics::with_local_recorder(&r, || publish(&s, 1));
    assert!(r.render().lines().any(|l| l == "esptun_tx_packets_total 9"));
}

#[test]
fn names_and_label_values_are_made_safe() {
    assert_eq!(sanitize("esptun.rx-bytes"), "esptun_rx_bytes");
    assert_eq!(sanitize("9lives"), "_9lives");
    assert_eq!(sanitize(""), "_");
    assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    let r = Registry::new();
    metrics::with_local_recorder(&r, || metrics::counter!("x.y", "peer" => "say \"hi\"").absolute(1));
    assert_eq!(r.render(), "# TYPE x_y counter\nx_y{peer=\"say \\\"hi\\\"\"} 1\n");
}

fn get(addr: SocketAddr, request: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn exporter_serves_metrics_and_refuses_the_rest() {
    let r = Arc::new(Registry::new());
    metrics::with_local_recorder(&*r, || publish(&stats(), 2));
    let ex = Exporter::start("127.0.0.1:0".parse().unwrap(), r.clone()).unwrap();
    let addr = ex.local_addr();

    let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
    assert_eq!(body, r.render());

    assert!(get(addr, b"GET /nope HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    // Exactly one byte over the limit: the server reads all of it before
    // answering, so closing does not reset the connection under the reply.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    big.resize(MAX_REQUEST + 1, b'a');
    assert!(get(addr, &big).starts_with("HTTP/1.1 431"));

    // A client that sends nothing is cut off by the read timeout; the
    // next one is served.
    let _silent = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    assert!(get(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert!(t.elapsed() < IO_TIMEOUT * 3, "served after the silent client's timeout");
    drop(ex); // stops and joins the thread
    assert!(TcpStream::connect(addr).is_err(), "listener closed");
}
