//! The UDP socket group: N sockets bound to one address and port with
//! `SO_REUSEPORT`, one per worker plus one for the control thread, and the
//! classic-BPF program that steers each datagram to a socket by ESP SPI.
//!
//! Per socket: non-blocking; `SO_RCVBUF`/`SO_SNDBUF` set with the `FORCE`
//! variants first (root or CAP_NET_ADMIN may exceed `net.core.rmem_max`),
//! else the plain ones (capped by the sysctl); `IP_RECVTOS` (and
//! `IPV6_RECVTCLASS` on IPv6 sockets) so the receiver sees the outer ECN
//! bits that ESP decapsulation needs (RFC 6040). Probed once at bind:
//! `UDP_SEGMENT` (GSO send, Linux 4.18+) and `UDP_GRO` (coalesced receive,
//! Linux 5.0+); each can be turned off in [`UdpConfig`] and is reported in
//! [`UdpFeatures`]. An IPv6 address with `v6only: false` gives a dual-stack
//! group (IPv4 peers appear as IPv4 in packet metadata).
//!
//! Steering ([`attach_spi_steering`]): the kernel runs the program on the
//! UDP payload of each datagram and uses its return value as the index of
//! the socket in the group (bind order); an index past the group falls back
//! to the kernel's hash. The program sends payloads under 4 bytes (NAT
//! keepalives, RFC 3948 §2.3) and payloads starting with the 4-byte
//! non-ESP marker 0 (IKE, RFC 3948 §2.2) to `control_index`, everything
//! else to `SPI mod n_workers`, SPI read big-endian from bytes 0..4.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// What to ask of the UDP group. Each offload can be turned off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// Local address; port 0 picks one port for the whole group.
    pub addr: SocketAddr,
    /// Sockets in the group (workers + control).
    pub sockets: usize,
    /// Wanted receive buffer bytes per socket.
    pub rcvbuf: usize,
    /// Wanted send buffer bytes per socket.
    pub sndbuf: usize,
    /// IPv6 only (true) or dual-stack (false); ignored for IPv4 addresses.
    pub v6only: bool,
    /// Use UDP_SEGMENT (GSO) when the kernel has it.
    pub gso: bool,
    /// Enable UDP_GRO when the kernel has it.
    pub gro: bool,
}

impl UdpConfig {
    /// Defaults: 4 MiB buffers, GSO and GRO on, v6-only.
    pub fn new(addr: SocketAddr, sockets: usize) -> UdpConfig {
        UdpConfig { addr, sockets, rcvbuf: 4 << 20, sndbuf: 4 << 20, v6only: true, gso: true, gro: true }
    }
}

/// What the kernel granted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpFeatures {
    /// UDP_SEGMENT usable (and wanted).
    pub gso: bool,
    /// UDP_GRO enabled on every socket.
    pub gro: bool,
    /// Receive buffer as reported by the kernel (it doubles the request).
    pub rcvbuf: usize,
    /// Send buffer as reported by the kernel.
    pub sndbuf: usize,
    /// The FORCE variants were accepted.
    pub forced_bufs: bool,
}

/// A bound SO_REUSEPORT group, sockets in kernel group order.
#[derive(Debug)]
pub struct UdpGroup {
    sockets: Vec<Socket>,
    local: SocketAddr,
    features: UdpFeatures,
}

impl UdpGroup {
    /// Binds `cfg.sockets` sockets to `cfg.addr` in order (socket `i` has
    /// index `i` in the kernel's reuseport group) and probes offloads.
    pub fn bind(cfg: &UdpConfig) -> io::Result<UdpGroup> {
        if cfg.sockets == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "UDP group needs a socket"));
        }
        let mut addr = cfg.addr;
        let mut sockets = Vec::with_capacity(cfg.sockets);
        let mut features = UdpFeatures { gso: cfg.gso, gro: cfg.gro, ..UdpFeatures::default() };
        for i in 0..cfg.sockets {
            let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_port(true)?;
            s.set_nonblocking(true)?;
            if addr.is_ipv6() {
                s.set_only_v6(cfg.v6only)?;
                setsockopt_int(s.as_raw_fd(), libc::SOL_IPV6, libc::IPV6_RECVTCLASS, 1)?;
            }
            if addr.is_ipv4() || !cfg.v6only {
                setsockopt_int(s.as_raw_fd(), libc::SOL_IP, libc::IP_RECVTOS, 1)?;
            }
            let forced = set_buf(&s, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, cfg.rcvbuf)?
                & set_buf(&s, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, cfg.sndbuf)?;
            if features.gso && setsockopt_int(s.as_raw_fd(), libc::SOL_UDP, libc::UDP_SEGMENT, 0).is_err() {
                features.gso = false;
            }
            if features.gro && setsockopt_int(s.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 1).is_err() {
                features.gro = false;
            }
            s.bind(&addr.into())?;
            if i == 0 {
                addr = s.local_addr()?.as_socket().ok_or_else(|| io::Error::other("bound to non-IP"))?;
                features.rcvbuf = s.recv_buffer_size()?;
                features.sndbuf = s.send_buffer_size()?;
                features.forced_bufs = forced;
            }
            sockets.push(s);
        }
        if cfg.gro && !features.gro {
            // Some sockets may have GRO on while a later probe failed; make it uniform.
            for s in &sockets {
                let _ = setsockopt_int(s.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 0);
            }
        }
        Ok(UdpGroup { sockets, local: addr, features })
    }

    /// The bound address (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Probed features.
    pub fn features(&self) -> UdpFeatures {
        self.features
    }

    /// The sockets, in group order.
    pub fn sockets(&self) -> &[Socket] {
        &self.sockets
    }

    /// Hands the sockets out, in group order.
    pub fn into_sockets(self) -> Vec<Socket> {
        self.sockets
    }
}

