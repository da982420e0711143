//! strongSwan proposal strings parsed into typed algorithm sets.
//!
//! A proposal is a `-`-separated list of algorithm keywords; each keyword
//! adds an alternative to its transform type (RFC 7296 §3.3), so
//! `aes256gcm16-aes128gcm16-prfsha256-x25519` offers two ciphers, one PRF
//! and one group. IKE proposals need at least one cipher, one PRF and one
//! Diffie-Hellman group; ESP proposals need a cipher and may add groups
//! (PFS on rekey) and `esn`/`noesn`. Only AEAD ciphers exist here
//! (AES-GCM-16, ChaCha20-Poly1305), so no integrity algorithm is ever
//! needed.
//!
//! Weak algorithms (RFC 8247, RFC 8221: MD5, SHA-1, DES, 3DES, groups below
//! 2048-bit MODP) are refused unless `allow_weak = true`. With it, the weak
//! PRFs and groups esptun could run are accepted; weak ciphers and
//! integrity algorithms are still refused because esptun has none of them.

use crate::crypto::AeadAlg;
use core::fmt;

/// An IKEv2 pseudo-random function (IANA Transform Type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_MD5 (1); weak.
    HmacMd5,
    /// PRF_HMAC_SHA1 (2); weak.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7).
    HmacSha512,
}

impl Prf {
    /// The IANA transform ID.
    pub const fn ikev2_id(self) -> u16 {
        match self {
            Prf::HmacMd5 => 1,
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    /// strongSwan keyword.
    pub const fn name(self) -> &'static str {
        match self {
            Prf::HmacMd5 => "prfmd5",
            Prf::HmacSha1 => "prfsha1",
            Prf::HmacSha256 => "prfsha256",
            Prf::HmacSha384 => "prfsha384",
            Prf::HmacSha512 => "prfsha512",
        }
    }

    /// True if RFC 8247 says not to use it.
    pub const fn is_weak(self) -> bool {
        matches!(self, Prf::HmacMd5 | Prf::HmacSha1)
    }

    fn from_name(s: &str) -> Option<Prf> {
        [Prf::HmacMd5, Prf::HmacSha1, Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// A key exchange (Diffie-Hellman) group (IANA Transform Type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 768-bit MODP (1); weak.
    Modp768,
    /// 1024-bit MODP (2); weak.
    Modp1024,
    /// 1536-bit MODP (5); weak.
    Modp1536,
    /// 2048-bit MODP (14).
    Modp2048,
    /// 3072-bit MODP (15).
    Modp3072,
    /// 4096-bit MODP (16).
    Modp4096,
    /// 6144-bit MODP (17).
    Modp6144,
    /// 8192-bit MODP (18).
    Modp8192,
    /// NIST P-256 (19).
    Ecp256,
    /// NIST P-384 (20).
    Ecp384,
    /// NIST P-521 (21).
    Ecp521,
    /// 1024-bit MODP with 160-bit prime order subgroup (22); weak.
    Modp1024s160,
    /// 2048-bit MODP with 224-bit subgroup (23); weak.
    Modp2048s224,
    /// 2048-bit MODP with 256-bit subgroup (24); weak.
    Modp2048s256,
    /// NIST P-192 (25); weak.
    Ecp192,
    /// Curve25519 (31).
    X25519,
    /// Curve448 (32).
    X448,
}

impl DhGroup {
    const ALL: [DhGroup; 17] = [
        DhGroup::Modp768,
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Modp6144,
        DhGroup::Modp8192,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Modp1024s160,
        DhGroup::Modp2048s224,
        DhGroup::Modp2048s256,
        DhGroup::Ecp192,
        DhGroup::X25519,
        DhGroup::X448,
    ];

    /// The IANA group number.
    pub const fn ikev2_id(self) -> u16 {
        match self {
            DhGroup::Modp768 => 1,
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Modp6144 => 17,
            DhGroup::Modp8192 => 18,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Ecp521 => 21,
            DhGroup::Modp1024s160 => 22,
            DhGroup::Modp2048s224 => 23,
            DhGroup::Modp2048s256 => 24,
            DhGroup::Ecp192 => 25,
            DhGroup::X25519 => 31,
            DhGroup::X448 => 32,
        }
    }

    /// strongSwan keyword.
    pub const fn name(self) -> &'static str {
        match self {
            DhGroup::Modp768 => "modp768",
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp1536 => "modp1536",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Modp3072 => "modp3072",
            DhGroup::Modp4096 => "modp4096",
            DhGroup::Modp6144 => "modp6144",
            DhGroup::Modp8192 => "modp8192",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Ecp521 => "ecp521",
            DhGroup::Modp1024s160 => "modp1024s160",
            DhGroup::Modp2048s224 => "modp2048s224",
            DhGroup::Modp2048s256 => "modp2048s256",
            DhGroup::Ecp192 => "ecp192",
            DhGroup::X25519 => "x25519",
            DhGroup::X448 => "x448",
        }
    }

    /// True if RFC 8247 says not to use it.
    pub const fn is_weak(self) -> bool {
        matches!(
            self,
            DhGroup::Modp768
                | DhGroup::Modp1024
                | DhGroup::Modp1536
                | DhGroup::Modp1024s160
                | DhGroup::Modp2048s224
                | DhGroup::Modp2048s256
                | DhGroup::Ecp192
        )
    }

    fn from_name(s: &str) -> Option<DhGroup> {
        let s = match s {
            "curve25519" => "x25519",
            "curve448" => "x448",
            other => other,
        };
        DhGroup::ALL.into_iter().find(|g| g.name() == s)
    }
}

/// One IKE SA proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    /// Ciphers, in order of preference.
    pub encr: Vec<AeadAlg>,
    /// PRFs.
    pub prf: Vec<Prf>,
    /// Key exchange groups.
    pub dh: Vec<DhGroup>,
}

/// One CHILD SA (ESP) proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    /// Ciphers, in order of preference.
    pub encr: Vec<AeadAlg>,
    /// Groups for PFS on CHILD SA creation/rekey; empty means no PFS.
    pub dh: Vec<DhGroup>,
    /// Sequence number modes offered: `false` = 32-bit, `true` = ESN.
    /// Defaults to `[false]` (strongSwan's default).
    pub esn: Vec<bool>,
}

