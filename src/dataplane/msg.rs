//! `msghdr` scratch shared by both backends: socket addresses, iovecs and
//! control messages (TOS/traffic class, UDP_SEGMENT, UDP_GRO) for a batch.
//!
//! The arrays are allocated once (grown to the largest batch seen) and hold
//! raw pointers into the caller's [`PacketBatch`] only for the duration of
//! one backend call; they are rewritten before every use.

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr;

use super::batch::{PacketBatch, PacketMeta};

/// Control-message buffer per packet, aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct CmsgBuf([u8; CMSG_BUF_LEN]);

/// Room for four int-sized control messages (24 bytes each on 64-bit);
/// receive gets at most three (TOS, traffic class, GRO).
const CMSG_BUF_LEN: usize = 96;

/// Per-batch `msghdr` scratch.
pub(crate) struct MsgScratch {
    pub(crate) hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<CmsgBuf>,
    /// Whether the socket is AF_INET6 (v4 peers are then v4-mapped).
    v6_socket: bool,
}

// SAFETY: the raw pointers inside the scratch arrays are only dereferenced
// by the kernel during a backend call that holds `&mut self`; between calls
// they are stale and never read, so moving the scratch to another thread is
// sound.
unsafe impl Send for MsgScratch {}

impl MsgScratch {
    /// Empty scratch for a socket of the given family.
    pub(crate) fn new(v6_socket: bool) -> MsgScratch {
        MsgScratch { hdrs: Vec::new(), iovs: Vec::new(), addrs: Vec::new(), cmsgs: Vec::new(), v6_socket }
    }

    /// Grows the arrays to `n` entries (allocates only when a larger batch
    /// than ever before is seen).
    fn ensure(&mut self, n: usize) {
        if self.hdrs.len() >= n {
            return;
        }
        // SAFETY: mmsghdr, iovec and sockaddr_storage are plain C structs for
        // which all-zero bytes are a valid value.
        let (h, io, a) = unsafe {
            (
                mem::zeroed::<libc::mmsghdr>(),
                mem::zeroed::<libc::iovec>(),
                mem::zeroed::<libc::sockaddr_storage>(),
            )
        };
        self.hdrs.resize(n, h);
        self.iovs.resize(n, io);
        self.addrs.resize(n, a);
        self.cmsgs.resize(n, CmsgBuf([0; CMSG_BUF_LEN]));
    }

    /// Points headers `0..n` at slots `0..n` of `batch` for receiving.
    pub(crate) fn prepare_recv(&mut self, batch: &mut PacketBatch, n: usize) {
        self.ensure(n);
        let recv_len = batch.recv_len();
        for i in 0..n {
            self.iovs[i] = libc::iovec { iov_base: batch.recv_ptr(i).cast(), iov_len: recv_len };
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = ptr::from_mut(&mut self.addrs[i]).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = ptr::from_mut(&mut self.iovs[i]);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.cmsgs[i].0.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = CMSG_BUF_LEN as _;
            h.msg_hdr.msg_flags = 0;
        }
    }

    /// Fills `batch`'s metadata for slot `i` from header `i` after the
    /// kernel received `len` bytes into it.
    pub(crate) fn finish_recv(&self, i: usize, len: usize, batch: &mut PacketBatch) {
        let h = &self.hdrs[i].msg_hdr;
        let addr = sockaddr_to_std(&self.addrs[i], h.msg_namelen).unwrap_or(PacketMeta::EMPTY.addr);
        let (tos, segment_size) = parse_cmsgs(h);
        let truncated = h.msg_flags & libc::MSG_TRUNC != 0;
        batch.set_received(i, PacketMeta { len, addr, tos, segment_size, truncated, ..PacketMeta::EMPTY });
    }

