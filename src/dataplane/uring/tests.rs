//! Unit tests of the io_uring backend over UDP loopback sockets: the
//! multishot path (many datagrams, buffer-ring exhaustion and re-arm, GRO
//! segment size and TOS kept, copy fallback, wait, drop) and the per-slot
//! fallback. TUN multishot is covered in tests/uring_multishot.rs (root).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;
use crate::dataplane::batch::PacketMeta;
use crate::dataplane::syscall::SyscallIo;
use crate::dataplane::udp::{UdpConfig, UdpGroup};
use crate::esp::buf::{DEFAULT_CAPACITY, HEADROOM};

#[test]
fn adaptive_batch_grows_and_shrinks_within_bounds() {
    assert_eq!(UringIo::adapt(8, 8, 64), 16);
    assert_eq!(UringIo::adapt(8, 0, 64), MIN_BATCH);
    assert_eq!(UringIo::adapt(64, 64, 64), 64, "capped by batch capacity");
    assert_eq!(UringIo::adapt(32, 3, 64), 6, "twice the last count");
    assert_eq!(UringIo::adapt(32, 0, 64), MIN_BATCH);
    assert_eq!(UringIo::adapt(32, 10, 64), 20);
    assert_eq!(UringIo::adapt(8, 8, 1000), 16);
    assert_eq!(UringIo::adapt(256, 256, 1000), PER_SLOT_MAX);
}

#[test]
fn ring_sizes() {
    assert_eq!(ring_entries(64, DEFAULT_CAPACITY), 64);
    assert_eq!(ring_entries(3, DEFAULT_CAPACITY), 8);
    assert_eq!(ring_entries(1000, 2048), 256);
    // 64 KiB slots: at most 8 MiB per ring.
    assert_eq!(ring_entries(64, 65673), 64);
    assert_eq!(ring_entries(256, 65673), 64);
    assert_eq!(ring_entries(64, 1 << 20), 8);
}

/// A receiver (UringIo, GRO as asked) and its address, or None when
/// io_uring is unusable here.
fn receiver(gro: bool) -> Option<(UringIo, SocketAddr, bool)> {
    if let Err(e) = crate::dataplane::backend::uring_usable() {
        eprintln!("skipped: io_uring unusable: {e}");
        return None;
    }
    let g = UdpGroup::bind(&UdpConfig { gro, ..UdpConfig::new("127.0.0.1:0".parse().unwrap(), 1) }).unwrap();
    let (addr, got_gro) = (g.local_addr(), g.features().gro);
    let s = g.into_sockets().pop().unwrap();
    Some((UringIo::new(Some(s), None).unwrap(), addr, got_gro))
}

/// A receiver whose UDP receive went multishot at its first (empty)
/// call, with a batch of `slots` x `slot_len` (HEADROOM); None, saying
/// why, where io_uring or multishot recvmsg is unavailable.
fn multishot_receiver(slots: usize, slot_len: usize) -> Option<(UringIo, SocketAddr, PacketBatch)> {
    let (mut io, addr, _) = receiver(false)?;
    let mut b = PacketBatch::with_headroom(slots, slot_len, HEADROOM);
    assert_eq!(io.recv_udp(&mut b).unwrap(), 0);
    if io.mode().udp != RxMode::Multishot {
        eprintln!("skipped: no multishot recvmsg here ({:?})", io.mode());
        return None;
    }
    Some((io, addr, b))
}

fn payload(i: usize) -> Vec<u8> {
    let len = 20 + (i * 37) % 1400;
    (0..len).map(|k| (i + k) as u8).collect()
}

/// Receives until `want` datagrams came (waiting in between), at most 5 s.
fn recv_n(io: &mut UringIo, b: &mut PacketBatch, want: usize, out: &mut Vec<(Vec<u8>, PacketMeta)>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.len() < want {
        assert!(Instant::now() < deadline, "got {} of {want} datagrams", out.len());
        let n = io.recv_udp(b).unwrap();
        for i in 0..n {
            out.push((b.packet(i).unwrap().to_vec(), *b.meta(i).unwrap()));
        }
        if n == 0 {
            io.wait(Interest::READ, Some(Duration::from_millis(100))).unwrap();
        }
    }
}