fn join<T: Copy>(items: &[T], name: fn(T) -> &'static str) -> String {
    items.iter().map(|i| name(*i)).collect::<Vec<_>>().join("-")
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            join(&self.encr, AeadAlg::name),
            join(&self.prf, Prf::name),
            join(&self.dh, DhGroup::name)
        )
    }
}

impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join(&self.encr, AeadAlg::name))?;
        if !self.dh.is_empty() {
            write!(f, "-{}", join(&self.dh, DhGroup::name))?;
        }
        if self.esn != [false] {
            for e in &self.esn {
                f.write_str(if *e { "-esn" } else { "-noesn" })?;
            }
        }
        Ok(())
    }
}

/// strongSwan's `default` IKE proposal, restricted to what esptun runs.
pub const DEFAULT_IKE: &str = "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha384-prfsha256-x25519-ecp256";
/// Default ESP proposal (no PFS, 32-bit sequence numbers).
pub const DEFAULT_ESP: &str = "aes256gcm16-aes128gcm16-chacha20poly1305";

/// Weak keywords esptun does not implement at all, with what to use instead.
fn weak_unsupported(tok: &str) -> Option<&'static str> {
    Some(match tok {
        "md5" | "md5_128" | "hmacmd5" => "MD5 integrity",
        "sha" | "sha1" | "sha1_160" | "hmacsha1" => "SHA-1 integrity",
        "3des" | "des" | "desiv64" | "desiv32" => "DES/3DES",
        "blowfish" | "blowfish128" | "cast128" | "null" => "this cipher",
        _ => return None,
    })
}

/// Keywords that are valid strongSwan names but not usable here.
fn unsupported_help(tok: &str) -> Option<&'static str> {
    let integ = ["sha256", "sha384", "sha512", "sha2_256", "sha2_384", "sha2_512", "aesxcbc", "aescmac"];
    if integ.contains(&tok) {
        return Some(
            "AEAD proposals take no integrity algorithm; for the PRF write prf<hash>, e.g. prfsha256",
        );
    }
    let cbc = ["aes", "aes128", "aes192", "aes256", "aes128ctr", "aes256ctr", "camellia128", "camellia256"];
    if cbc.contains(&tok) || tok.starts_with("aes") && (tok.contains("ccm") || tok.contains("gcm")) {
        return Some("esptun runs AEAD ciphers only: aes128gcm16, aes256gcm16, chacha20poly1305");
    }
    None
}

