//! esptun's ESP bytes against scapy's `SecurityAssociation` (an
//! implementation we did not write), in both directions.
//!
//! Always (no python needed): every committed fixture in
//! `tests/fixtures/scapy/` (sealed by scapy 2.6.1 through
//! `scripts/scapy_esp.py generate`) is opened by esptun back to the
//! fixture's inner packet, and esptun seals that inner packet with the same
//! SA and sequence number into the very same bytes. The IV convention
//! (IV = 64-bit sequence number) and the RFC 4303 default padding
//! (1, 2, 3, .. to 4-octet alignment) are shared, so the comparison is
//! octet for octet; the one exception is the UDP checksum of NAT-T over
//! IPv6, which scapy leaves 0 and esptun computes: there the test checks
//! esptun's checksum with its own pseudo-header sum instead.
//!
//! Live (a python with scapy found by `common::scapy_python`): the
//! generator is run again into a temporary directory, its output must equal
//! the committed fixtures (so they cannot go stale or be edited by hand)
//! and is checked the same way; then packets sealed by esptun (every
//! algorithm, plain ESP and UDP encapsulation, ESN on and off, IPv4/IPv6
//! inner and outer, TFC padding) are handed to `scripts/scapy_esp.py
//! decrypt`, which must return the inner packets, next header and padding.

mod common;

use esptun::crypto::{AeadAlg, Backend, KeyMaterial};
use esptun::esp::{DropReason, Framing, InboundSa, OutboundSa, OuterPath, PacketBuf, SaConfig, strip_outer};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scapy")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scapy_esp.py")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex string");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit")).collect()
}

fn tohex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One case of the line-based format described in scripts/scapy_esp.py.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    alg: AeadAlg,
    keymat: Vec<u8>,
    spi: u32,
    seq: u64,
    esn: bool,
    src: IpAddr,
    dst: IpAddr,
    encap: Option<(u16, u16)>,
    inner: Vec<u8>,
    sealed: Vec<u8>,
}

impl Case {
    fn write(&self, out: &mut String) {
        let encap = self.encap.map_or("none".to_string(), |(s, d)| format!("{s} {d}"));
        out.push_str(&format!(
            "\n[{}]\nalg = {}\nkeymat = {}\nspi = {:08x}\nseq = {}\nesn = {}\nouter_src = {}\n\
             outer_dst = {}\nencap = {}\ninner = {}\nsealed = {}\n",
            self.name,
            self.alg.name(),
            tohex(&self.keymat),
            self.spi,
            self.seq,
            u8::from(self.esn),
            self.src,
            self.dst,
            encap,
            tohex(&self.inner),
            tohex(&self.sealed),
        ));
    }
}

fn parse_cases(text: &str, origin: &str) -> Vec<Case> {
    let mut raw: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            raw.push((name.to_string(), BTreeMap::new()));
        } else if let (Some((k, v)), Some(cur)) = (line.split_once('='), raw.last_mut()) {
            cur.1.insert(k.trim().to_string(), v.trim().to_string());
        } else {
            panic!("{origin}:{}: cannot parse {line:?}", n + 1);
        }
    }
    raw.into_iter()
        .map(|(name, f)| {
            let get = |k: &str| f.get(k).unwrap_or_else(|| panic!("{origin}: [{name}] lacks {k}")).as_str();
            let encap = match get("encap") {
                "none" => None,
                ports => {
                    let (s, d) = ports.split_once(' ').expect("encap = SPORT DPORT");
                    Some((s.parse().unwrap(), d.parse().unwrap()))
                }
            };
            Case {
                alg: AeadAlg::from_name(get("alg")).expect("known algorithm"),
                keymat: unhex(get("keymat")),
                spi: u32::from_str_radix(get("spi"), 16).unwrap(),
                seq: get("seq").parse().unwrap(),
                esn: get("esn") == "1",
                src: get("outer_src").parse().unwrap(),
                dst: get("outer_dst").parse().unwrap(),
                encap,
                inner: unhex(get("inner")),
                sealed: unhex(get("sealed")),
                name,
            }
        })
        .collect()
}

/// Every `*.txt` in `dir`, by file name, with its text.
fn read_dir_texts(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "txt") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

fn load_cases(dir: &Path) -> Vec<Case> {
    read_dir_texts(dir).iter().flat_map(|(name, text)| parse_cases(text, name)).collect()
}

fn config(c: &Case, local: IpAddr, remote: IpAddr, encap: Option<(u16, u16)>, backend: Backend) -> SaConfig {
    let keymat = KeyMaterial::new(c.alg, &c.keymat).expect("key material length");
    let mut cfg = SaConfig::new(c.spi, c.alg, keymat, OuterPath { local, remote, encap });
    cfg.esn = c.esn;
    cfg.backend = backend;
    cfg
}