/// The SPI steering program (8 classic-BPF instructions, see module docs).
pub fn spi_steering_program(n_workers: u32, control_index: u32) -> [libc::sock_filter; 8] {
    const LD_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const MOD_K: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        ins(LD_LEN, 0, 0, 0),               // 0: A = payload length
        ins(JGE_K, 1, 0, 4),                // 1: A >= 4 ? goto 3 : goto 2
        ins(RET_K, 0, 0, control_index),    // 2: keepalive / runt -> control
        ins(LD_W_ABS, 0, 0, 0),             // 3: A = SPI (big-endian word 0)
        ins(JEQ_K, 0, 1, 0),                // 4: A == 0 ? goto 5 : goto 6
        ins(RET_K, 0, 0, control_index),    // 5: non-ESP marker (IKE) -> control
        ins(MOD_K, 0, 0, n_workers.max(1)), // 6: A %= n_workers
        ins(RET_A, 0, 0, 0),                // 7: socket index A
    ]
}

/// Attaches the SPI steering program to the group `sockets` belongs to
/// (attaching to one socket applies to the whole group).
pub fn attach_spi_steering(sockets: &[Socket], n_workers: u32, control_index: u32) -> io::Result<()> {
    let first = sockets.first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no sockets"))?;
    if n_workers == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "steering needs at least one worker"));
    }
    let mut prog = spi_steering_program(n_workers, control_index);
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: fprog points to a live array of `len` sock_filter entries; the
    // kernel copies the program during the call.
    let rc = unsafe {
        libc::setsockopt(
            first.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Sets a buffer size with the FORCE option, falling back to the plain one.
/// Returns whether FORCE worked.
fn set_buf(s: &Socket, force: libc::c_int, plain: libc::c_int, bytes: usize) -> io::Result<bool> {
    let v = libc::c_int::try_from(bytes / 2).unwrap_or(libc::c_int::MAX);
    if setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, force, v).is_ok() {
        return Ok(true);
    }
    setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, plain, v)?;
    Ok(false)
}

/// `setsockopt` with an int value.
pub(crate) fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a live c_int whose size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            std::ptr::from_ref(&v).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the 8 opcodes the program uses, as an
    /// independent check of the jump offsets (the kernel test in
    /// tests/io_udp.rs checks the real thing).
    fn run(prog: &[libc::sock_filter], payload: &[u8]) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            match i.code as u32 {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_LEN => a = payload.len() as u32,
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let k = i.k as usize;
                    a = u32::from_be_bytes(payload[k..k + 4].try_into().unwrap());
                }
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => {
                    pc += usize::from(if a >= i.k { i.jt } else { i.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                c if c == libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K => a %= i.k,
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c if c == libc::BPF_RET | libc::BPF_A => return a,
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn program_steers_by_spi_and_sends_control_traffic_to_control() {
        let p = spi_steering_program(3, 7);
        assert_eq!(run(&p, &[0xff]), 7, "NAT keepalive");
        assert_eq!(run(&p, &[0, 0, 1]), 7, "runt");
        assert_eq!(run(&p, &[0, 0, 0, 0, 0x21, 0x20]), 7, "non-ESP marker");
        assert_eq!(run(&p, &[0, 0, 0, 5, 0, 0, 0, 1]), 5 % 3);
        assert_eq!(run(&p, &[0x12, 0x34, 0x56, 0x78]), 0x1234_5678 % 3);
        assert_eq!(run(&p, &[0xff, 0xff, 0xff, 0xff]), u32::MAX % 3);
    }

    #[test]
    fn zero_workers_rejected() {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let e = attach_spi_steering(std::slice::from_ref(&s), 0, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = attach_spi_steering(&[], 1, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
