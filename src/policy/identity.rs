//! Peer identities and per-user / per-group profiles on a responder.
//!
//! An [`Identity`] is what a peer claims in IKE_AUTH (RFC 7296 §3.5:
//! ID_FQDN, ID_RFC822_ADDR, ID_DER_ASN1_DN, ID_IPV4/6_ADDR, ID_KEY_ID),
//! written in strongSwan's text form: `vpn.example.com`, `alice@example.com`,
//! `C=US, O=Example, OU=eng, CN=alice`, `192.0.2.7`, `@#0a1b` (key id).
//!
//! An [`IdPattern`] selects identities: `*.example.com` (FQDN, `*` matches
//! any run of characters, dots included), `*@example.com` (email),
//! `OU=eng` or `O=Example, OU=eng` (a DN that contains every listed
//! attribute with a matching value, in any order), an address or prefix,
//! or `%any`. Matching is ASCII case-insensitive, as DNS names and most DN
//! attributes are.
//!
//! An [`Authorizer`] holds the ordered [`Profile`]s of one connection; the
//! first profile with a matching pattern decides which children, traffic
//! selectors and address pool the peer may get. A peer that matches none is
//! refused (the IKE layer answers AUTHENTICATION_FAILED at IKE_AUTH).
//!
//! Non-goals: certificate parsing and chain validation (the IKE issue turns
//! a validated certificate's subject into an [`Identity::Dn`]).

use crate::ts::{TrafficSelector, to_u128};
use core::fmt;
use std::net::IpAddr;

/// A peer identity (the content of an IKEv2 ID payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// ID_FQDN.
    Fqdn(String),
    /// ID_RFC822_ADDR.
    Email(String),
    /// ID_DER_ASN1_DN as ordered (attribute, value) pairs; attributes upper
    /// case (`CN`, `OU`, ...).
    Dn(Vec<(String, String)>),
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    Addr(IpAddr),
    /// ID_KEY_ID (opaque octets).
    KeyId(Vec<u8>),
}

