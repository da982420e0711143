//! The `virtio_net_hdr` that prefixes every packet on a TUN fd opened with
//! `IFF_VNET_HDR` (Linux `include/uapi/linux/virtio_net.h`).
//!
//! esptun uses the 10-byte legacy form (`struct virtio_net_hdr`, the TUN
//! default `vnet_hdr_sz`), without the 2-byte `num_buffers` field of the
//! 12-byte mergeable-buffers form: TUN never merges buffers, so the extra
//! field carries nothing. Fields are little-endian: [`super::tun`] asks the
//! kernel for little-endian headers with `TUNSETVNETLE` where the host is not
//! little-endian already.
//!
//! On read, a header with a `gso_type` other than [`GsoType::NONE`] says the
//! packet is a super-packet (TSO/USO) the reader must split into
//! `gso_size`-byte segments; [`VnetHdr::NEEDS_CSUM`] says the L4 checksum is
//! partial (pseudo-header sum only) and [`complete_checksum`] finishes it.
//! On write, an all-zero header ([`VnetHdr::NONE`]) sends one plain packet.
//!
//! Pure code: no I/O, no allocation; malformed input is an error, never a
//! panic.

use crate::wire::checksum;

/// Length of the header on the TUN fd, in bytes (legacy `virtio_net_hdr`).
pub const VNET_HDR_LEN: usize = 10;

/// The `gso_type` field: which segmentation the super-packet needs. An open
/// newtype so unknown kernel values parse and can be logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GsoType(pub u8);

impl GsoType {
    /// Not a super-packet.
    pub const NONE: GsoType = GsoType(0);
    /// TCP over IPv4 (TSO4).
    pub const TCPV4: GsoType = GsoType(1);
    /// UDP fragmentation offload (UFO, obsolete).
    pub const UDP: GsoType = GsoType(3);
    /// TCP over IPv6 (TSO6).
    pub const TCPV6: GsoType = GsoType(4);
    /// UDP segmentation (USO4/USO6, Linux 6.2+).
    pub const UDP_L4: GsoType = GsoType(5);
    /// Flag bit: the TCP super-packet carries ECN CWR handling.
    pub const ECN: u8 = 0x80;

    /// The segmentation kind with the ECN flag bit cleared.
    pub fn kind(self) -> GsoType {
        GsoType(self.0 & !Self::ECN)
    }

    /// Whether the ECN flag bit is set.
    pub fn ecn(self) -> bool {
        self.0 & Self::ECN != 0
    }
}

/// Errors from parsing or emitting a header, or completing a checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VnetError {
    /// The buffer is shorter than [`VNET_HDR_LEN`].
    #[error("buffer shorter than the virtio_net_hdr")]
    Truncated,
    /// `csum_start`/`csum_offset` point outside the packet.
    #[error("checksum offsets outside the packet")]
    BadChecksumOffsets,
}

/// A parsed `virtio_net_hdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VnetHdr {
    /// `flags`: [`Self::NEEDS_CSUM`], [`Self::DATA_VALID`].
    pub flags: u8,
    /// `gso_type`.
    pub gso_type: GsoType,
    /// `hdr_len`: length of the headers up to and including L4 (a hint;
    /// the kernel may leave it 0 or imprecise, so recompute before trusting).
    pub hdr_len: u16,
    /// `gso_size`: payload bytes per segment of a super-packet.
    pub gso_size: u16,
    /// `csum_start`: offset of the L4 header from the start of the packet.
    pub csum_start: u16,
    /// `csum_offset`: offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Flag: the L4 checksum holds only the pseudo-header sum.
    pub const NEEDS_CSUM: u8 = 1;
    /// Flag: the checksum is already verified.
    pub const DATA_VALID: u8 = 2;
    /// The all-zero header: one plain packet, checksums complete.
    pub const NONE: VnetHdr =
        VnetHdr { flags: 0, gso_type: GsoType::NONE, hdr_len: 0, gso_size: 0, csum_start: 0, csum_offset: 0 };

    /// Parses the header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<VnetHdr, VnetError> {
        let b: &[u8; VNET_HDR_LEN] =
            buf.get(..VNET_HDR_LEN).and_then(|s| s.try_into().ok()).ok_or(VnetError::Truncated)?;
        Ok(VnetHdr {
            flags: b[0],
            gso_type: GsoType(b[1]),
            hdr_len: u16::from_le_bytes([b[2], b[3]]),
            gso_size: u16::from_le_bytes([b[4], b[5]]),
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
        })
    }

    /// Writes the header into the first [`VNET_HDR_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), VnetError> {
        let b: &mut [u8; VNET_HDR_LEN] =
            buf.get_mut(..VNET_HDR_LEN).and_then(|s| s.try_into().ok()).ok_or(VnetError::Truncated)?;
        b[0] = self.flags;
        b[1] = self.gso_type.0;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        Ok(())
    }

    /// Whether the packet is a super-packet to split.
    pub fn is_gso(&self) -> bool {
        self.gso_type.kind() != GsoType::NONE
    }

    /// Whether the L4 checksum is partial.
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::NEEDS_CSUM != 0
    }
}

