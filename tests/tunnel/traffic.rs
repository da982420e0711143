//! Traffic through the tunnel, every check byte-exact and every loop
//! bounded: ping (iputils), a TCP stream of a known pattern verified on
//! the receiver, UDP datagrams with numbered, patterned payloads.
//!
//! Sockets are created inside a namespace (on a thread that joined it with
//! [`NetNs::run`]) and keep that namespace when used from other threads.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use esptun::dataplane::netns::NetNs;

/// Longest any single transfer may take.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(30);
/// Socket read/write timeout (a stalled tunnel fails the test, never hangs).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What one ping run saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pings {
    pub sent: u32,
    pub received: u32,
}

/// Sends `count` echo requests (0.2 s apart, each reply awaited at most
/// 2 s) from `ns` to `dst`.
pub fn ping(ns: &NetNs, dst: IpAddr, count: u32) -> Pings {
    ping_with(ns, dst, count, &[]).0
}

/// [`ping`] with `extra` ping options; also returns ping's output.
pub fn ping_with(ns: &NetNs, dst: IpAddr, count: u32, extra: &[&str]) -> (Pings, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "ping", "-n", "-i", "0.2", "-W", "2"])
        .args(extra)
        .arg("-c")
        .arg(count.to_string())
        .arg(dst.to_string())
        .output()
        .expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "3 packets transmitted, 3 received, 0% packet loss, time 403ms"
    let pings = text
        .lines()
        .find_map(|l| {
            let (sent, rest) = l.split_once(" packets transmitted, ")?;
            let received = rest.split(' ').next()?.parse().ok()?;
            Some(Pings { sent: sent.trim().parse().ok()?, received })
        })
        .unwrap_or_else(|| {
            panic!("no ping statistics from {}: {text}{}", ns.name(), String::from_utf8_lossy(&out.stderr))
        });
    (pings, text)
}

/// The byte stream a transfer sends: a 64 KiB-ish table (prime length, so
/// it never lines up with segment or buffer sizes) XORed with the table
/// round number, so that repeated, dropped or reordered data shows.
pub struct Pattern {
    table: Vec<u8>,
}

const PATTERN_PERIOD: usize = 65_521;

impl Pattern {
    /// The pattern for `seed`.
    pub fn new(seed: u64) -> Pattern {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let table = (0..PATTERN_PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Pattern { table }
    }

    /// Fills `buf` with the stream bytes at `offset..offset+buf.len()`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = (offset % PATTERN_PERIOD as u64) as usize;
        let mut round = (offset / PATTERN_PERIOD as u64) as u8;
        let mut i = 0;
        while i < buf.len() {
            let n = (PATTERN_PERIOD - pos).min(buf.len() - i);
            for (d, s) in buf[i..i + n].iter_mut().zip(&self.table[pos..pos + n]) {
                *d = s ^ round;
            }
            i += n;
            pos = 0;
            round = round.wrapping_add(1);
        }
    }
}

/// Sends `bytes` bytes of [`Pattern`] `seed` over TCP from namespace
/// `from` to `dst` (a listener in `to`), and checks on the receiver that
/// the peer is `src` and that exactly those bytes arrived, in order.
/// Returns the time from connect until the receiver saw the end of stream.
pub fn tcp_transfer(
    from: &NetNs,
    to: &NetNs,
    src: IpAddr,
    dst: IpAddr,
    bytes: u64,
    seed: u64,
) -> Result<Duration, String> {
    let listener = to
        .run(|| TcpListener::bind(SocketAddr::new(dst, 0)))
        .map_err(|e| format!("enter {}: {e}", to.name()))?
        .map_err(|e| format!("bind {dst} in {}: {e}", to.name()))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let pattern = Pattern::new(seed);
    std::thread::scope(|s| {
        let rx = s.spawn(|| receive_stream(&listener, src, bytes, &pattern));
        let t0 = Instant::now();
        let sent = send_stream(from, addr, bytes, &pattern);
        let received = rx.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (sent, received) {
            (Ok(()), Ok(end)) => Ok(end.saturating_duration_since(t0)),
            (Err(e), Ok(_)) => Err(format!("TCP {src} -> {addr}: sender: {e}")),
            (Ok(()), Err(e)) => Err(format!("TCP {src} -> {addr}: receiver: {e}")),
            (Err(a), Err(b)) => Err(format!("TCP {src} -> {addr}: sender: {a}; receiver: {b}")),
        }
    })
}

