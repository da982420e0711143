//! The plain-syscall backend: `recvmmsg`/`sendmmsg` on the UDP socket,
//! `read`/`write` per packet on the TUN queue (TUN has no batch syscall),
//! `poll(2)` to wait. Works wherever io_uring is disabled or filtered.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::Socket;

use super::backend::{BackendKind, Interest, PacketIo, not_connected, poll_wait};
use super::batch::PacketBatch;
use super::msg::MsgScratch;
use super::tun::TunQueue;

/// Syscall backend over one worker's socket and TUN queue.
pub struct SyscallIo {
    udp: Option<Socket>,
    tun: Option<TunQueue>,
    scratch: MsgScratch,
}

impl SyscallIo {
    /// Wraps the fds (both must already be non-blocking, as
    /// [`super::udp::UdpGroup`] and [`super::tun::TunDevice`] make them).
    pub fn new(udp: Option<Socket>, tun: Option<TunQueue>) -> io::Result<SyscallIo> {
        let v6 = is_v6_socket(udp.as_ref())?;
        Ok(SyscallIo { udp, tun, scratch: MsgScratch::new(v6) })
    }
}

/// Whether the socket (if any) is AF_INET6.
pub(crate) fn is_v6_socket(udp: Option<&Socket>) -> io::Result<bool> {
    match udp {
        Some(s) => Ok(s.local_addr()?.as_socket().is_some_and(|a| a.is_ipv6())),
        None => Ok(false),
    }
}

/// Converts a `-1` syscall return into the OS error.
fn cvt(rc: libc::c_int) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

impl PacketIo for SyscallIo {
    fn recv_udp(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        batch.clear();
        let fd = self.udp.as_ref().ok_or_else(|| not_connected("UDP socket"))?.as_raw_fd();
        let n = batch.capacity().min(libc::c_uint::MAX as usize);
        if n == 0 {
            return Ok(0);
        }
        self.scratch.prepare_recv(batch, n);
        // SAFETY: the first `n` headers point at live iovecs, addresses and
        // cmsg buffers in `self.scratch` and at slots of `batch`, all valid
        // and exclusively borrowed for the duration of the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.scratch.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let got = match cvt(rc) {
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        for i in 0..got {
            let len = self.scratch.hdrs[i].msg_len as usize;
            self.scratch.finish_recv(i, len, batch);
        }
        batch.set_len(got);
        Ok(got)
    }

    fn send_udp(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize> {
        let fd = self.udp.as_ref().ok_or_else(|| not_connected("UDP socket"))?.as_raw_fd();
        let n = batch.len().saturating_sub(from).min(libc::c_uint::MAX as usize);
        if n == 0 {
            return Ok(0);
        }
        self.scratch.prepare_send(batch, from, n);
        // SAFETY: the first `n` headers point at live scratch entries and at
        // slots of `batch`, which the kernel only reads; all outlive the call.
        let rc = unsafe {
            libc::sendmmsg(fd, self.scratch.hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT)
        };
        cvt(rc)
    }

    fn read_tun(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        self.tun.as_ref().ok_or_else(|| not_connected("TUN queue"))?.read_batch(batch)
    }

    fn write_tun(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize> {
        self.tun.as_ref().ok_or_else(|| not_connected("TUN queue"))?.write_batch(batch, from)
    }

    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Interest> {
        poll_wait(
            self.udp.as_ref().map(AsRawFd::as_raw_fd),
            self.tun.as_ref().map(AsRawFd::as_raw_fd),
            interest,
            timeout,
        )
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Syscall
    }
}
