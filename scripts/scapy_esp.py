#!/usr/bin/env python3
# Independent ESP oracle for esptun, driven by a pinned scapy (2.6.1) and its
# scapy.layers.ipsec.SecurityAssociation in tunnel mode.
#
#   scapy_esp.py generate OUTDIR     seal fixture packets with scapy and write
#                                    OUTDIR/<alg>.txt (tests/fixtures/scapy/
#                                    holds the committed copy)
#   scapy_esp.py decrypt [FILE|-]    read packets sealed by esptun (same
#                                    format), decrypt each with scapy and
#                                    print "NAME NH PADDING INNER" (hex);
#                                    exit 1 if any packet fails
#
# Case format (line based, so the Rust tests parse it without a JSON crate):
#
#   [name]                 starts a case
#   key = value            alg (aes128gcm16 | aes256gcm16 | chacha20poly1305),
#                          keymat (hex, key || 4-octet salt, RFC 4106/7634),
#                          spi (hex), seq (decimal, full 64 bits), esn (0/1),
#                          outer_src, outer_dst (sender's view),
#                          encap ("none" or "SPORT DPORT"),
#                          inner (hex), sealed (hex, whole outer packet)
#   # ...                  comment
#
# IV convention: the 8-octet explicit IV is the 64-bit sequence number,
# big-endian, as esptun does (docs/ARCHITECTURE.md), so that scapy's and
# esptun's sealed bytes can be compared octet for octet. The outer header
# fields scapy is given follow esptun's documented choices as well (TTL /
# hop limit 64, IPv4 ID = low 16 bits of the sequence number, DF copied from
# an IPv4 inner packet and set for IPv6 inner, DSCP+ECN copied, flow label
# 0); scapy computes lengths, checksums, padding and the AEAD itself.
# Known difference: scapy always writes UDP checksum 0 for NAT-T, also over
# IPv6 where esptun computes it.
#
# Exit codes: 0 ok, 1 a packet failed, 2 usage, 3 wrong scapy version.

import hashlib
import os
import sys

PINNED_SCAPY = "2.6.1"

try:
    import scapy
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.ipsec import ESP, SecurityAssociation
    from scapy.packet import Raw, raw
except ImportError as e:  # pragma: no cover - environment problem
    print(f"scapy_esp.py: cannot import scapy: {e}", file=sys.stderr)
    sys.exit(3)

# esptun's name -> (scapy crypt_algo, key length without salt)
ALGS = {
    "aes128gcm16": ("AES-GCM", 16),
    "aes256gcm16": ("AES-GCM", 32),
    "chacha20poly1305": ("CHACHA20-POLY1305", 32),
}
SALT_LEN = 4

OUTER = {
    4: ("192.0.2.1", "192.0.2.2"),
    6: ("2001:db8::1", "2001:db8::2"),
}
INNER = {
    4: ("198.51.100.10", "203.0.113.20"),
    6: ("2001:db8:1::10", "2001:db8:2::20"),
}

# Sequence numbers: without ESN they stay below 2^32; with ESN some carry
# high bits (the AAD then holds SPI || seq_hi || seq_lo, RFC 4106 section 5).
SEQS_PLAIN = [1, 5, 0x12345678, 0xFFFFFFFE]
SEQS_ESN = [1, (1 << 32) + 5, (0x12345678 << 32) | 0x9ABCDEF0, 0xFFFFFFFF]
# Inner payload lengths, chosen so every pad length 0..3 occurs.
PAYLOADS = [0, 1, 2, 3, 17, 64, 333, 1200]
# Inner DSCP/ECN bytes: 0, AF11 + ECT(0), EF + ECT(1).
TOS = [0x00, 0x2A, 0xB9]


def die(msg, code=1):
    print(f"scapy_esp.py: {msg}", file=sys.stderr)
    sys.exit(code)


def check_version():
    if scapy.VERSION != PINNED_SCAPY:
        die(f"scapy {scapy.VERSION} found, {PINNED_SCAPY} pinned (scripts/test makes .venv)", 3)