#[test]
fn multishot_receives_many_datagrams_zero_copy() {
    let Some((mut io, addr, mut b)) = multishot_receiver(64, DEFAULT_CAPACITY) else { return };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    const N: usize = 2000;
    let mut got = Vec::new();
    for i in 0..N {
        tx.send_to(&payload(i), addr).unwrap();
        if i % 50 == 49 {
            recv_n(&mut io, &mut b, i + 1, &mut got);
        }
    }
    recv_n(&mut io, &mut b, N, &mut got);
    for (i, (p, m)) in got.iter().enumerate() {
        assert_eq!(p, &payload(i), "datagram {i}");
        assert_eq!(m.addr, tx.local_addr().unwrap());
        assert!(!m.truncated);
        assert!(m.offset >= HEADROOM, "headroom kept in front of the payload");
    }
    let st = io.stats();
    assert_eq!(io.mode().udp, RxMode::Multishot, "still multishot: {st:?}");
    assert_eq!((st.swapped, st.copied), (N as u64, 0), "every packet by buffer exchange");
}

#[test]
fn ring_exhaustion_ends_the_op_and_rearm_gets_the_rest() {
    // 8 slots: an 8-buffer ring.
    let Some((mut io, addr, mut b)) = multishot_receiver(8, 2048) else { return };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    const N: usize = 200;
    for i in 0..N {
        tx.send_to(&payload(i), addr).unwrap();
    }
    // All sent before any receive: the 8 buffers fill, the kernel ends
    // the op with ENOBUFS, the rest waits in the socket for the re-arm.
    std::thread::sleep(Duration::from_millis(50));
    let mut got = Vec::new();
    recv_n(&mut io, &mut b, N, &mut got);
    for (i, (p, _)) in got.iter().enumerate() {
        assert_eq!(p, &payload(i), "datagram {i}, in order");
    }
    let st = io.stats();
    assert!(st.nobufs >= 1, "ring ran dry: {st:?}");
    assert!(st.arms >= 2, "re-armed: {st:?}");
}

#[test]
fn gro_segment_size_and_tos_come_through() {
    let Some((mut io, addr, gro)) = receiver(true) else { return };
    let g = UdpGroup::bind(&UdpConfig::new("127.0.0.1:0".parse().unwrap(), 1)).unwrap();
    let gso = g.features().gso;
    let sender = g.into_sockets().pop().unwrap();
    let from = sender.local_addr().unwrap().as_socket().unwrap();
    let mut tx = SyscallIo::new(Some(sender), None).unwrap();
    let mut b = PacketBatch::with_headroom(8, 65673, HEADROOM);
    io.recv_udp(&mut b).unwrap();
    if io.mode().udp != RxMode::Multishot || !gro || !gso {
        eprintln!("skipped: multishot {:?}, gro {gro}, gso {gso}", io.mode());
        return;
    }
    // One GSO send of 4 x 1000 + 500 bytes, ECT(0).
    let data: Vec<u8> = (0..4500u32).map(|k| (k % 251) as u8).collect();
    let mut out = PacketBatch::new(1, 8192);
    assert!(out.push(&data, PacketMeta { addr, tos: 0x02, segment_size: 1000, ..PacketMeta::EMPTY }));
    assert_eq!(tx.send_udp(&out, 0).unwrap(), 1);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.iter().map(|(p, _): &(Vec<u8>, PacketMeta)| p.len()).sum::<usize>() < data.len() {
        assert!(Instant::now() < deadline);
        recv_n(&mut io, &mut b, got.len() + 1, &mut got);
    }
    assert_eq!(got.len(), 1, "one coalesced datagram");
    let (p, m) = &got[0];
    assert_eq!(p, &data);
    assert_eq!((m.segment_size, m.tos, m.addr), (1000, 0x02, from));
}