const KNOWN: &[&str] = &[
    "aes128gcm16",
    "aes256gcm16",
    "chacha20poly1305",
    "prfsha256",
    "prfsha384",
    "prfsha512",
    "x25519",
    "x448",
    "ecp256",
    "ecp384",
    "ecp521",
    "modp2048",
    "modp3072",
    "modp4096",
    "esn",
    "noesn",
];

enum Tok {
    Encr(AeadAlg),
    Prf(Prf),
    Dh(DhGroup),
    Esn(bool),
}

/// Classifies one keyword or explains why it is refused.
fn token(tok: &str, allow_weak: bool) -> Result<Tok, (String, String)> {
    if let Some(a) = AeadAlg::from_name(tok) {
        return Ok(Tok::Encr(a));
    }
    let weak = |what: &str| {
        (
            format!("weak algorithm `{tok}` ({what}) refused"),
            "pick a stronger one (e.g. prfsha256, x25519, aes128gcm16) or set `allow_weak = true` in [settings]"
                .to_string(),
        )
    };
    if let Some(p) = Prf::from_name(tok) {
        if p.is_weak() && !allow_weak {
            return Err(weak("PRF"));
        }
        return Ok(Tok::Prf(p));
    }
    if let Some(g) = DhGroup::from_name(tok) {
        if g.is_weak() && !allow_weak {
            return Err(weak("key exchange group"));
        }
        return Ok(Tok::Dh(g));
    }
    match tok {
        "esn" => return Ok(Tok::Esn(true)),
        "noesn" => return Ok(Tok::Esn(false)),
        _ => {}
    }
    if let Some(what) = weak_unsupported(tok) {
        if !allow_weak {
            return Err(weak(what));
        }
        return Err((
            format!("`{tok}` is not supported"),
            "esptun runs AEAD ciphers only: aes128gcm16, aes256gcm16, chacha20poly1305".to_string(),
        ));
    }
    if let Some(help) = unsupported_help(tok) {
        return Err((format!("`{tok}` is not supported here"), help.to_string()));
    }
    let help = match super::error::suggest(tok, KNOWN.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? (see docs/CONFIG.md, \"Proposals\")"),
        None => "see docs/CONFIG.md, \"Proposals\", for the algorithm names".to_string(),
    };
    Err((format!("unknown algorithm `{tok}`"), help))
}

fn tokens(s: &str, allow_weak: bool) -> Result<Vec<Tok>, (String, String)> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err(("empty proposal".into(), "write e.g. \"aes256gcm16-prfsha384-x25519\"".into()));
    }
    s.split('-').map(|t| token(t, allow_weak)).collect()
}

/// Parses an IKE proposal; errors are (message, what to do).
pub fn parse_ike(s: &str, allow_weak: bool) -> Result<IkeProposal, (String, String)> {
    if s.trim() == "default" {
        return parse_ike(DEFAULT_IKE, allow_weak);
    }
    let mut p = IkeProposal { encr: vec![], prf: vec![], dh: vec![] };
    for t in tokens(s, allow_weak)? {
        match t {
            Tok::Encr(a) => p.encr.push(a),
            Tok::Prf(x) => p.prf.push(x),
            Tok::Dh(g) => p.dh.push(g),
            Tok::Esn(_) => {
                return Err((
                    "`esn`/`noesn` belong in ESP proposals, not IKE".into(),
                    "remove it here".into(),
                ));
            }
        }
    }
    let missing = if p.encr.is_empty() {
        Some(("cipher", "aes256gcm16, aes128gcm16 or chacha20poly1305"))
    } else if p.prf.is_empty() {
        Some(("PRF", "prfsha256, prfsha384 or prfsha512"))
    } else if p.dh.is_empty() {
        Some(("key exchange group", "x25519, ecp256, modp3072, ..."))
    } else {
        None
    };
    if let Some((what, options)) = missing {
        return Err((
            format!("IKE proposal `{}` has no {what}", s.trim()),
            format!("add a {what}: {options}"),
        ));
    }
    Ok(p)
}