/// Splits a DN string into (ATTR, value) pairs. Separators are `,` or `/`
/// (OpenSSL's `/C=US/O=...` form); `\,` escapes a comma.
fn parse_dn(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.trim().trim_start_matches('/').chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ',' | '/' => parts.push(core::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p.split_once('=').ok_or_else(|| format!("DN part `{p}` has no `=`"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("`{k}` is not a DN attribute name"));
        }
        out.push((k.to_ascii_uppercase(), v.to_string()));
    }
    if out.is_empty() {
        return Err("empty distinguished name".to_string());
    }
    Ok(out)
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

impl Identity {
    /// Parses strongSwan's text form of an identity.
    pub fn parse(s: &str) -> Result<Identity, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty identity".to_string());
        }
        if let Some(hex) = s.strip_prefix("@#") {
            return parse_hex(hex).map(Identity::KeyId).ok_or_else(|| format!("`{s}`: key id is not hex"));
        }
        if let Some(fqdn) = s.strip_prefix('@') {
            return Ok(Identity::Fqdn(fqdn.to_string()));
        }
        if s.contains('=') {
            return parse_dn(s).map(Identity::Dn);
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(Identity::Addr(a));
        }
        if s.contains('@') {
            return Ok(Identity::Email(s.to_string()));
        }
        if s.contains(['*', ' ']) {
            return Err(format!("`{s}` is a pattern, not an identity"));
        }
        Ok(Identity::Fqdn(s.to_string()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Fqdn(s) | Identity::Email(s) => f.write_str(s),
            Identity::Dn(parts) => {
                for (i, (k, v)) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                Ok(())
            }
            Identity::Addr(a) => a.fmt(f),
            Identity::KeyId(k) => {
                f.write_str("@#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// A pattern over identities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdPattern {
    /// `%any`: every identity.
    Any,
    /// An FQDN glob such as `*.example.com`.
    Fqdn(String),
    /// An email glob such as `*@example.com`.
    Email(String),
    /// DN attributes that must all be present with matching values.
    Dn(Vec<(String, String)>),
    /// An address range (from an address or a prefix).
    Addr(TrafficSelector),
    /// One exact key id.
    KeyId(Vec<u8>),
}

impl IdPattern {
    /// Parses a pattern (see the module docs for the forms).
    pub fn parse(s: &str) -> Result<IdPattern, String> {
        let s = s.trim();
        if s == "%any" || s == "*" {
            return Ok(IdPattern::Any);
        }
        if s.contains('=') {
            return parse_dn(s).map(IdPattern::Dn);
        }
        if let Some((a, len)) = s.split_once('/')
            && let (Ok(a), Ok(len)) = (a.parse::<IpAddr>(), len.parse::<u8>())
        {
            return TrafficSelector::prefix(a, len).map(IdPattern::Addr).map_err(|e| format!("`{s}`: {e}"));
        }
        if let Some(hex) = s.strip_prefix("@#") {
            return parse_hex(hex).map(IdPattern::KeyId).ok_or_else(|| format!("`{s}`: key id is not hex"));
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return TrafficSelector::range(a, a).map(IdPattern::Addr).map_err(|e| e.to_string());
        }
        if s.is_empty() {
            return Err("empty identity pattern".to_string());
        }
        if s.contains(char::is_whitespace) {
            return Err(format!("`{s}`: spaces are only allowed in DN patterns"));
        }
        if s.contains('@') && !s.starts_with('@') {
            return Ok(IdPattern::Email(s.to_string()));
        }
        Ok(IdPattern::Fqdn(s.trim_start_matches('@').to_string()))
    }

    /// True if `id` is selected by this pattern.
    pub fn matches(&self, id: &Identity) -> bool {
        match (self, id) {
            (IdPattern::Any, _) => true,
            (IdPattern::Fqdn(p), Identity::Fqdn(s)) | (IdPattern::Email(p), Identity::Email(s)) => glob(p, s),
            (IdPattern::Dn(want), Identity::Dn(have)) => want
                .iter()
                .all(|(k, p)| have.iter().any(|(hk, hv)| hk.eq_ignore_ascii_case(k) && glob(p, hv))),
            (IdPattern::Addr(ts), Identity::Addr(a)) => ts.contains_addr(*a),
            (IdPattern::KeyId(k), Identity::KeyId(h)) => k == h,
            _ => false,
        }
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdPattern::Any => f.write_str("%any"),
            IdPattern::Fqdn(s) | IdPattern::Email(s) => f.write_str(s),
            IdPattern::Dn(parts) => Identity::Dn(parts.clone()).fmt(f),
            IdPattern::Addr(ts) => {
                if to_u128(ts.start) == to_u128(ts.end) {
                    ts.start.fmt(f)
                } else {
                    ts.fmt(f)
                }
            }
            IdPattern::KeyId(k) => Identity::KeyId(k.clone()).fmt(f),
        }
    }
}

/// `*` matches any run of characters (possibly empty); everything else
/// matches itself, ASCII case-insensitively. Linear-time greedy matching
/// with one backtrack point, so hostile input cannot blow it up.
fn glob(pattern: &str, s: &str) -> bool {
    let p = pattern.as_bytes();
    let s = s.as_bytes();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(c) if c.eq_ignore_ascii_case(&s[si]) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

/// What a matching peer may get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Profile (group) name from the config.
    pub name: String,
    /// Identities this profile applies to; any one matching is enough.
    pub patterns: Vec<IdPattern>,
    /// Names of the connection's children the peer may create.
    pub children: Vec<String>,
    /// If not empty, the peer's traffic selectors are narrowed to these
    /// (our side of the tunnel the peer may reach).
    pub local_ts: Vec<TrafficSelector>,
    /// Address pool the peer's virtual IP comes from.
    pub pool: Option<String>,
}

/// The ordered profiles of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authorizer {
    /// Profiles in config order; the first match wins.
    pub profiles: Vec<Profile>,
}

impl Authorizer {
    /// The first profile whose patterns select `id`, or `None`: refuse the
    /// peer.
    pub fn authorize(&self, id: &Identity) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.patterns.iter().any(|pat| pat.matches(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identity {
        Identity::parse(s).unwrap()
    }

    fn pat(s: &str) -> IdPattern {
        IdPattern::parse(s).unwrap()
    }

    #[test]
    fn identity_kinds() {
        assert_eq!(id("vpn.example.com"), Identity::Fqdn("vpn.example.com".into()));
        assert_eq!(id("@vpn"), Identity::Fqdn("vpn".into()));
        assert_eq!(id("alice@example.com"), Identity::Email("alice@example.com".into()));
        assert_eq!(id("192.0.2.7"), Identity::Addr("192.0.2.7".parse().unwrap()));
        assert_eq!(id("@#0a1B"), Identity::KeyId(vec![0x0a, 0x1b]));
        assert_eq!(
            id("C=US, O=Example\\, Inc, ou=eng, CN=alice"),
            Identity::Dn(vec![
                ("C".into(), "US".into()),
                ("O".into(), "Example, Inc".into()),
                ("OU".into(), "eng".into()),
                ("CN".into(), "alice".into())
            ])
        );
        assert_eq!(id("/C=US/CN=bob"), id("C=US, CN=bob"));
        assert!(Identity::parse("").is_err());
        assert!(Identity::parse("@#abc").is_err());
        assert!(Identity::parse("CN").is_ok()); // a bare word is an FQDN
        assert!(Identity::parse("=x").is_err());
    }

    #[test]
    fn fqdn_and_email_globs() {
        let p = pat("*.example.com");
        assert!(p.matches(&id("a.example.com")));
        assert!(p.matches(&id("A.B.Example.COM")));
        assert!(!p.matches(&id("example.com")));
        assert!(!p.matches(&id("a.example.com.evil")));
        assert!(!p.matches(&id("alice@a.example.com")));
        let p = pat("*@eng.example.com");
        assert!(matches!(p, IdPattern::Email(_)));
        assert!(p.matches(&id("alice@eng.example.com")));
        assert!(!p.matches(&id("alice@sales.example.com")));
        assert!(pat("%any").matches(&id("C=US")));
    }

    #[test]
    fn dn_fields() {
        let p = pat("OU=eng");
        assert!(p.matches(&id("C=US, O=Example, OU=eng, CN=alice")));
        assert!(!p.matches(&id("C=US, O=Example, OU=sales, CN=bob")));
        assert!(!p.matches(&id("eng.example.com")));
        let p = pat("O=Example, OU=e*");
        assert!(p.matches(&id("CN=carol, OU=Eng, O=example")));
        assert!(!p.matches(&id("CN=carol, OU=eng, O=Other")));
    }

    #[test]
    fn addresses() {
        let p = pat("192.0.2.0/24");
        assert!(p.matches(&id("192.0.2.55")));
        assert!(!p.matches(&id("198.51.100.1")));
        let p = pat("2001:db8::1");
        assert!(p.matches(&id("2001:db8::1")));
        assert!(!p.matches(&id("2001:db8::2")));
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("**x", "x"));
        assert!(!glob("", "x"));
        // Pathological input stays fast (bounded work).
        let long = "a".repeat(5000);
        assert!(!glob("*a*a*a*a*b", &long));
    }

    #[test]
    fn first_matching_profile_wins_and_others_are_refused() {
        let profile = |name: &str, pats: &[&str]| Profile {
            name: name.into(),
            patterns: pats.iter().map(|p| pat(p)).collect(),
            children: vec![name.into()],
            local_ts: vec![],
            pool: None,
        };
        let a = Authorizer {
            profiles: vec![
                profile("eng", &["OU=eng", "*@eng.example.com"]),
                profile("all", &["*.example.com"]),
            ],
        };
        assert_eq!(a.authorize(&id("CN=x, OU=eng")).map(|p| p.name.as_str()), Some("eng"));
        assert_eq!(a.authorize(&id("bob@eng.example.com")).map(|p| p.name.as_str()), Some("eng"));
        assert_eq!(a.authorize(&id("laptop.example.com")).map(|p| p.name.as_str()), Some("all"));
        assert_eq!(a.authorize(&id("mallory@evil.example")), None);
        assert_eq!(a.authorize(&id("CN=x, OU=sales")), None);
    }
}