#[test]
fn a_batch_of_another_size_gets_copies() {
    let Some((mut io, addr, _b)) = multishot_receiver(16, 2048) else { return };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut other = PacketBatch::with_headroom(16, 4096, 32);
    for i in 0..10 {
        tx.send_to(&payload(i), addr).unwrap();
    }
    let mut got = Vec::new();
    recv_n(&mut io, &mut other, 10, &mut got);
    for (i, (p, m)) in got.iter().enumerate() {
        assert_eq!(p, &payload(i));
        assert_eq!(m.offset, 32, "copied to the batch's own headroom");
    }
    assert_eq!(io.stats().copied, 10);
}

#[test]
fn wait_wakes_on_a_multishot_completion() {
    let Some((mut io, addr, mut b)) = multishot_receiver(8, 2048) else { return };
    // Nothing there: the wait times out.
    let t = Instant::now();
    assert_eq!(io.wait(Interest::READ, Some(Duration::from_millis(50))).unwrap(), Interest::default());
    assert!(t.elapsed() >= Duration::from_millis(40));
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"wake", addr).unwrap();
    });
    let t = Instant::now();
    let r = io.wait(Interest::READ, Some(Duration::from_secs(5))).unwrap();
    assert!(r.udp_read, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(io.recv_udp(&mut b).unwrap(), 1);
    assert_eq!(b.packet(0), Some(&b"wake"[..]));
    // A write interest is polled alongside the ring.
    let w = Interest { udp_write: true, ..Interest::READ };
    assert!(io.wait(w, Some(Duration::from_secs(1))).unwrap().udp_write);
    h.join().unwrap();
}

#[test]
fn drop_with_armed_ops_and_filled_buffers_drains() {
    let Some((mut io, addr, _b)) = multishot_receiver(8, 2048) else { return };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..4 {
        tx.send_to(&payload(i), addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(io.udp_rx.live);
    assert!(io.shutdown(), "the kernel ended the op in time");
    assert!(!io.udp_rx.live);
    drop(io); // shuts down again (nothing armed): frees the pool
}

#[test]
fn switched_off_or_forced_per_slot_still_receives() {
    let Some((mut io, addr, _)) = receiver(false) else { return };
    io.multishot = false;
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut b = PacketBatch::with_headroom(8, 2048, HEADROOM);
    io.recv_udp(&mut b).unwrap();
    assert_eq!(io.mode().udp, RxMode::PerSlot);
    for i in 0..20 {
        tx.send_to(&payload(i), addr).unwrap();
    }
    let mut got = Vec::new();
    recv_n(&mut io, &mut b, 20, &mut got);
    assert_eq!(got[19].0, payload(19));
    assert_eq!(io.stats(), UringStats::default());
}

#[test]
fn pending_receives_are_flagged_and_run_once_per_call() {
    let Some((mut io, addr, _)) = receiver(false) else { return };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut b = PacketBatch::with_headroom(64, 2048, HEADROOM);
    io.recv_udp(&mut b).unwrap();
    if io.mode().udp != RxMode::Multishot || io.taskrun == TaskRun::Signal {
        eprintln!("skipped: multishot {:?}, task work {:?}", io.mode(), io.taskrun);
        return;
    }
    for i in 0..10 {
        tx.send_to(&payload(i), addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    // Deferred: the receives wait as task work until this thread enters
    // io_uring; the ring says so, and one receive call runs them. (Coop
    // runs them at any syscall exit, e.g. the sleep's.)
    if io.taskrun == TaskRun::Defer {
        assert!(io.ring.submission().taskrun(), "task work flagged");
    }
    assert_eq!(io.recv_udp(&mut b).unwrap(), 10);
}