def keymat_for(name, length):
    """Deterministic key material, different for every case."""
    out = b""
    block = 0
    while len(out) < length:
        out += hashlib.sha256(f"esptun scapy fixture {name} {block}".encode()).digest()
        block += 1
    return out[:length]


def inner_packet(version, tos, dont_frag, payload_len, ident, icmp):
    src, dst = INNER[version]
    data = bytes((i * 7 + ident) & 0xFF for i in range(payload_len))
    if version == 4:
        ip = IP(src=src, dst=dst, tos=tos, id=ident, flags="DF" if dont_frag else 0, ttl=63)
        echo = ICMP(type=8, id=ident, seq=payload_len) / Raw(data)
    else:
        ip = IPv6(src=src, dst=dst, tc=tos, fl=0, hlim=63)
        echo = ICMPv6EchoRequest(id=ident, seq=payload_len, data=data)
    l4 = echo if icmp else UDP(sport=40000 + ident, dport=5201) / Raw(data)
    pkt = ip / l4
    return pkt.__class__(raw(pkt))


def make_sa(case, tunnel=None):
    algo, key_len = ALGS[case["alg"]]
    keymat = bytes.fromhex(case["keymat"])
    if len(keymat) != key_len + SALT_LEN:
        raise ValueError(f"keymat is {len(keymat)} octets, {case['alg']} needs {key_len + SALT_LEN}")
    seq = int(case["seq"])
    esn = case["esn"] == "1"
    src, dst = case["outer_src"], case["outer_dst"]
    if tunnel is None:
        tunnel = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    nat_t = None
    if case["encap"] != "none":
        sport, dport = (int(p) for p in case["encap"].split())
        nat_t = UDP(sport=sport, dport=dport)
    return SecurityAssociation(
        ESP,
        spi=int(case["spi"], 16),
        seq_num=seq & 0xFFFFFFFF,
        crypt_algo=algo,
        crypt_key=keymat,
        tunnel_header=tunnel,
        nat_t_header=nat_t,
        esn_en=esn,
        esn=seq >> 32 if esn else 0,
    )


def seal(case, inner):
    """Seals `inner` the way esptun's outbound SA would frame it."""
    seq = int(case["seq"])
    src, dst = case["outer_src"], case["outer_dst"]
    if inner.version == 4:
        tos, df = inner.tos, bool(inner.flags.DF)
    else:
        tos, df = inner.tc, True
    if ":" in src:
        tunnel = IPv6(src=src, dst=dst, tc=tos, fl=0, hlim=64)
    else:
        tunnel = IP(src=src, dst=dst, tos=tos, id=seq & 0xFFFF, flags="DF" if df else 0, ttl=64)
    sa = make_sa(case, tunnel)
    esn = case["esn"] == "1"
    sealed = sa.encrypt(
        inner,
        seq_num=seq & 0xFFFFFFFF,
        iv=seq.to_bytes(8, "big"),
        esn_en=esn,
        esn=seq >> 32 if esn else 0,
    )
    return raw(sealed)