    /// Fills headers `0..n` for sending slots `from..from + n` of `batch`.
    pub(crate) fn prepare_send(&mut self, batch: &PacketBatch, from: usize, n: usize) {
        self.ensure(n);
        for j in 0..n {
            let i = from + j;
            let meta = batch.meta(i).copied().unwrap_or(PacketMeta::EMPTY);
            let pkt = batch.packet(i).unwrap_or(&[]);
            self.iovs[j] = libc::iovec {
                // The kernel only reads through this pointer (sendmsg).
                iov_base: pkt.as_ptr().cast_mut().cast(),
                iov_len: pkt.len(),
            };
            let namelen = std_to_sockaddr(meta.addr, self.v6_socket, &mut self.addrs[j]);
            let controllen = build_send_cmsgs(&mut self.cmsgs[j], &meta, self.v6_socket);
            let h = &mut self.hdrs[j];
            h.msg_len = 0;
            h.msg_hdr.msg_name = ptr::from_mut(&mut self.addrs[j]).cast();
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_iov = ptr::from_mut(&mut self.iovs[j]);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control =
                if controllen == 0 { ptr::null_mut() } else { self.cmsgs[j].0.as_mut_ptr().cast() };
            h.msg_hdr.msg_controllen = controllen as _;
            h.msg_hdr.msg_flags = 0;
        }
    }
}

/// Converts a kernel socket address; v4-mapped IPv6 becomes IPv4.
pub(crate) fn sockaddr_to_std(sa: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(sa.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, the
            // kernel wrote at least its size, and sockaddr_storage is aligned
            // for every sockaddr type.
            let a = unsafe { &*ptr::from_ref(sa).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*ptr::from_ref(sa).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let port = u16::from_be(a.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id)),
            })
        }
        _ => None,
    }
}