/// Parses an ESP proposal; errors are (message, what to do).
pub fn parse_esp(s: &str, allow_weak: bool) -> Result<EspProposal, (String, String)> {
    if s.trim() == "default" {
        return parse_esp(DEFAULT_ESP, allow_weak);
    }
    let mut p = EspProposal { encr: vec![], dh: vec![], esn: vec![] };
    for t in tokens(s, allow_weak)? {
        match t {
            Tok::Encr(a) => p.encr.push(a),
            Tok::Dh(g) => p.dh.push(g),
            Tok::Esn(e) => p.esn.push(e),
            Tok::Prf(x) => {
                return Err((
                    format!("`{}` is an IKE PRF; ESP proposals have none", x.name()),
                    "remove it here".into(),
                ));
            }
        }
    }
    if p.encr.is_empty() {
        return Err((
            format!("ESP proposal `{}` has no cipher", s.trim()),
            "add aes256gcm16, aes128gcm16 or chacha20poly1305".into(),
        ));
    }
    if p.esn.is_empty() {
        p.esn.push(false);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_examples_from_the_issue() {
        let p = parse_ike("aes256gcm16-prfsha384-x25519", false).unwrap();
        assert_eq!(p.encr, vec![AeadAlg::AesGcm256]);
        assert_eq!(p.prf, vec![Prf::HmacSha384]);
        assert_eq!(p.dh, vec![DhGroup::X25519]);
        assert_eq!(p.dh[0].ikev2_id(), 31);
        let p = parse_ike("chacha20poly1305-prfsha256-ecp256", false).unwrap();
        assert_eq!((p.encr[0], p.prf[0].ikev2_id(), p.dh[0].ikev2_id()), (AeadAlg::ChaCha20Poly1305, 5, 19));
        assert_eq!(p.to_string(), "chacha20poly1305-prfsha256-ecp256");
        let p = parse_ike("default", false).unwrap();
        assert_eq!(p.encr.len(), 3);
    }

    #[test]
    fn esp_examples() {
        let p = parse_esp("aes128gcm16-esn", false).unwrap();
        assert_eq!(
            (p.encr.clone(), p.dh.clone(), p.esn.clone()),
            (vec![AeadAlg::AesGcm128], vec![], vec![true])
        );
        let p = parse_esp("aes256gcm16-x25519-noesn-esn", false).unwrap();
        assert_eq!(p.dh, vec![DhGroup::X25519]);
        assert_eq!(p.esn, vec![false, true]);
        assert_eq!(parse_esp("chacha20poly1305", false).unwrap().esn, vec![false]);
    }

    #[test]
    fn weak_refused_unless_allowed() {
        for (s, ike) in [
            ("aes128gcm16-prfsha1-x25519", true),
            ("aes128gcm16-prfmd5-x25519", true),
            ("aes128gcm16-prfsha256-modp1024", true),
            ("aes128gcm16-prfsha256-modp768", true),
            ("3des-sha1", false),
            ("aes128gcm16-md5", false),
        ] {
            let e = if ike { parse_ike(s, false) } else { parse_esp(s, false).map(|_| unreachable!()) }
                .unwrap_err();
            assert!(e.0.starts_with("weak algorithm"), "{s}: {e:?}");
            assert!(e.1.contains("allow_weak"), "{s}: {e:?}");
        }
        let p = parse_ike("aes128gcm16-prfsha1-modp1024", true).unwrap();
        assert_eq!((p.prf[0].ikev2_id(), p.dh[0].ikev2_id()), (2, 2));
        // Weak ciphers are still not available, but no longer called weak.
        let e = parse_esp("3des", true).unwrap_err();
        assert!(e.0.contains("not supported"), "{e:?}");
    }

    #[test]
    fn unknown_and_incomplete() {
        let e = parse_ike("aes256gcm16-prfsha348-x25519", false).unwrap_err();
        assert_eq!(e.0, "unknown algorithm `prfsha348`");
        assert!(e.1.contains("prfsha384"), "{e:?}");
        assert!(parse_ike("aes256gcm16-x25519", false).unwrap_err().0.contains("no PRF"));
        assert!(parse_ike("prfsha256-x25519", false).unwrap_err().0.contains("no cipher"));
        assert!(parse_ike("aes256gcm16-prfsha256", false).unwrap_err().0.contains("no key"));
        assert!(parse_ike("aes256gcm16-prfsha256-x25519-esn", false).is_err());
        assert!(parse_esp("x25519", false).unwrap_err().0.contains("no cipher"));
        assert!(parse_esp("aes256gcm16-prfsha256", false).is_err());
        assert!(parse_esp("aes128-sha256", false).unwrap_err().0.contains("not supported"));
        assert!(parse_esp("", false).is_err());
        assert!(parse_esp("aes128gcm16--esn", false).is_err());
    }
}