def cases_for(alg):
    i = 0
    for outer_v in (4, 6):
        for encap in (False, True):
            for esn in (False, True):
                for inner_v in (4, 6):
                    name = "{}-out{}-{}-{}-in{}".format(
                        alg, outer_v, "udp" if encap else "esp", "esn" if esn else "noesn", inner_v
                    )
                    seqs = SEQS_ESN if esn else SEQS_PLAIN
                    # Mixes bits of i so that each list is used in full.
                    seq = seqs[(i + i // 4) % len(seqs)]
                    src, dst = OUTER[outer_v]
                    # A NATed initiator's source port is not 4500 (RFC 3948).
                    ports = ("4500 4500" if outer_v == 4 else "40001 4500") if encap else "none"
                    key_len = ALGS[alg][1] + SALT_LEN
                    case = {
                        "alg": alg,
                        "keymat": keymat_for(name, key_len).hex(),
                        "spi": "{:08x}".format(0x10000000 + (ALGS_ORDER.index(alg) << 8) + i),
                        "seq": str(seq),
                        "esn": "1" if esn else "0",
                        "outer_src": src,
                        "outer_dst": dst,
                        "encap": ports,
                    }
                    inner = inner_packet(
                        inner_v,
                        TOS[i % len(TOS)],
                        dont_frag=i % 3 != 0,
                        payload_len=PAYLOADS[(i // 2) % len(PAYLOADS)],
                        ident=i + 1,
                        icmp=((i >> 1) ^ (i >> 3)) & 1 == 0,
                    )
                    case["inner"] = raw(inner).hex()
                    case["sealed"] = seal(case, inner).hex()
                    yield name, case
                    i += 1


ALGS_ORDER = list(ALGS)
KEYS = ["alg", "keymat", "spi", "seq", "esn", "outer_src", "outer_dst", "encap", "inner", "sealed"]


def generate(outdir):
    check_version()
    os.makedirs(outdir, exist_ok=True)
    for alg in ALGS_ORDER:
        path = os.path.join(outdir, f"{alg}.txt")
        with open(path, "w") as f:
            f.write(f"# ESP packets sealed by scapy {scapy.VERSION} SecurityAssociation (tunnel mode).\n")
            f.write("# Generated by scripts/scapy_esp.py generate tests/fixtures/scapy; do not edit.\n")
            f.write("# Format and conventions: scripts/scapy_esp.py, docs/INTEROP.md.\n")
            for name, case in cases_for(alg):
                f.write(f"\n[{name}]\n")
                for k in KEYS:
                    f.write(f"{k} = {case[k]}\n")


def parse(text):
    cases, cur = [], None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = {"name": line[1:-1]}
            cases.append(cur)
        elif "=" in line and cur is not None:
            k, v = line.split("=", 1)
            cur[k.strip()] = v.strip()
        else:
            die(f"line {n}: cannot parse {line!r}", 2)
    return cases


def decrypt_one(case):
    sa = make_sa(case)
    data = bytes.fromhex(case["sealed"])
    pkt = IPv6(data) if data[0] >> 4 == 6 else IP(data)
    if not pkt.haslayer(ESP):
        raise ValueError(f"scapy finds no ESP layer in {pkt.summary()}")
    seq = int(case["seq"])
    esn = case["esn"] == "1"
    hi = seq >> 32 if esn else 0
    esp = pkt[ESP]
    if esp.spi != sa.spi:
        raise ValueError(f"SPI {esp.spi:#x} != {sa.spi:#x}")
    if esp.seq != seq & 0xFFFFFFFF:
        raise ValueError(f"sequence number {esp.seq} != {seq & 0xFFFFFFFF}")
    # The trailer as scapy's ESP decryption sees it (next header, padding).
    plain = sa.crypt_algo.decrypt(sa, esp, sa.crypt_key, esn_en=esn, esn=hi)
    # The inner packet through the public tunnel-mode API.
    inner = sa.decrypt(pkt.__class__(data), esn_en=esn, esn=hi)
    return plain.nh, bytes(plain.padding), raw(inner)


def decrypt(source):
    check_version()
    text = sys.stdin.read() if source == "-" else open(source).read()
    failed = 0
    for case in parse(text):
        try:
            nh, padding, inner = decrypt_one(case)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            print(f"FAIL {case['name']}: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        print(case["name"], nh, padding.hex() or "-", inner.hex())
    if failed:
        die(f"{failed} packet(s) failed to decrypt", 1)


def main(argv):
    if len(argv) == 3 and argv[1] == "generate":
        generate(argv[2])
    elif len(argv) in (2, 3) and argv[1] == "decrypt":
        decrypt(argv[2] if len(argv) == 3 else "-")
    else:
        die("usage: scapy_esp.py generate OUTDIR | decrypt [FILE|-]", 2)


if __name__ == "__main__":
    main(sys.argv)