fn outbound(c: &Case, backend: Backend) -> OutboundSa {
    OutboundSa::new(config(c, c.src, c.dst, c.encap, backend)).unwrap()
}

/// The receiving side, its replay window just below the case's sequence
/// number (so that ESN high bits are inferred as a live SA would).
fn inbound(c: &Case, backend: Backend) -> InboundSa {
    let mut sa = InboundSa::new(config(c, c.dst, c.src, c.encap.map(|(s, d)| (d, s)), backend)).unwrap();
    if c.seq > 1 {
        sa.prime_replay(c.seq - 1);
    }
    sa
}

/// RFC 1071 sum, independent of esptun's.
fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    for pair in data.chunks(2) {
        acc += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether the UDP checksum of an IPv6 packet (no extension headers)
/// verifies over the RFC 8200 §8.1 pseudo-header.
fn udp6_checksum_ok(pkt: &[u8]) -> bool {
    let seg = &pkt[40..];
    let mut acc = ones_sum(0, &pkt[8..40]);
    acc += seg.len() as u32 + 17;
    acc = ones_sum(acc, seg);
    fold(acc) == 0xffff
}

/// Opens a scapy-sealed case with esptun and seals its inner packet again,
/// on `backend`; returns a description of the first mismatch.
fn check_fixture(c: &Case, backend: Backend) -> Result<(), String> {
    let tag = format!("{} ({backend})", c.name);
    // scapy -> esptun
    let mut inb = inbound(c, backend);
    let mut buf = PacketBuf::from_packet(&c.sealed);
    let outer = strip_outer(&mut buf).map_err(|e| format!("{tag}: strip_outer: {e:?}"))?;
    if (outer.src, outer.dst, outer.ports) != (c.src, c.dst, c.encap) {
        return Err(format!("{tag}: outer {outer:?}"));
    }
    let opened = inb.open(&mut buf, outer.ecn).map_err(|e| format!("{tag}: open: {e:?}"))?;
    if opened.seq != c.seq {
        return Err(format!("{tag}: opened seq {} != {}", opened.seq, c.seq));
    }
    if buf.data() != &c.inner[..] {
        return Err(format!("{tag}: inner\n  esptun {}\n  scapy  {}", tohex(buf.data()), tohex(&c.inner)));
    }

    // esptun -> same bytes as scapy
    let out = outbound(c, backend);
    let mut buf = PacketBuf::from_packet(&c.inner);
    out.seal_reserved(&mut buf, Framing::Ip, c.seq).map_err(|e| format!("{tag}: seal: {e:?}"))?;
    let mut ours = buf.data().to_vec();
    let mut theirs = c.sealed.clone();
    if c.dst.is_ipv6() && c.encap.is_some() && theirs[46..48] == [0, 0] {
        // scapy writes UDP checksum 0 for NAT-T even over IPv6; esptun
        // computes it (a zero UDP checksum is not valid over IPv6 without
        // RFC 6936 exceptions). Check ours, then compare the rest.
        if !udp6_checksum_ok(&ours) {
            return Err(format!("{tag}: esptun's UDP/IPv6 checksum does not verify"));
        }
        ours[46..48].fill(0);
        theirs[46..48].fill(0);
    }
    if ours != theirs {
        return Err(format!(
            "{tag}: sealed bytes differ\n  esptun {}\n  scapy  {}",
            tohex(&ours),
            tohex(&theirs)
        ));
    }

    // A forged packet must not open (the oracle check above can fail).
    let mut forged = c.sealed.clone();
    let at = forged.len() - 20;
    forged[at] ^= 0x01;
    let mut inb = inbound(c, backend);
    let mut buf = PacketBuf::from_packet(&forged);
    let outer = strip_outer(&mut buf).map_err(|e| format!("{tag}: strip_outer forged: {e:?}"))?;
    match inb.open(&mut buf, outer.ecn) {
        Err(DropReason::AuthFailed) => Ok(()),
        other => Err(format!("{tag}: forged packet gave {other:?}")),
    }
}

fn check_all(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        for &backend in Backend::ALL {
            if let Err(e) = check_fixture(c, backend) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

/// Every (alg, outer family, encap, ESN, inner family) combination.
type Combo = (&'static str, bool, bool, bool, bool);

fn combo(c: &Case) -> Combo {
    (c.alg.name(), c.dst.is_ipv6(), c.encap.is_some(), c.esn, c.inner[0] >> 4 == 6)
}

fn all_combos() -> BTreeSet<Combo> {
    let mut s = BTreeSet::new();
    for alg in AeadAlg::ALL {
        for v6_out in [false, true] {
            for encap in [false, true] {
                for esn in [false, true] {
                    for v6_in in [false, true] {
                        s.insert((alg.name(), v6_out, encap, esn, v6_in));
                    }
                }
            }
        }
    }
    s
}

#[test]
fn committed_fixtures_open_and_reseal_identically() {
    let cases = load_cases(&fixture_dir());
    let have: BTreeSet<Combo> = cases.iter().map(combo).collect();
    let missing: Vec<_> = all_combos().difference(&have).copied().collect();
    assert!(missing.is_empty(), "fixtures lack combinations {missing:?}");
    assert!(cases.iter().any(|c| c.esn && c.seq > u64::from(u32::MAX)), "no ESN case beyond 2^32");
    let names: BTreeSet<_> = cases.iter().map(|c| &c.name).collect();
    assert_eq!(names.len(), cases.len(), "duplicate case names");
    check_all(&cases);
    eprintln!("{} scapy fixtures checked on {} backend(s)", cases.len(), Backend::ALL.len());
}

/// Runs `scripts/scapy_esp.py ARGS`; `None` (after a skip) when the pinned
/// scapy is not what this python has.
fn run_script(py: &Path, args: &[&str], stdin_file: Option<&Path>) -> Option<String> {
    let mut cmd = Command::new(py);
    cmd.arg(script()).args(args);
    if let Some(f) = stdin_file {
        cmd.stdin(std::fs::File::open(f).unwrap());
    }
    let out = cmd.output().expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        common::skip(&format!("scapy_esp.py: {}", stderr.trim()));
        return None;
    }
    assert!(out.status.success(), "scapy_esp.py {args:?} failed ({}):\n{stderr}", out.status);
    Some(String::from_utf8(out.stdout).unwrap())
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("esptun-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn live_scapy_regenerates_the_fixtures() {
    let Some(py) = common::scapy_python() else { return };
    let tmp = TempDir::new("scapy-gen");
    let dir = tmp.0.to_str().unwrap();
    if run_script(&py, &["generate", dir], None).is_none() {
        return;
    }
    let fresh = read_dir_texts(&tmp.0);
    let committed = read_dir_texts(&fixture_dir());
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "fixture files differ from the generator's"
    );
    for (name, text) in &fresh {
        assert!(
            committed[name] == *text,
            "tests/fixtures/scapy/{name} is stale: run .venv/bin/python scripts/scapy_esp.py generate \
             tests/fixtures/scapy"
        );
    }
    check_all(&load_cases(&tmp.0));
}

/// Inner IPv4/UDP packet with valid header and UDP checksums.
fn udp4(tos: u8, df: bool, payload_len: usize, id: u16) -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(203, 0, 113, 9));
    let total = 28 + payload_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = if df { 0x40 } else { 0 };
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = !fold(ones_sum(0, &p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&(50000 + id).to_be_bytes());
    p[22..24].copy_from_slice(&53u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(id as u8);
    }
    let mut acc = ones_sum(0, &p[12..20]) + 17 + (8 + payload_len) as u32;
    acc = ones_sum(acc, &p[20..]);
    let c = match !fold(acc) {
        0 => 0xffff,
        c => c,
    };
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// Inner IPv6/UDP packet with a valid UDP checksum.
fn udp6(tclass: u8, payload_len: usize, id: u16) -> Vec<u8> {
    let src: Ipv6Addr = "2001:db8:1::7".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:2::9".parse().unwrap();
    let plen = 8 + payload_len;
    let mut p = vec![0u8; 40 + plen];
    p[0] = 0x60 | (tclass >> 4);
    p[1] = tclass << 4;
    p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..42].copy_from_slice(&(50000 + id).to_be_bytes());
    p[42..44].copy_from_slice(&53u16.to_be_bytes());
    p[44..46].copy_from_slice(&(plen as u16).to_be_bytes());
    for (i, b) in p[48..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(29).wrapping_add(id as u8);
    }
    let mut acc = ones_sum(0, &p[8..40]) + 17 + plen as u32;
    acc = ones_sum(acc, &p[40..]);
    let c = match !fold(acc) {
        0 => 0xffff,
        c => c,
    };
    p[46..48].copy_from_slice(&c.to_be_bytes());
    p
}

/// Packets sealed by esptun (its normal `seal`, IV = sequence number) in
/// every combination, with the TFC pad length used (0 = none).
fn esptun_sealed() -> Vec<(Case, usize)> {
    let seqs_plain = [1u64, 77, 0xffff_fffe];
    // 0xffff_ffff + 1 crosses into the high word (seq_lo 0).
    let seqs_esn = [3u64, 0xffff_ffff, (0xabcd << 32) | 0xffff_fff0];
    let mut out = Vec::new();
    let mut i: u16 = 0;
    for alg in AeadAlg::ALL {
        for v6_out in [false, true] {
            for encap in [false, true] {
                for esn in [false, true] {
                    for v6_in in [false, true] {
                        for (k, len) in [0usize, 1, 2, 3, 250, 1300].into_iter().enumerate() {
                            // TFC padding on one packet of every fourth combination.
                            let tfc = if k == 4 && i % 4 == 0 { 512 } else { 0 };
                            let tos = [0u8, 0x2a, 0xb9][usize::from(i) % 3];
                            let inner = if v6_in { udp6(tos, len, i) } else { udp4(tos, i % 2 == 0, len, i) };
                            let (src, dst): (IpAddr, IpAddr) = if v6_out {
                                ("2001:db8::a".parse().unwrap(), "2001:db8::b".parse().unwrap())
                            } else {
                                ("192.0.2.10".parse().unwrap(), "192.0.2.11".parse().unwrap())
                            };
                            let seqs = if esn { &seqs_esn } else { &seqs_plain };
                            let seq = seqs[usize::from(i) % 3] + k as u64 % 2;
                            let keymat: Vec<u8> =
                                (0..alg.keymat_len()).map(|j| (j as u8).wrapping_mul(37) ^ i as u8).collect();
                            let mut c = Case {
                                name: format!("esptun-{i}-{k}"),
                                alg,
                                keymat,
                                spi: 0x2000_0000 + u32::from(i),
                                seq,
                                esn,
                                src,
                                dst,
                                encap: encap.then_some((if v6_out { 4500 } else { 40002 }, 4500)),
                                inner,
                                sealed: Vec::new(),
                            };
                            let backend = Backend::ALL[usize::from(i) % Backend::ALL.len()];
                            let mut cfg = config(&c, c.src, c.dst, c.encap, backend);
                            cfg.tfc_pad_to = tfc as u16;
                            let sa = OutboundSa::new(cfg).unwrap();
                            sa.set_next_seq(seq);
                            // Room for TFC padding beyond the default tailroom.
                            let mut buf = PacketBuf::new(4096);
                            buf.set(&c.inner).unwrap();
                            let s = sa.seal(&mut buf, Framing::Ip).unwrap();
                            assert_eq!(s.seq, seq);
                            c.sealed = buf.data().to_vec();
                            out.push((c, tfc));
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn live_scapy_decrypts_esptun_packets() {
    let Some(py) = common::scapy_python() else { return };
    let cases = esptun_sealed();
    let tmp = TempDir::new("scapy-dec");
    let input = tmp.0.join("esptun-sealed.txt");
    let mut text = String::from("# sealed by esptun (tests/interop_scapy.rs)\n");
    for (c, _) in &cases {
        c.write(&mut text);
    }
    std::fs::write(&input, text).unwrap();
    let Some(stdout) = run_script(&py, &["decrypt", input.to_str().unwrap()], None) else { return };
    let mut got: BTreeMap<&str, (u8, Vec<u8>, Vec<u8>)> = BTreeMap::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "scapy_esp.py output line {line:?}");
        let pad = if f[2] == "-" { Vec::new() } else { unhex(f[2]) };
        got.insert(f[0], (f[1].parse().unwrap(), pad, unhex(f[3])));
    }
    let mut failures = Vec::new();
    for (c, tfc) in &cases {
        let Some((nh, pad, inner)) = got.get(c.name.as_str()) else {
            failures.push(format!("{}: no answer from scapy", c.name));
            continue;
        };
        let want_nh = if c.inner[0] >> 4 == 6 { 41 } else { 4 };
        let body = c.inner.len().max(*tfc);
        // RFC 4303 §2.4: default padding 1, 2, 3, ..; payload, padding and
        // the two trailer octets end on a 4-octet boundary.
        let pad_ok = pad.iter().enumerate().all(|(i, &b)| usize::from(b) == i + 1)
            && (body + pad.len() + 2) % 4 == 0
            && pad.len() < 4;
        // scapy keeps TFC padding after the inner packet; it must be zeros.
        let inner_ok = inner.len() == body
            && inner[..c.inner.len()] == c.inner[..]
            && inner[c.inner.len()..].iter().all(|&b| b == 0);
        if *nh != want_nh || !pad_ok || !inner_ok {
            failures.push(format!(
                "{} ({:?}, esn {}, tfc {tfc}): nh {nh} pad {} inner\n  scapy  {}\n  esptun {}",
                c.name,
                c.alg,
                c.esn,
                tohex(pad),
                tohex(inner),
                tohex(&c.inner)
            ));
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    let combos: BTreeSet<Combo> = cases.iter().map(|(c, _)| combo(c)).collect();
    assert_eq!(combos, all_combos());
    eprintln!("scapy decrypted {} esptun packets", cases.len());
}
