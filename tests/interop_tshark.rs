//! esptun's ESP packets decrypted by tshark (Wireshark's ESP dissector, an
//! implementation we did not write), given the keys through the `esp_sa`
//! UAT.
//!
//! The test seals ICMP echo and UDP packets with esptun (AES-GCM-128 and
//! AES-GCM-256; plain ESP and ESP-in-UDP on port 4500, RFC 3948; IPv4 and
//! IPv6 outer; IPv4 and IPv6 inner), writes them into a pcap file by hand
//! (LINKTYPE_RAW, 101), and asks `tshark -T fields` for what it decoded:
//! the ICV must verify (`esp.icv_good`) and the inner addresses, ICMP
//! identifier/sequence, UDP ports and payload must be those the test built.
//! One SA is configured with a wrong key, and its packet must not decode,
//! so the check can fail.
//!
//! What Debian bookworm's tshark 4.0 cannot check: ChaCha20-Poly1305 ESP
//! (its ESP dissector has no such algorithm) and ESN (no ESN field in the
//! `esp_sa` table, so the AAD would lack the high 32 bits). Those are
//! covered by tests/interop_scapy.rs.
//!
//! tshark 4.0 syntax found by experiment: the preference is
//! `esp.enable_encryption_decode` (plus `esp.enable_authentication_check`
//! for `esp.icv_good`), each `-o uat:esp_sa:...` adds one record of eight
//! quoted fields: protocol ("IPv4"/"IPv6"), source, destination, SPI
//! ("0x.."), encryption ("AES-GCM with 16 octet ICV [RFC4106]"), key
//! ("0x" + key || salt), authentication ("NULL"), authentication key ("").
//! UDP port 4500 is dissected as UDPENCAP without any `-d` option.

mod common;

use esptun::crypto::{AeadAlg, KeyMaterial};
use esptun::esp::{Framing, OutboundSa, OuterPath, PacketBuf, SaConfig};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

const ENCRYPTION: &str = "AES-GCM with 16 octet ICV [RFC4106]";

/// The inner packet the test builds, and what tshark must report for it.
#[derive(Clone, Copy, Debug)]
enum Inner {
    Icmp4 { id: u16, seq: u16 },
    Udp4 { sport: u16, dport: u16 },
    Udp6 { sport: u16, dport: u16 },
}

const INNER4: ([u8; 4], [u8; 4]) = ([198, 51, 100, 7], [203, 0, 113, 9]);
const INNER6_SRC: &str = "2001:db8:1::7";
const INNER6_DST: &str = "2001:db8:2::9";

/// RFC 1071 sum, written here rather than borrowed from esptun.
fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    for pair in data.chunks(2) {
        acc += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
    }
    acc
}