/// Writes `addr` into `out` in the socket's family (IPv4 peers of an IPv6
/// socket as v4-mapped) and returns the address length.
pub(crate) fn std_to_sockaddr(
    addr: SocketAddr,
    v6_socket: bool,
    out: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    let addr = match addr {
        SocketAddr::V4(a) if v6_socket => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        a => a,
    };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is a plain C struct; all-zero is valid.
            let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in; we write one whole value.
            unsafe { ptr::from_mut(out).cast::<libc::sockaddr_in>().write(sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 is a plain C struct; all-zero is valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: as above, for sockaddr_in6.
            unsafe { ptr::from_mut(out).cast::<libc::sockaddr_in6>().write(sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads TOS/traffic class and the GRO segment size from received cmsgs.
// msg_controllen is usize on glibc but u32 on musl: the cast is for musl.
#[allow(clippy::unnecessary_cast)]
fn parse_cmsgs(h: &libc::msghdr) -> (u8, u16) {
    let (mut tos, mut seg) = (0u8, 0u16);
    if h.msg_control.is_null() || (h.msg_controllen as usize) < mem::size_of::<libc::cmsghdr>() {
        return (tos, seg);
    }
    // SAFETY: msg_control/msg_controllen describe the buffer the kernel
    // filled; CMSG_FIRSTHDR/NXTHDR stay within msg_controllen and return null
    // at the end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(h) };
    while !c.is_null() {
        // SAFETY: `c` is non-null and points to a cmsghdr inside the buffer.
        let cm = unsafe { &*c };
        let data_len = (cm.cmsg_len as usize).saturating_sub(cmsg_hdr_space());
        // SAFETY: CMSG_DATA points just past the header inside the buffer;
        // we read at most `data_len` bytes, which the kernel wrote.
        let data = unsafe { libc::CMSG_DATA(c) };
        match (cm.cmsg_level, cm.cmsg_type) {
            (libc::SOL_IP, libc::IP_TOS) if data_len >= 1 => {
                // SAFETY: at least one byte of data (checked above).
                tos = unsafe { *data };
            }
            (libc::SOL_IPV6, libc::IPV6_TCLASS) if data_len >= 4 => {
                // SAFETY: at least four bytes of data; read unaligned.
                tos = unsafe { data.cast::<libc::c_int>().read_unaligned() } as u8;
            }
            (libc::SOL_UDP, libc::UDP_GRO) if data_len >= 4 => {
                // SAFETY: at least four bytes of data; read unaligned.
                let v = unsafe { data.cast::<libc::c_int>().read_unaligned() };
                seg = u16::try_from(v).unwrap_or(0);
            }
            _ => {}
        }
        // SAFETY: `c` is a valid header within the buffer described by `h`.
        c = unsafe { libc::CMSG_NXTHDR(h, c) };
    }
    (tos, seg)
}

/// Size of the aligned cmsghdr before the data.
fn cmsg_hdr_space() -> usize {
    // SAFETY: CMSG_LEN is a pure size computation.
    unsafe { libc::CMSG_LEN(0) as usize }
}

/// Writes the send-side cmsgs (UDP_SEGMENT, IP_TOS / IPV6_TCLASS) and
/// returns the control length (0 when none are needed).
fn build_send_cmsgs(buf: &mut CmsgBuf, meta: &PacketMeta, v6_socket: bool) -> usize {
    let mut off = 0;
    if meta.segment_size != 0 {
        off +=
            put_cmsg(&mut buf.0[off..], libc::SOL_UDP, libc::UDP_SEGMENT, &meta.segment_size.to_ne_bytes());
    }
    if meta.tos != 0 {
        let v = libc::c_int::from(meta.tos).to_ne_bytes();
        if v6_socket && meta.addr.is_ipv6() {
            off += put_cmsg(&mut buf.0[off..], libc::SOL_IPV6, libc::IPV6_TCLASS, &v);
        } else {
            off += put_cmsg(&mut buf.0[off..], libc::SOL_IP, libc::IP_TOS, &v);
        }
    }
    off
}

/// Writes one cmsg at the start of `buf`; returns its aligned space.
fn put_cmsg(buf: &mut [u8], level: libc::c_int, ty: libc::c_int, data: &[u8]) -> usize {
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations.
    let (space, len) =
        unsafe { (libc::CMSG_SPACE(data.len() as u32) as usize, libc::CMSG_LEN(data.len() as u32)) };
    let hdr_space = cmsg_hdr_space();
    let Some(dst) = buf.get_mut(..space) else { return 0 };
    dst.fill(0);
    // SAFETY: a zeroed cmsghdr is valid.
    let mut hdr: libc::cmsghdr = unsafe { mem::zeroed() };
    hdr.cmsg_len = len as _;
    hdr.cmsg_level = level;
    hdr.cmsg_type = ty;
    // SAFETY: `dst` has at least `space >= size_of::<cmsghdr>()` bytes;
    // write_unaligned does not require alignment.
    unsafe { dst.as_mut_ptr().cast::<libc::cmsghdr>().write_unaligned(hdr) };
    dst[hdr_space..hdr_space + data.len()].copy_from_slice(data);
    space
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip_v4_v6_and_mapped() {
        // SAFETY: all-zero sockaddr_storage is valid.
        let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let v4: SocketAddr = "192.0.2.7:4500".parse().unwrap();
        let len = std_to_sockaddr(v4, false, &mut ss);
        assert_eq!(libc::c_int::from(ss.ss_family), libc::AF_INET);
        assert_eq!(sockaddr_to_std(&ss, len), Some(v4));
        // On a v6 socket a v4 peer goes out v4-mapped and comes back as v4.
        let len = std_to_sockaddr(v4, true, &mut ss);
        assert_eq!(libc::c_int::from(ss.ss_family), libc::AF_INET6);
        assert_eq!(sockaddr_to_std(&ss, len), Some(v4));
        let v6: SocketAddr = "[2001:db8::1]:4500".parse().unwrap();
        let len = std_to_sockaddr(v6, true, &mut ss);
        assert_eq!(sockaddr_to_std(&ss, len), Some(v6));
        // A short length is rejected.
        assert_eq!(sockaddr_to_std(&ss, 4), None);
    }

    #[test]
    fn send_cmsgs_parse_back() {
        let mut buf = CmsgBuf([0; CMSG_BUF_LEN]);
        let meta = PacketMeta {
            segment_size: 1400,
            tos: 0x02,
            addr: "192.0.2.1:1".parse().unwrap(),
            ..PacketMeta::EMPTY
        };
        let n = build_send_cmsgs(&mut buf, &meta, false);
        if cfg!(target_pointer_width = "64") {
            // Two cmsgs, each a 16-byte cmsghdr plus data padded to 8 bytes.
            assert_eq!(n, 48);
        }
        // SAFETY: all-zero msghdr is valid.
        let mut h: libc::msghdr = unsafe { mem::zeroed() };
        h.msg_control = buf.0.as_mut_ptr().cast();
        h.msg_controllen = n as _;
        // The parser reads IP_TOS as one byte; the int's first byte is the
        // value on little-endian hosts.
        let (tos, _) = parse_cmsgs(&h);
        if cfg!(target_endian = "little") {
            assert_eq!(tos, 0x02);
        }
        // UDP_SEGMENT is not a receive cmsg; GRO is not reported.
        assert_eq!(build_send_cmsgs(&mut buf, &PacketMeta::EMPTY, false), 0);
    }
}
