//! The packet path's I/O layer: TUN and UDP devices, batch buffers and two
//! interchangeable I/O backends. It moves bytes and metadata only; every
//! protocol decision (ESP, SPD, which socket to send on) lives above it.
//!
//! - [`tun`]: multi-queue TUN device with `IFF_VNET_HDR` and probed
//!   TSO4/TSO6/USO offloads (TUNSETOFFLOAD), one non-blocking queue fd per
//!   worker.
//! - [`vnet`]: the 10-byte `virtio_net_hdr` on those queues (pure).
//! - [`udp`]: the SO_REUSEPORT socket group (one socket per worker plus
//!   control), big buffers, TOS/traffic-class receive, probed UDP GSO/GRO,
//!   and the classic-BPF program that steers datagrams by SPI.
//! - [`batch`]: [`batch::PacketBatch`], the per-worker buffer pool every
//!   backend call fills or drains; nothing is allocated per packet.
//! - [`backend`]: the [`backend::PacketIo`] trait, backend choice and
//!   detection ([`backend::BackendChoice`]), static dispatch
//!   ([`backend::AnyIo`]).
//! - [`syscall`]: recvmmsg/sendmmsg + read/write + poll.
//! - [`uring`]: io_uring with one submission per batch.
//! - [`worker`]: one worker thread: TUN queue + UDP socket + engine,
//!   batch by batch.
//! - [`netns`]: run code inside a named network namespace (tests, tools).

pub mod backend;
pub mod batch;
mod msg;
pub mod netns;
pub mod offload;
pub mod syscall;
pub mod tun;
pub mod udp;
pub mod uring;
pub mod vnet;
pub mod worker;
