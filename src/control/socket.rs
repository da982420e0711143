//! The control thread's socket on the tunnel's UDP port.
//!
//! It is the last socket of the SO_REUSEPORT group; the steering program
//! (`dataplane::udp::spi_steering_program`) sends it what is not ESP:
//! NAT keepalives (one 0xFF byte, RFC 3948 §2.3), IKE messages behind the
//! 4-byte non-ESP marker (RFC 3948 §2.2) and runts under 4 bytes. Workers
//! therefore see only ESP, and the control thread sees IKE without a
//! channel hop.
//!
//! What arrives is classified by `wire::udp_encap` (the same rule the
//! steering program applies) and counted with the engine's counter types,
//! so the operator's summary adds it up with the workers': a keepalive is
//! counted under `keepalives` and as a `nat_keepalive` drop (consumed, as
//! on a worker), a runt as `truncated`. IKE messages are counted under
//! `ike`; until IKE is negotiated nothing consumes them, so each is also
//! dropped as `ike_unhandled` (the first one is logged, with its sender).
//! ESP that reaches this socket (it cannot while the program is attached)
//! is dropped as `misrouted`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::dataplane::backend::{Interest, poll_wait};
use crate::dataplane::udp::setsockopt_int;
use crate::engine::Counters;
use crate::esp::DropReason;
use crate::wire::udp_encap::{self, Encap};

/// Datagrams read per [`ControlSocket::serve`] call at most, so a flood
/// cannot keep the control thread from its other work.
const MAX_PER_TURN: usize = 1024;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// What the control socket did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlVerdict {
    /// A NAT keepalive: consumed.
    Keepalive,
    /// An IKE message (counted; dropped while no IKE handler exists).
    Ike,
    /// Dropped for this reason.
    Drop(DropReason),
}

/// Classifies one UDP payload that reached the control socket.
pub fn classify(payload: &[u8]) -> ControlVerdict {
    match udp_encap::classify(payload) {
        Ok(Encap::Keepalive) => ControlVerdict::Keepalive,
        Ok(Encap::Ike) => ControlVerdict::Ike,
        Ok(Encap::Esp) => ControlVerdict::Drop(DropReason::Misrouted),
        Err(_) => ControlVerdict::Drop(DropReason::Truncated),
    }
}

/// The control thread's end of the UDP group.
pub struct ControlSocket {
    sock: UdpSocket,
    buf: Vec<u8>,
    counters: Counters,
    /// When the last "IKE ignored" line was logged.
    ike_logged: Option<Instant>,
}

impl ControlSocket {
    /// Takes the group's control socket (non-blocking). UDP GRO is turned
    /// off on it: IKE messages must arrive one datagram at a time.
    pub fn new(sock: Socket) -> io::Result<ControlSocket> {
        // GRO may be off already, or unknown to the kernel: both are fine.
        let _ = setsockopt_int(sock.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 0);
        sock.set_nonblocking(true)?;
        Ok(ControlSocket {
            sock: sock.into(),
            buf: vec![0; MAX_DATAGRAM],
            counters: Counters::default(),
            ike_logged: None,
        })
    }

    /// Sends a NAT keepalive to `to` from the tunnel's port (counted). A
    /// full socket buffer or an unreachable peer is an error for the
    /// caller to report; the next one is due an interval later anyway.
    pub fn send_keepalive(&mut self, to: SocketAddr) -> io::Result<()> {
        self.sock.send_to(&crate::control::keepalive::KEEPALIVE, to)?;
        self.counters.keepalives_sent += 1;
        Ok(())
    }

    /// Waits up to `timeout` for datagrams, then handles what is waiting
    /// (at most `MAX_PER_TURN` = 1024). Returns how many were handled.
    pub fn serve(&mut self, timeout: Duration) -> io::Result<usize> {
        let ready = poll_wait(
            Some(self.sock.as_raw_fd()),
            None,
            Interest { udp_read: true, ..Interest::default() },
            Some(timeout),
        )?;
        if !ready.udp_read {
            return Ok(0);
        }
        let mut n = 0;
        while n < MAX_PER_TURN {
            match self.sock.recv_from(&mut self.buf) {
                Ok((len, from)) => {
                    let payload = self.buf.get(..len).unwrap_or(&[]);
                    let verdict = classify(payload);
                    self.count(verdict, from);
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors for earlier sends surface here; not fatal.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn count(&mut self, v: ControlVerdict, from: SocketAddr) {
        let c = &mut self.counters;
        match v {
            ControlVerdict::Keepalive => {
                c.keepalives += 1;
                c.drops.inc(DropReason::NatKeepalive);
            }
            ControlVerdict::Ike => {
                c.ike += 1;
                c.drops.inc(DropReason::IkeUnhandled);
                let quiet = self.ike_logged.is_some_and(|t| t.elapsed() < Duration::from_secs(60));
                if !quiet {
                    eprintln!(
                        "esptun: IKE message from {from} ignored: IKE is not negotiated yet (static SAs only); \
                         counted as ike_unhandled"
                    );
                    self.ike_logged = Some(Instant::now());
                }
            }
            ControlVerdict::Drop(r) => c.drops.inc(r),
        }
    }

    /// Counters so far (keepalives, ike, drops).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_what_the_steering_program_sends_here() {
        assert_eq!(classify(&[0xff]), ControlVerdict::Keepalive);
        assert_eq!(classify(&[0, 0, 0, 0, 0x11, 0x22]), ControlVerdict::Ike);
        assert_eq!(classify(&[0xaa, 1]), ControlVerdict::Drop(DropReason::Truncated));
        assert_eq!(classify(&[]), ControlVerdict::Drop(DropReason::Truncated));
        assert_eq!(classify(&[0, 0, 1, 0, 0, 0, 0, 1]), ControlVerdict::Drop(DropReason::Misrouted));
    }

    #[test]
    fn serves_and_counts_datagrams_from_a_peer() {
        let sock = Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        let addr = sock.local_addr().unwrap().as_socket().unwrap();
        let mut c = ControlSocket::new(sock).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        for d in [&[0xff][..], &[0, 0, 0, 0, 0x21, 0x20, 0x22, 0x08], &[0xaa, 0xbb], &[0xff]] {
            peer.send_to(d, addr).unwrap();
        }
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while got < 4 && Instant::now() < deadline {
            got += c.serve(Duration::from_millis(100)).unwrap();
        }
        assert_eq!(got, 4);
        let k = c.counters();
        assert_eq!((k.keepalives, k.ike), (2, 1));
        assert_eq!(k.drops.get(DropReason::NatKeepalive), 2);
        assert_eq!(k.drops.get(DropReason::IkeUnhandled), 1);
        assert_eq!(k.drops.get(DropReason::Truncated), 1);
        assert_eq!(k.drops.total(), 4, "every datagram is accounted for");
        assert_eq!(c.serve(Duration::from_millis(1)).unwrap(), 0, "nothing left");
    }
}