/// Finishes a partial (`CHECKSUM_PARTIAL`) L4 checksum in `packet` (the IP
/// packet after the virtio header): sums `packet[csum_start..]`, whose
/// checksum field holds the pseudo-header sum, and stores the complement at
/// `csum_start + csum_offset`. Does nothing unless [`VnetHdr::needs_csum`].
pub fn complete_checksum(hdr: &VnetHdr, packet: &mut [u8]) -> Result<(), VnetError> {
    if !hdr.needs_csum() {
        return Ok(());
    }
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field.checked_add(2).is_none_or(|end| end > packet.len()) {
        return Err(VnetError::BadChecksumOffsets);
    }
    let covered = packet.get(start..).ok_or(VnetError::BadChecksumOffsets)?;
    // A sum that folds to 0 is sent as 0xffff (the same value in ones'
    // complement): for UDP a zero field means "no checksum", which IPv6
    // forbids (RFC 8200 §8.1) and receivers drop. Linux's
    // skb_checksum_help does the same (CSUM_MANGLED_0).
    let csum = match !checksum::fold(checksum::sum(covered, 0)) {
        0 => 0xffff,
        c => c,
    };
    let slot = packet.get_mut(field..field + 2).ok_or(VnetError::BadChecksumOffsets)?;
    slot.copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_of_zero_is_sent_as_ffff() {
        // UDP header whose partial sum makes the final checksum 0: with
        // the field holding 0xffff (pseudo sum) and all other words 0,
        // the total folds to 0xffff, whose complement is 0.
        let mut p = [0u8; 8];
        p[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
        let h = VnetHdr { flags: VnetHdr::NEEDS_CSUM, csum_start: 0, csum_offset: 6, ..VnetHdr::NONE };
        complete_checksum(&h, &mut p).unwrap();
        assert_eq!(&p[6..8], &[0xff, 0xff]);
    }

    #[test]
    fn parse_tso4_header_by_hand() {
        // flags NEEDS_CSUM, TCPV4|ECN, hdr_len 66, gso_size 1448, csum_start 20, csum_offset 16.
        let b = [0x01, 0x81, 66, 0, 0xa8, 0x05, 20, 0, 16, 0, 0xee];
        let h = VnetHdr::parse(&b).unwrap();
        assert!(h.needs_csum());
        assert!(h.is_gso());
        assert_eq!(h.gso_type.kind(), GsoType::TCPV4);
        assert!(h.gso_type.ecn());
        assert_eq!(h.hdr_len, 66);
        assert_eq!(h.gso_size, 1448);
        assert_eq!(h.csum_start, 20);
        assert_eq!(h.csum_offset, 16);
    }

    #[test]
    fn emit_writes_little_endian_fields_and_only_ten_bytes() {
        let h = VnetHdr {
            flags: VnetHdr::NEEDS_CSUM,
            gso_type: GsoType::UDP_L4,
            hdr_len: 0x0102,
            gso_size: 0x0304,
            csum_start: 0x0506,
            csum_offset: 6,
        };
        let mut b = [0xaa; 12];
        h.emit(&mut b).unwrap();
        assert_eq!(b, [1, 5, 0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 6, 0, 0xaa, 0xaa]);
        assert_eq!(VnetHdr::parse(&b).unwrap(), h);
    }

    #[test]
    fn none_header_is_all_zero() {
        let mut b = [0xff; VNET_HDR_LEN];
        VnetHdr::NONE.emit(&mut b).unwrap();
        assert_eq!(b, [0; VNET_HDR_LEN]);
        let h = VnetHdr::parse(&b).unwrap();
        assert!(!h.is_gso());
        assert!(!h.needs_csum());
    }

    #[test]
    fn short_buffers_are_errors() {
        assert_eq!(VnetHdr::parse(&[0; 9]), Err(VnetError::Truncated));
        assert_eq!(VnetHdr::NONE.emit(&mut [0; 9]), Err(VnetError::Truncated));
        assert_eq!(VnetHdr::parse(&[]), Err(VnetError::Truncated));
    }

    /// A UDP/IPv4 packet 192.0.2.1:1000 -> 192.0.2.2:2000 with payload
    /// "hi!", checksum worked by hand (RFC 768):
    /// pseudo: c000+0201+c000+0202+0011+000b = 0x1841f -> 0x8420;
    /// UDP words without the checksum: 03e8+07d0+000b+6869+2100 = 0x952c;
    /// 0x8420+0x952c = 0x1194c -> 0x194d; complement 0xe6b2.
    #[test]
    fn complete_checksum_matches_hand_computed_udp() {
        let mut pkt = [
            0x45, 0, 0, 31, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, // IPv4
            0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0b, 0x84, 0x20, // UDP, csum = pseudo sum
            b'h', b'i', b'!',
        ];
        let h = VnetHdr { flags: VnetHdr::NEEDS_CSUM, csum_start: 20, csum_offset: 6, ..VnetHdr::NONE };
        complete_checksum(&h, &mut pkt).unwrap();
        assert_eq!(&pkt[26..28], &[0xe6, 0xb2]);
    }

    #[test]
    fn complete_checksum_rejects_offsets_outside_packet() {
        let mut pkt = [0u8; 30];
        let h = VnetHdr { flags: VnetHdr::NEEDS_CSUM, csum_start: 20, csum_offset: 9, ..VnetHdr::NONE };
        assert_eq!(complete_checksum(&h, &mut pkt), Err(VnetError::BadChecksumOffsets));
        let h = VnetHdr { flags: VnetHdr::NEEDS_CSUM, csum_start: 0xffff, csum_offset: 0xffff, ..h };
        assert_eq!(complete_checksum(&h, &mut pkt), Err(VnetError::BadChecksumOffsets));
        // Without NEEDS_CSUM the offsets are ignored.
        let h = VnetHdr { flags: 0, ..h };
        assert_eq!(complete_checksum(&h, &mut pkt), Ok(()));
    }
}