fn send_stream(from: &NetNs, to: SocketAddr, bytes: u64, pattern: &Pattern) -> Result<(), String> {
    let mut c = from
        .run(|| TcpStream::connect_timeout(&to, Duration::from_secs(5)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    c.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    while off < bytes {
        if start.elapsed() > TRANSFER_DEADLINE {
            return Err(format!("only {off} of {bytes} bytes sent in {TRANSFER_DEADLINE:?}"));
        }
        let n = (bytes - off).min(buf.len() as u64) as usize;
        pattern.fill(off, &mut buf[..n]);
        c.write_all(&buf[..n]).map_err(|e| format!("write at {off}: {e}"))?;
        off += n as u64;
    }
    c.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
    // Wait for the receiver to close, so no byte is still in flight when
    // the caller stops the daemons.
    let mut one = [0u8; 1];
    c.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    loop {
        // A signal interrupts a socket wait that has a timeout with EINTR
        // (not restarted), whatever its handler asked for.
        match c.read(&mut one) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err("receiver sent data back".into()),
            Err(e) if e.kind() == ErrorKind::Interrupted && start.elapsed() < TRANSFER_DEADLINE => {}
            Err(e) => return Err(format!("waiting for the receiver to close: {e}")),
        }
    }
}

fn receive_stream(l: &TcpListener, src: IpAddr, bytes: u64, pattern: &Pattern) -> Result<Instant, String> {
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (mut c, peer) = loop {
        match l.accept() {
            Ok(x) => break x,
            Err(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
                    && start.elapsed() < IO_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    if peer.ip() != src {
        return Err(format!("connection from {peer}, expected {src}"));
    }
    c.set_nonblocking(false).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut want = vec![0u8; buf.len()];
    let mut got = 0u64;
    loop {
        if start.elapsed() > TRANSFER_DEADLINE {
            return Err(format!("only {got} of {bytes} bytes received in {TRANSFER_DEADLINE:?}"));
        }
        let n = match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read after {got} bytes: {e}")),
        };
        if got + n as u64 > bytes {
            return Err(format!("more than the {bytes} bytes sent arrived"));
        }
        pattern.fill(got, &mut want[..n]);
        if buf[..n] != want[..n] {
            let i = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "byte {} differs: got {:#04x}, sent {:#04x}",
                got + i as u64,
                buf[i],
                want[i]
            ));
        }
        got += n as u64;
    }
    let end = Instant::now();
    if got != bytes {
        return Err(format!("stream ended after {got} of {bytes} bytes"));
    }
    Ok(end)
}

/// Datagram `seq` of a UDP exchange: seq (4 bytes), its length (2), then
/// pattern bytes; 8 to 1200 bytes, so every one fits the tunnel MTU.
fn datagram(seq: u32) -> Vec<u8> {
    let len = 8 + (seq as usize * 197) % 1193;
    let mut d = vec![0u8; len];
    d[0..4].copy_from_slice(&seq.to_be_bytes());
    d[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    Pattern::new(u64::from(seq) + 1).fill(0, &mut d[6..]);
    d
}

/// The UDP checksum a sender's stack computes for `payload` from `src` to
/// `dst` (RFC 768 / RFC 8200 §8.1), before the rule that a computed 0 is
/// sent as 0xffff. Written here independently of esptun's own code.
pub fn udp_checksum(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> u16 {
    let len = 8 + payload.len();
    let mut v = Vec::with_capacity(48 + payload.len());
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            v.extend_from_slice(&s.octets());
            v.extend_from_slice(&d.octets());
            v.extend_from_slice(&[0, 17]);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            v.extend_from_slice(&v6(s));
            v.extend_from_slice(&v6(d));
            v.extend_from_slice(&(len as u32).to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 17]);
        }
    }
    v.extend_from_slice(&src.port().to_be_bytes());
    v.extend_from_slice(&dst.port().to_be_bytes());
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    if v.len() % 2 == 1 {
        v.push(0);
    }
    let mut acc: u32 = v.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// [`datagram`] `seq` with bytes 6..8 chosen so that its UDP checksum
/// from `src` to `dst` computes to 0 (so the sender must put 0xffff in
/// the header: 0 means "no checksum" over IPv4 and is invalid over IPv6).
pub fn zero_sum_datagram(seq: u32, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut d = datagram(seq);
    d[6..8].fill(0);
    let fix = udp_checksum(src, dst, &d);
    d[6..8].copy_from_slice(&fix.to_be_bytes());
    debug_assert_eq!(udp_checksum(src, dst, &d), 0);
    d
}

/// Sends `count` numbered datagrams from `src` in namespace `from` to
/// `dst` in namespace `to` (paced: 8 per millisecond, far below anything
/// that could overflow a queue) and checks that every one arrived exactly
/// once, from `src`, byte for byte. `zero_sum`: every datagram is a
/// [`zero_sum_datagram`].
pub fn udp_exchange(
    from: &NetNs,
    to: &NetNs,
    src: IpAddr,
    dst: IpAddr,
    count: u32,
    zero_sum: bool,
) -> Result<(), String> {
    let rx = to
        .run(|| UdpSocket::bind(SocketAddr::new(dst, 0)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bind {dst}: {e}"))?;
    let tx = from
        .run(|| UdpSocket::bind(SocketAddr::new(src, 0)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bind {src}: {e}"))?;
    let to_addr = rx.local_addr().map_err(|e| e.to_string())?;
    let from_addr = tx.local_addr().map_err(|e| e.to_string())?;
    rx.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    let sent: Vec<Vec<u8>> = (0..count)
        .map(|seq| if zero_sum { zero_sum_datagram(seq, from_addr, to_addr) } else { datagram(seq) })
        .collect();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| -> Result<(), String> {
            let mut seen = vec![false; count as usize];
            let mut left = count;
            let mut buf = vec![0u8; 2048];
            let start = Instant::now();
            while left > 0 {
                if start.elapsed() > Duration::from_secs(5) {
                    let missing: Vec<usize> = (0..seen.len()).filter(|&i| !seen[i]).take(10).collect();
                    return Err(format!("{left} of {count} datagrams missing (first: {missing:?})"));
                }
                let (n, peer) = match rx.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) =>
                    {
                        continue;
                    }
                    Err(e) => return Err(format!("recv: {e}")),
                };
                if peer != from_addr {
                    return Err(format!("datagram from {peer}, expected {from_addr}"));
                }
                if n < 6 {
                    return Err(format!("{n}-byte datagram"));
                }
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if seq >= count || sent[seq as usize] != buf[..n] {
                    return Err(format!("datagram {seq} ({n} bytes) is not what was sent"));
                }
                if std::mem::replace(&mut seen[seq as usize], true) {
                    return Err(format!("datagram {seq} arrived twice"));
                }
                left -= 1;
            }
            Ok(())
        });
        let start = Instant::now();
        for seq in 0..count {
            if seq % 8 == 7 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let d = &sent[seq as usize];
            let mut tries = 0;
            while let Err(e) = tx.send_to(d, to_addr) {
                tries += 1;
                if e.kind() != ErrorKind::Interrupted || tries > 10 {
                    return Err(format!("send {seq}: {e}"));
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "sending {count} datagrams took too long");
        receiver.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
    .map_err(|e| format!("UDP {from_addr} -> {to_addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_position_dependent_and_chunking_free() {
        let p = Pattern::new(7);
        let mut whole = vec![0u8; 3 * PATTERN_PERIOD + 10];
        p.fill(0, &mut whole);
        let mut parts = vec![0u8; whole.len()];
        let (a, b) = parts.split_at_mut(70_001);
        p.fill(0, a);
        p.fill(70_001, b);
        assert_eq!(whole, parts);
        // The table repeats, but each round is XORed differently.
        assert_ne!(whole[..100], whole[PATTERN_PERIOD..PATTERN_PERIOD + 100]);
        assert_ne!(Pattern::new(8).table, p.table);
    }

    #[test]
    fn zero_sum_datagrams_sum_to_zero_by_esptuns_checksum_too() {
        let pairs =
            [("198.51.100.1:40000", "203.0.113.1:50000"), ("[2001:db8:1::1]:40001", "[2001:db8:2::1]:50001")];
        for (s, d) in pairs {
            let (s, d): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            for seq in [0, 1, 2, 77] {
                let p = zero_sum_datagram(seq, s, d);
                assert_eq!(udp_checksum(s, d, &p), 0);
                // The same sum by an independent implementation (esptun's).
                let mut pseudo = Vec::new();
                match (s.ip(), d.ip()) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => {
                        pseudo.extend_from_slice(&a.octets());
                        pseudo.extend_from_slice(&b.octets());
                        pseudo.extend_from_slice(&[0, 17]);
                        pseudo.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
                    }
                    (IpAddr::V6(a), IpAddr::V6(b)) => {
                        pseudo.extend_from_slice(&a.octets());
                        pseudo.extend_from_slice(&b.octets());
                        pseudo.extend_from_slice(&((8 + p.len()) as u32).to_be_bytes());
                        pseudo.extend_from_slice(&[0, 0, 0, 17]);
                    }
                    _ => unreachable!(),
                }
                pseudo.extend_from_slice(&s.port().to_be_bytes());
                pseudo.extend_from_slice(&d.port().to_be_bytes());
                pseudo.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0]);
                pseudo.extend_from_slice(&p);
                assert_eq!(esptun::wire::checksum::checksum(&pseudo), 0, "seq {seq} {s} -> {d}");
            }
        }
    }

    #[test]
    fn datagrams_are_self_describing() {
        for seq in [0, 1, 6, 1000] {
            let d = datagram(seq);
            assert!((8..=1200).contains(&d.len()));
            assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), seq);
            assert_eq!(usize::from(u16::from_be_bytes([d[4], d[5]])), d.len());
        }
    }
}