fn checksum(acc: u32) -> u16 {
    let mut acc = acc;
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn ipv4(proto: u8, payload: &[u8], ident: u16) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&INNER4.0);
    p[16..20].copy_from_slice(&INNER4.1);
    let c = checksum(ones_sum(0, &p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn udp(sport: u16, dport: u16, data: &[u8], pseudo: &[u8]) -> Vec<u8> {
    let len = 8 + data.len();
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(data);
    let acc = ones_sum(ones_sum(0, pseudo) + 17 + len as u32, &u);
    let c = match checksum(acc) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

fn build(inner: Inner, data: &[u8]) -> Vec<u8> {
    match inner {
        Inner::Icmp4 { id, seq } => {
            let mut icmp = vec![8, 0, 0, 0];
            icmp.extend_from_slice(&id.to_be_bytes());
            icmp.extend_from_slice(&seq.to_be_bytes());
            icmp.extend_from_slice(data);
            let c = checksum(ones_sum(0, &icmp));
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            ipv4(1, &icmp, id)
        }
        Inner::Udp4 { sport, dport } => {
            let pseudo = [INNER4.0, INNER4.1].concat();
            ipv4(17, &udp(sport, dport, data, &pseudo), sport)
        }
        Inner::Udp6 { sport, dport } => {
            let src: std::net::Ipv6Addr = INNER6_SRC.parse().unwrap();
            let dst: std::net::Ipv6Addr = INNER6_DST.parse().unwrap();
            let pseudo = [src.octets(), dst.octets()].concat();
            let seg = udp(sport, dport, data, &pseudo);
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            p.extend_from_slice(&[17, 64]);
            p.extend_from_slice(&pseudo);
            p.extend_from_slice(&seg);
            p
        }
    }
}

/// One sealed packet and the SA record tshark gets for it.
struct Sent {
    alg: AeadAlg,
    spi: u32,
    seq: u64,
    src: IpAddr,
    dst: IpAddr,
    /// The key material tshark is given.
    uat_keymat: Vec<u8>,
    /// The negative control: `uat_keymat` is not the sealing key.
    wrong_key: bool,
    encap: bool,
    inner: Inner,
    data: Vec<u8>,
    packet: Vec<u8>,
}

fn tohex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sealed_packets() -> Vec<Sent> {
    let mut out = Vec::new();
    let mut n: u32 = 0;
    for alg in [AeadAlg::AesGcm128, AeadAlg::AesGcm256] {
        for v6_outer in [false, true] {
            for encap in [false, true] {
                for (k, inner) in [
                    Inner::Icmp4 { id: 0x4242, seq: 7 },
                    Inner::Udp4 { sport: 61000, dport: 61001 },
                    Inner::Udp6 { sport: 61002, dport: 61003 },
                ]
                .into_iter()
                .enumerate()
                {
                    let (src, dst): (IpAddr, IpAddr) = if v6_outer {
                        ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
                    } else {
                        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
                    };
                    let keymat: Vec<u8> =
                        (0..alg.keymat_len()).map(|i| (i as u8).wrapping_mul(11) ^ (n as u8)).collect();
                    let spi = 0x3000_0000 + n;
                    let path = OuterPath { local: src, remote: dst, encap: encap.then_some((4500, 4500)) };
                    let cfg = SaConfig::new(spi, alg, KeyMaterial::new(alg, &keymat).unwrap(), path);
                    let sa = OutboundSa::new(cfg).unwrap();
                    let seq = 1 + u64::from(n) * 1000;
                    sa.set_next_seq(seq);
                    let data: Vec<u8> = format!("esptun-tshark-{n}-{}", "x".repeat(k)).into_bytes();
                    let mut buf = PacketBuf::from_packet(&build(inner, &data));
                    sa.seal(&mut buf, Framing::Ip).unwrap();
                    let wrong_key = n == 5;
                    let mut uat_keymat = keymat.clone();
                    if wrong_key {
                        uat_keymat[0] ^= 0xff;
                    }
                    out.push(Sent {
                        alg,
                        spi,
                        seq,
                        src,
                        dst,
                        uat_keymat,
                        wrong_key,
                        encap,
                        inner,
                        data,
                        packet: buf.data().to_vec(),
                    });
                    n += 1;
                }
            }
        }
    }
    out
}

/// A classic pcap file (little-endian, microsecond timestamps) of raw IP
/// packets (LINKTYPE_RAW = 101).
fn pcap(packets: &[&[u8]]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    f.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    f.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    f.extend_from_slice(&101u32.to_le_bytes()); // network
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

const FIELDS: [&str; 12] = [
    "esp.spi",
    "esp.sequence",
    "esp.icv_good",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "icmp.ident",
    "icmp.seq",
    "data.data",
];

fn field<'a>(row: &'a [&'a str], name: &str) -> &'a str {
    row[FIELDS.iter().position(|f| *f == name).unwrap()]
}

/// Last occurrence of a repeated field (tshark lists outer, then inner).
fn last<'a>(row: &'a [&'a str], name: &str) -> &'a str {
    field(row, name).rsplit(',').next().unwrap()
}

fn first<'a>(row: &'a [&'a str], name: &str) -> &'a str {
    field(row, name).split(',').next().unwrap()
}

/// Checks one decoded row against what was sent.
fn check_row(s: &Sent, row: &[&str]) -> Result<(), String> {
    let mut errs = Vec::new();
    let mut want = |name: &str, got: &str, exp: String| {
        if got != exp {
            errs.push(format!("{name}: tshark {got:?}, sent {exp:?}"));
        }
    };
    want("esp.spi", field(row, "esp.spi"), format!("0x{:08x}", s.spi));
    want("esp.sequence", field(row, "esp.sequence"), s.seq.to_string());
    want("esp.icv_good", field(row, "esp.icv_good"), "1".into());
    let (out_src, out_dst) = if s.src.is_ipv6() { ("ipv6.src", "ipv6.dst") } else { ("ip.src", "ip.dst") };
    want("outer src", first(row, out_src), s.src.to_string());
    want("outer dst", first(row, out_dst), s.dst.to_string());
    if s.encap {
        want("outer udp.srcport", first(row, "udp.srcport"), "4500".into());
        want("outer udp.dstport", first(row, "udp.dstport"), "4500".into());
    }
    let v4 = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
    match s.inner {
        Inner::Icmp4 { id, seq } => {
            want("inner ip.src", last(row, "ip.src"), v4(INNER4.0));
            want("inner ip.dst", last(row, "ip.dst"), v4(INNER4.1));
            want("icmp.ident", field(row, "icmp.ident"), id.to_string());
            want("icmp.seq", field(row, "icmp.seq"), seq.to_string());
        }
        Inner::Udp4 { sport, dport } | Inner::Udp6 { sport, dport } => {
            if matches!(s.inner, Inner::Udp4 { .. }) {
                want("inner ip.src", last(row, "ip.src"), v4(INNER4.0));
                want("inner ip.dst", last(row, "ip.dst"), v4(INNER4.1));
            } else {
                want("inner ipv6.src", last(row, "ipv6.src"), INNER6_SRC.into());
                want("inner ipv6.dst", last(row, "ipv6.dst"), INNER6_DST.into());
            }
            want("inner udp.srcport", last(row, "udp.srcport"), sport.to_string());
            want("inner udp.dstport", last(row, "udp.dstport"), dport.to_string());
        }
    }
    want("payload", field(row, "data.data"), tohex(&s.data));
    if errs.is_empty() { Ok(()) } else { Err(errs.join("; ")) }
}

#[test]
fn tshark_decrypts_esptun_aes_gcm() {
    if !common::tool("tshark", "-v") {
        return;
    }
    let sent = sealed_packets();
    let dir = std::env::temp_dir().join(format!("esptun-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join("esptun-esp.pcap");
    let packets: Vec<&[u8]> = sent.iter().map(|s| &s.packet[..]).collect();
    std::fs::write(&file, pcap(&packets)).unwrap();

    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(&file);
    cmd.args(["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]);
    for s in &sent {
        let proto = if s.src.is_ipv6() { "IPv6" } else { "IPv4" };
        let rec = format!(
            "uat:esp_sa:\"{proto}\",\"{}\",\"{}\",\"0x{:08x}\",\"{ENCRYPTION}\",\"0x{}\",\"NULL\",\"\"",
            s.src,
            s.dst,
            s.spi,
            tohex(&s.uat_keymat)
        );
        cmd.arg("-o").arg(rec);
    }
    cmd.args(["-T", "fields", "-E", "separator=|"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tshark failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), sent.len(), "tshark output:\n{stdout}");

    let mut failures = Vec::new();
    for (i, (s, row)) in sent.iter().zip(&rows).enumerate() {
        assert_eq!(row.len(), FIELDS.len(), "row {i}: {row:?}");
        let res = check_row(s, row);
        let what = format!(
            "frame {} ({:?}, outer {}, {}, {:?})",
            i + 1,
            s.alg,
            s.dst,
            if s.encap { "udp/4500" } else { "esp" },
            s.inner
        );
        if s.wrong_key {
            // Negative control: with the wrong key nothing may decode.
            // (tshark still shows the garbage it decrypted as data, but the
            // ICV must fail and the inner headers must not appear.)
            if res.is_ok() || field(row, "esp.icv_good") != "0" {
                failures.push(format!("{what}: decoded under a wrong key: {row:?}"));
            }
        } else if let Err(e) = res {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
