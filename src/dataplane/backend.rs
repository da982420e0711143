//! The I/O backend trait and the choice between io_uring and syscalls.
//!
//! A backend owns one worker's UDP socket and/or TUN queue and moves whole
//! batches between them and a caller-owned [`PacketBatch`]. It makes no
//! protocol decisions. Both backends are non-blocking: receive calls return
//! what is ready now (possibly 0) and [`PacketIo::wait`] blocks until an fd
//! is ready or the timeout passes.
//!
//! Choice ([`BackendChoice`]): `Auto` uses io_uring when
//! `/proc/sys/kernel/io_uring_disabled` is not 2 and `io_uring_setup`
//! succeeds with the opcodes we use (Docker's default seccomp profile makes
//! it fail with EPERM/ENOSYS); otherwise syscalls. `Uring` and `Syscall`
//! force one.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use socket2::Socket;

use super::batch::PacketBatch;
use super::syscall::SyscallIo;
use super::tun::TunQueue;
use super::uring::UringIo;

/// Batch I/O on one worker's UDP socket and TUN queue.
///
/// Send-side semantics (`send_udp`, `write_tun`): packets `from..batch.len()`
/// are sent in order; `Ok(k)` means the first `k` went out. `Err` means the
/// packet at `from` could not be sent: `WouldBlock` when buffers are full
/// (wait for writability and retry), any other error is about that packet
/// (the caller drops it and continues at `from + 1`).
pub trait PacketIo {
    /// Receives up to `batch.capacity()` datagrams into slots `0..n`, sets
    /// `batch.len()` to `n` and returns it; `Ok(0)` when none is waiting.
    fn recv_udp(&mut self, batch: &mut PacketBatch) -> io::Result<usize>;
    /// Sends datagrams `from..batch.len()` (GSO when `segment_size` is set).
    fn send_udp(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize>;
    /// Reads up to `batch.capacity()` packets from the TUN queue into slots
    /// `0..n`, sets `batch.len()` and returns `n`; `Ok(0)` when empty.
    fn read_tun(&mut self, batch: &mut PacketBatch) -> io::Result<usize>;
    /// Writes packets `from..batch.len()` to the TUN queue.
    fn write_tun(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize>;
    /// [`read_tun`](Self::read_tun) and [`recv_udp`](Self::recv_udp) in
    /// one go (io_uring: one submission for both); returns both counts.
    /// An error of either call is returned after both ran.
    fn read_both(&mut self, tun: &mut PacketBatch, udp: &mut PacketBatch) -> io::Result<(usize, usize)> {
        let t = self.read_tun(tun);
        let u = self.recv_udp(udp);
        Ok((t?, u?))
    }
    /// Blocks until one of `interest` is ready or `timeout` passes (`None`:
    /// no limit). Returns what is ready (may be empty on timeout or EINTR).
    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Interest>;
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
}

/// A set of readiness conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// UDP socket readable.
    pub udp_read: bool,
    /// UDP socket writable.
    pub udp_write: bool,
    /// TUN queue readable.
    pub tun_read: bool,
    /// TUN queue writable.
    pub tun_write: bool,
}

impl Interest {
    /// Both fds readable: the usual worker wait.
    pub const READ: Interest =
        Interest { udp_read: true, udp_write: false, tun_read: true, tun_write: false };

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        !(self.udp_read || self.udp_write || self.tun_read || self.tun_write)
    }
}

/// A concrete backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// io_uring submissions.
    Uring,
    /// recvmmsg/sendmmsg and read/write.
    Syscall,
}

/// What the operator asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// io_uring when usable, else syscalls.
    #[default]
    Auto,
    /// Force io_uring (fails at open if unusable).
    Uring,
    /// Force syscalls.
    Syscall,
}

impl FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "syscall" | "syscalls" => Ok(BackendChoice::Syscall),
            other => Err(format!("unknown I/O backend {other:?} (auto, uring, syscall)")),
        }
    }
}

impl BackendChoice {
    /// Resolves the choice on this machine (probes io_uring for `Auto`).
    pub fn resolve(self) -> BackendKind {
        match self {
            BackendChoice::Auto if uring_usable().is_ok() => BackendKind::Uring,
            BackendChoice::Auto | BackendChoice::Syscall => BackendKind::Syscall,
            BackendChoice::Uring => BackendKind::Uring,
        }
    }
}

/// Whether io_uring can be used here; the error says why not.
pub fn uring_usable() -> io::Result<()> {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        && s.trim() == "2"
    {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "kernel.io_uring_disabled = 2"));
    }
    super::uring::probe()
}

/// Either backend, dispatched statically.
// One per worker and never moved on the hot path, so the size gap between
// the variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum AnyIo {
    /// The io_uring backend.
    Uring(UringIo),
    /// The syscall backend.
    Syscall(SyscallIo),
}

