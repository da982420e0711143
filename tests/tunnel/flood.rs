//! Garbage for a daemon's UDP port: five kinds of bad datagram, each built
//! so that exactly one drop reason of esptun's engine applies to it
//! (`src/esp/drop.rs`, `src/engine/inbound.rs`, `src/wire/udp_encap.rs`):
//!
//! | kind        | bytes                                             | reason          |
//! |-------------|---------------------------------------------------|-----------------|
//! | random      | 8..1400 random bytes, first word not 0 nor an SPI of ours | `unknown_spi` |
//! | unknown SPI | ESP header with SPI 0x0bad_xxxx, 40..1400 bytes    | `unknown_spi`   |
//! | truncated   | 2..7 bytes (no ESP header), or a valid SPI + 8..33 bytes (below header + IV + pad/NH + ICV) | `truncated` |
//! | bad ICV     | a valid SPI, fresh sequence number, random body    | `auth_failed`   |
//! | keepalive   | one 0xff byte (RFC 3948 §2.3)                      | `nat_keepalive` |
//!
//! Sending is paced and bounded in count and time.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Datagrams sent, per kind (send errors are not counted as sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodCounts {
    pub random: u64,
    pub unknown_spi: u64,
    pub truncated: u64,
    pub bad_icv: u64,
    pub keepalive: u64,
    pub send_errors: u64,
}

impl FloodCounts {
    /// All datagrams sent.
    pub fn total(&self) -> u64 {
        self.random + self.unknown_spi + self.truncated + self.bad_icv + self.keepalive
    }

    /// Adds another run's counts.
    pub fn add(&mut self, o: &FloodCounts) {
        self.random += o.random;
        self.unknown_spi += o.unknown_spi;
        self.truncated += o.truncated;
        self.bad_icv += o.bad_icv;
        self.keepalive += o.keepalive;
        self.send_errors += o.send_errors;
    }
}

/// What to send, how fast and for how long.
#[derive(Clone, Debug)]
pub struct Flood {
    /// The daemon's UDP address.
    pub target: SocketAddr,
    /// The daemon's inbound SPI (for truncated and bad-ICV datagrams).
    pub valid_spi: u32,
    /// Stop after this many datagrams.
    pub max_datagrams: u64,
    /// Stop after this long.
    pub max_time: Duration,
    /// Datagrams per millisecond.
    pub per_ms: u64,
}

/// Datagram `i` (its kind is `i % 5`) into `out`; returns the kind.
pub fn datagram(i: u64, valid_spi: u32, rng: &mut Rng, out: &mut Vec<u8>) -> usize {
    out.clear();
    let kind = (i % 5) as usize;
    match kind {
        0 => {
            out.resize(rng.range(8, 1400), 0);
            rng.fill(out);
            let w = u32::from_be_bytes([out[0], out[1], out[2], out[3]]);
            if w == 0 || w == valid_spi {
                out[0] = 0xee;
            }
        }
        1 => {
            out.resize(rng.range(40, 1400), 0);
            rng.fill(out);
            let spi = 0x0bad_0000 | (i as u32 & 0xffff);
            out[0..4].copy_from_slice(&spi.to_be_bytes());
            out[4..8].copy_from_slice(&(i as u32 + 1).to_be_bytes());
        }
        2 => {
            if i % 2 == 0 {
                out.resize(rng.range(2, 7), 0);
                rng.fill(out);
                out[0] = 0xaa; // not a keepalive, not the non-ESP marker
            } else {
                out.resize(rng.range(8, 33), 0);
                rng.fill(out);
                out[0..4].copy_from_slice(&valid_spi.to_be_bytes());
            }
        }
        3 => {
            out.resize(rng.range(64, 1400), 0);
            rng.fill(out);
            // A sequence number far ahead of the real flow's, so the replay
            // window lets it through to the AEAD, which must refuse it (and
            // then nothing is committed to the window).
            let seq = 0x4000_0000 + (i as u32 & 0x0fff_ffff);
            out[0..4].copy_from_slice(&valid_spi.to_be_bytes());
            out[4..8].copy_from_slice(&seq.to_be_bytes());
            out[8..16].copy_from_slice(&u64::from(seq).to_be_bytes());
        }
        _ => out.push(0xff),
    }
    kind
}

/// Sends the flood from `sock` until `stop` is set, `max_datagrams` went
/// out or `max_time` passed.
pub fn run(sock: &UdpSocket, f: &Flood, stop: &AtomicBool, seed: u64) -> FloodCounts {
    let mut c = FloodCounts::default();
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(1500);
    let start = Instant::now();
    let mut i = 0u64;
    while i < f.max_datagrams && !stop.load(Ordering::Relaxed) && start.elapsed() < f.max_time {
        for _ in 0..f.per_ms {
            let kind = datagram(i, f.valid_spi, &mut rng, &mut buf);
            i += 1;
            match sock.send_to(&buf, f.target) {
                Ok(_) => match kind {
                    0 => c.random += 1,
                    1 => c.unknown_spi += 1,
                    2 => c.truncated += 1,
                    3 => c.bad_icv += 1,
                    _ => c.keepalive += 1,
                },
                Err(_) => c.send_errors += 1,
            }
        }
        // Pace against the clock, so a slow sleep does not lower the rate.
        let due = Duration::from_micros(i * 1000 / f.per_ms.max(1));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_the_shapes_the_table_says() {
        let mut rng = Rng::new(3);
        let mut b = Vec::new();
        for i in 0..5000 {
            let kind = datagram(i, 0x1002, &mut rng, &mut b);
            let w = (b.len() >= 4).then(|| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match kind {
                0 => assert!(b.len() >= 8 && w != Some(0) && w != Some(0x1002)),
                1 => assert!(b.len() >= 40 && w.unwrap() >> 16 == 0x0bad),
                2 => assert!(
                    (2..8).contains(&b.len()) && b[0] == 0xaa
                        || (8..34).contains(&b.len()) && w == Some(0x1002)
                ),
                3 => assert!(b.len() >= 64 && w == Some(0x1002)),
                _ => assert_eq!(b, [0xff]),
            }
        }
    }
}
