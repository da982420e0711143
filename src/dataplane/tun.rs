//! The TUN device: one multi-queue Linux TUN interface, one queue fd per
//! worker, with `IFF_VNET_HDR` offloads probed at start.
//!
//! Creation, queue cloning, MTU and addresses go through tun-rs
//! (`DeviceBuilder` with `multi_queue`, `SyncDevice::try_clone` for each
//! extra queue; MTU and IPv6 addresses are ioctls, the IPv4 address goes
//! through tun-rs' netconfig backend). Nothing here spawns `ip`.
//!
//! Offloads: with `vnet_hdr` on, every read and write on a queue carries a
//! 10-byte `virtio_net_hdr` first (see [`super::vnet`]). tun-rs sets its own
//! fixed offload mask; after all queues exist this module replaces it with
//! `TUNSETOFFLOAD` built from [`TunConfig`], probing downwards: first
//! `TUN_F_CSUM` plus the wanted TSO4/TSO6/USO4+USO6 bits; if the kernel
//! rejects that (`EINVAL`, e.g. USO before Linux 6.2) it retries without
//! USO, then checksum-only. The mask is device-wide state shared by all
//! queues. [`TunOffloads`] reports what the kernel accepted.
//!
//! With `TUN_F_CSUM` on, packets read may carry a partial L4 checksum
//! (`VnetHdr::NEEDS_CSUM`): the reader must complete it
//! ([`super::vnet::complete_checksum`]) or segment it before sealing. With
//! TSO/USO on, packets read may be super-packets up to 64 KiB.
//!
//! Queue fds are non-blocking; the backends wait with poll.
//!
//! Non-goals: routes (the control thread's job), TAP mode.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use super::batch::{PacketBatch, PacketMeta};
use super::vnet::VNET_HDR_LEN;

/// What to ask of the TUN device. Each offload can be turned off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Number of queues (one per worker), at least 1.
    pub queues: usize,
    /// Interface MTU.
    pub mtu: u16,
    /// Addresses with prefix lengths to put on the interface.
    pub addrs: Vec<(IpAddr, u8)>,
    /// Open queues with `IFF_VNET_HDR` (needed for any offload below).
    pub vnet_hdr: bool,
    /// Ask for TCP segmentation offload over IPv4 (needs `vnet_hdr`).
    pub tso4: bool,
    /// Ask for TCP segmentation offload over IPv6 (needs `vnet_hdr`).
    pub tso6: bool,
    /// Ask for UDP segmentation offload, v4 and v6 (needs `vnet_hdr`, Linux 6.2+).
    pub uso: bool,
}

impl TunConfig {
    /// A config with all offloads on, one queue, MTU 1400 and no addresses.
    pub fn new(name: &str) -> TunConfig {
        TunConfig {
            name: name.to_owned(),
            queues: 1,
            mtu: 1400,
            addrs: Vec::new(),
            vnet_hdr: true,
            tso4: true,
            tso6: true,
            uso: true,
        }
    }
}

/// Offloads the kernel accepted for the device (the probed result).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunOffloads {
    /// Packets carry a `virtio_net_hdr`.
    pub vnet_hdr: bool,
    /// `TUN_F_CSUM`: packets may carry partial checksums.
    pub csum: bool,
    /// `TUN_F_TSO4`.
    pub tso4: bool,
    /// `TUN_F_TSO6`.
    pub tso6: bool,
    /// `TUN_F_USO4 | TUN_F_USO6`.
    pub uso: bool,
}

impl TunOffloads {
    /// The `TUN_F_*` mask these offloads stand for.
    pub fn mask(&self) -> libc::c_uint {
        let mut m = 0;
        if self.csum {
            m |= libc::TUN_F_CSUM;
        }
        if self.tso4 {
            m |= libc::TUN_F_TSO4;
        }
        if self.tso6 {
            m |= libc::TUN_F_TSO6;
        }
        if self.uso {
            m |= libc::TUN_F_USO4 | libc::TUN_F_USO6;
        }
        m
    }
}

/// One queue of the TUN device: a non-blocking fd owned by one worker.
pub struct TunQueue {
    dev: tun_rs::SyncDevice,
    vnet_hdr_len: usize,
}

impl std::fmt::Debug for TunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunQueue")
            .field("fd", &self.as_raw_fd())
            .field("vnet_hdr_len", &self.vnet_hdr_len)
            .finish()
    }
}

impl TunQueue {
    /// Bytes of `virtio_net_hdr` before each packet on this fd (0 or 10).
    pub fn vnet_hdr_len(&self) -> usize {
        self.vnet_hdr_len
    }