impl AnyIo {
    /// Opens the backend of `kind` over a worker's socket and TUN queue
    /// (either may be absent; calls on an absent one fail with
    /// `NotConnected`).
    pub fn open(kind: BackendKind, udp: Option<Socket>, tun: Option<TunQueue>) -> io::Result<AnyIo> {
        Ok(match kind {
            BackendKind::Uring => AnyIo::Uring(UringIo::new(udp, tun)?),
            BackendKind::Syscall => AnyIo::Syscall(SyscallIo::new(udp, tun)?),
        })
    }

    /// How often an io_uring multishot receive ran out of provided buffers
    /// (0 for the syscall backend).
    pub fn ring_nobufs(&self) -> u64 {
        match self {
            AnyIo::Uring(io) => io.stats().nobufs,
            AnyIo::Syscall(_) => 0,
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $io:ident => $e:expr) => {
        match $self {
            AnyIo::Uring($io) => $e,
            AnyIo::Syscall($io) => $e,
        }
    };
}

impl PacketIo for AnyIo {
    fn recv_udp(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        dispatch!(self, io => io.recv_udp(batch))
    }
    fn send_udp(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize> {
        dispatch!(self, io => io.send_udp(batch, from))
    }
    fn read_tun(&mut self, batch: &mut PacketBatch) -> io::Result<usize> {
        dispatch!(self, io => io.read_tun(batch))
    }
    fn write_tun(&mut self, batch: &PacketBatch, from: usize) -> io::Result<usize> {
        dispatch!(self, io => io.write_tun(batch, from))
    }
    fn read_both(&mut self, tun: &mut PacketBatch, udp: &mut PacketBatch) -> io::Result<(usize, usize)> {
        dispatch!(self, io => io.read_both(tun, udp))
    }
    fn wait(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Interest> {
        dispatch!(self, io => io.wait(interest, timeout))
    }
    fn kind(&self) -> BackendKind {
        dispatch!(self, io => io.kind())
    }
}

/// The fds both backends poll on, and the shared `poll(2)` wait.
pub(crate) fn poll_wait(
    udp: Option<i32>,
    tun: Option<i32>,
    interest: Interest,
    timeout: Option<Duration>,
) -> io::Result<Interest> {
    let r = poll_fds(
        [
            (udp.unwrap_or(-1), poll_events(interest.udp_read, interest.udp_write)),
            (tun.unwrap_or(-1), poll_events(interest.tun_read, interest.tun_write)),
        ],
        timeout,
    )?;
    Ok(Interest {
        udp_read: interest.udp_read && poll_hit(r[0], libc::POLLIN),
        udp_write: interest.udp_write && poll_hit(r[0], libc::POLLOUT),
        tun_read: interest.tun_read && poll_hit(r[1], libc::POLLIN),
        tun_write: interest.tun_write && poll_hit(r[1], libc::POLLOUT),
    })
}

/// `poll(2)` on `N` fds with their events (an fd with no events is
/// skipped); returns each fd's revents, all zero when a signal cut the
/// wait short.
pub(crate) fn poll_fds<const N: usize>(
    fds: [(i32, libc::c_short); N],
    timeout: Option<Duration>,
) -> io::Result<[libc::c_short; N]> {
    // poll ignores negative fds.
    let mut p =
        fds.map(|(fd, events)| libc::pollfd { fd: if events == 0 { -1 } else { fd }, events, revents: 0 });
    let ms = match timeout {
        None => -1,
        Some(d) => libc::c_int::try_from(d.as_millis()).unwrap_or(libc::c_int::MAX),
    };
    // SAFETY: `p` is a live array of `N` pollfd structs, length passed.
    let rc = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok([0; N]) } else { Err(e) };
    }
    Ok(p.map(|f| f.revents))
}

/// The poll events for a read and/or write interest.
pub(crate) fn poll_events(read: bool, write: bool) -> libc::c_short {
    (if read { libc::POLLIN } else { 0 }) | (if write { libc::POLLOUT } else { 0 })
}

/// Whether `revents` answer `mask`; an error or hang-up counts, so the
/// next call on the fd reports it.
pub(crate) fn poll_hit(revents: libc::c_short, mask: libc::c_short) -> bool {
    revents & (mask | libc::POLLERR | libc::POLLHUP) != 0
}

/// The error for calls on an fd the backend was opened without.
pub(crate) fn not_connected(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, format!("backend has no {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_parses() {
        assert_eq!("auto".parse(), Ok(BackendChoice::Auto));
        assert_eq!("io_uring".parse(), Ok(BackendChoice::Uring));
        assert_eq!("syscall".parse(), Ok(BackendChoice::Syscall));
        assert!("epoll".parse::<BackendChoice>().is_err());
        assert_eq!(BackendChoice::Syscall.resolve(), BackendKind::Syscall);
        assert_eq!(BackendChoice::Uring.resolve(), BackendKind::Uring);
    }
}