    /// Reads one packet (with its virtio header, if any) into `buf`.
    /// `WouldBlock` when the queue is empty.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid writable region of `buf.len()` bytes for
        // the duration of the call and the fd is owned by `self.dev`.
        let n = unsafe { libc::read(self.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Writes one packet (with its virtio header, if any) from `buf`.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid readable region of `buf.len()` bytes for
        // the duration of the call and the fd is owned by `self.dev`.
        let n = unsafe { libc::write(self.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Reads packets into slots `0..n` with one `read` each until the queue
    /// is empty or the batch full; sets `batch.len()` and returns `n`.
    /// An error is returned only when no packet was read.
    pub fn read_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        batch.clear();
        let mut n = 0;
        while n < batch.capacity() {
            let Some(area) = batch.recv_area(n) else { break };
            match self.read(area) {
                Ok(len) => {
                    batch.set_received(n, PacketMeta { len, ..PacketMeta::EMPTY });
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break, // report what we have; the error recurs next call
            }
        }
        batch.set_len(n);
        Ok(n)
    }

    /// Writes packets `from..batch.len()` with one `write` each, with the
    /// send semantics of [`super::backend::PacketIo`].
    pub fn write_batch(&self, batch: &PacketBatch, from: usize) -> io::Result<usize> {
        let mut i = from;
        while i < batch.len() {
            let Some(pkt) = batch.packet(i) else { break };
            match self.write(pkt) {
                Ok(_) => i += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if i == from => return Err(e),
                Err(_) => break,
            }
        }
        Ok(i - from)
    }
}

impl AsRawFd for TunQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }
}

/// An open multi-queue TUN device.
#[derive(Debug)]
pub struct TunDevice {
    name: String,
    queues: Vec<TunQueue>,
    offloads: TunOffloads,
}

impl TunDevice {
    /// Creates the interface, sets MTU and addresses, brings it up, opens
    /// `cfg.queues` queues and probes the offloads.
    pub fn open(cfg: &TunConfig) -> io::Result<TunDevice> {
        if cfg.queues == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "TUN needs at least one queue"));
        }
        let mut builder = tun_rs::DeviceBuilder::new()
            .name(cfg.name.clone())
            .mtu(cfg.mtu)
            .multi_queue(true)
            .offload(cfg.vnet_hdr)
            .enable(true);
        let mut extra_v4 = Vec::new();
        let mut have_v4 = false;
        for &(addr, prefix) in &cfg.addrs {
            match addr {
                IpAddr::V4(a) if !have_v4 => {
                    builder = builder.ipv4(a, prefix, None);
                    have_v4 = true;
                }
                IpAddr::V4(a) => extra_v4.push((a, prefix)),
                IpAddr::V6(a) => builder = builder.ipv6(a, prefix),
            }
        }
        let first = builder.build_sync()?;
        for (a, prefix) in extra_v4 {
            first.add_address_v4(a, prefix)?;
        }
        let mut devs = Vec::with_capacity(cfg.queues);
        for _ in 1..cfg.queues {
            devs.push(first.try_clone()?);
        }
        devs.insert(0, first);
        let offloads = if cfg.vnet_hdr {
            let fd = devs[0].as_raw_fd();
            set_vnet_le(fd);
            probe_offloads(fd, cfg)?
        } else {
            TunOffloads::default()
        };
        let name = devs[0].name()?;
        let vnet_hdr_len = if cfg.vnet_hdr { VNET_HDR_LEN } else { 0 };
        let mut queues = Vec::with_capacity(devs.len());
        for dev in devs {
            dev.set_nonblocking(true)?;
            queues.push(TunQueue { dev, vnet_hdr_len });
        }
        Ok(TunDevice { name, queues, offloads })
    }

    /// The interface name the kernel gave.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offloads the kernel accepted.
    pub fn offloads(&self) -> TunOffloads {
        self.offloads
    }

    /// The queues, one per worker.
    pub fn queues(&self) -> &[TunQueue] {
        &self.queues
    }

    /// Hands the queues out (the interface lives while any queue is open).
    pub fn into_queues(self) -> Vec<TunQueue> {
        self.queues
    }
}

/// Asks for little-endian virtio headers (what [`super::vnet`] parses). On
/// little-endian hosts that is already the default, so failure is ignored
/// there; on big-endian hosts a kernel without the ioctl would be caught by
/// the header tests.
fn set_vnet_le(fd: RawFd) {
    if cfg!(target_endian = "little") {
        return;
    }
    let one: libc::c_int = 1;
    // SAFETY: TUNSETVNETLE reads one c_int from the pointer, which points to
    // a live local; fd is an open TUN fd.
    unsafe { libc::ioctl(fd, libc::TUNSETVNETLE as _, &one) };
}

/// Sets the offload mask, stepping down until the kernel accepts one.
fn probe_offloads(fd: RawFd, cfg: &TunConfig) -> io::Result<TunOffloads> {
    let want = TunOffloads { vnet_hdr: true, csum: true, tso4: cfg.tso4, tso6: cfg.tso6, uso: cfg.uso };
    let candidates = [
        want,
        TunOffloads { uso: false, ..want },
        TunOffloads { uso: false, tso4: false, tso6: false, ..want },
        TunOffloads { vnet_hdr: true, ..TunOffloads::default() },
    ];
    let mut last = None;
    for c in candidates {
        match set_offload(fd, c.mask()) {
            Ok(()) => return Ok(c),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("TUNSETOFFLOAD rejected every mask")))
}

fn set_offload(fd: RawFd, mask: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long
    // mask), not through a pointer; fd is an open TUN fd.
    let rc = unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD as _, libc::c_ulong::from(mask)) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offload_mask_bits() {
        let all = TunOffloads { vnet_hdr: true, csum: true, tso4: true, tso6: true, uso: true };
        // TUN_F_CSUM 0x01, TSO4 0x02, TSO6 0x04, USO4 0x20, USO6 0x40 (linux/if_tun.h).
        assert_eq!(all.mask(), 0x01 | 0x02 | 0x04 | 0x20 | 0x40);
        assert_eq!(TunOffloads::default().mask(), 0);
        assert_eq!(TunOffloads { csum: true, tso6: true, ..TunOffloads::default() }.mask(), 0x05);
    }

    #[test]
    fn zero_queues_rejected() {
        let cfg = TunConfig { queues: 0, ..TunConfig::new("esptun-x") };
        assert_eq!(TunDevice::open(&cfg).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
