//! Loader tests: a full file, defaults, and one case per error class with
//! the exact position (counted by hand from the input text).

use super::*;
use crate::crypto::AeadAlg;
use crate::policy::identity::Identity;

const GOOD: &str = r#"
[settings]
default_action = "bypass"

[[pools]]
name = "eng"
addrs = ["198.51.100.64/26", "2001:db8:1::/112"]

[[connections]]
name = "hq"
gateways = [
  { name = "a", address = "192.0.2.10", weight = 3 },
  { name = "b", address = "192.0.2.11", port = 4500 },
]
proposals = ["aes256gcm16-prfsha384-x25519"]
dpd_delay = "30s"
pools = ["eng"]
local = { auth = "psk", id = "gw.example.com", psk_env = "ESPTUN_PSK" }
remote = { auth = "psk", id = "*.example.com" }

[[connections.children]]
name = "net"
local_ts = ["198.51.100.0/24"]
remote_ts = ["203.0.113.0/24[tcp/1000-2000]", "203.0.113.9"]
esp_proposals = ["aes128gcm16-esn"]
rekey_time = "30m"
life_bytes = "1G"
start_action = "trap"
gateway = "b"

[[connections.groups]]
name = "eng"
match = ["OU=eng"]
children = ["net"]
pool = "eng"

[[rules]]
action = "protect"
child = "net"
dst = ["203.0.113.0/24"]
proto = "udp"
dst_port = 53
dscp = [46]
"#;

fn errs(text: &str) -> Vec<ConfigError> {
    Config::from_str(text, "t.toml").unwrap_err().0
}

/// Asserts exactly one error at `line:col` whose message contains `msg`.
fn one(text: &str, line: usize, col: usize, msg: &str) -> ConfigError {
    let e = errs(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    let e = e.into_iter().next().unwrap();
    assert_eq!((e.line, e.column), (line, col), "{e}");
    assert!(e.message.contains(msg), "{e}");
    e
}

const CONN: &str = "[[connections]]\nname = \"c\"\nlocal = { auth = \"psk\", psk_env = \"K\" }\nremote = { auth = \"psk\" }\n";

#[test]
fn full_file() {
    let c = Config::from_str(GOOD, "good.toml").unwrap();
    assert_eq!(c.settings.default_action, DefaultAction::Bypass);
    let hq = c.connection("hq").unwrap();
    assert_eq!(hq.gateways.len(), 2);
    assert_eq!(hq.gateways[0].weight, 3);
    assert_eq!(hq.gateways[0].port, 500);
    assert_eq!(hq.gateways[1].port, 4500);
    assert_eq!(hq.dpd_delay, 30);
    assert_eq!(hq.rekey_time, 4 * 3600);
    let ch = &hq.children[0];
    assert_eq!(ch.lifetime.rekey_time, 1800);
    assert_eq!(ch.lifetime.life_time, 1980);
    assert_eq!(ch.lifetime.rand_time, 180);
    assert_eq!(ch.lifetime.life_bytes, 1 << 30);
    assert_eq!(ch.esp_proposals[0].encr, vec![AeadAlg::AesGcm128]);
    assert_eq!(ch.esp_proposals[0].esn, vec![true]);
    assert_eq!(ch.start_action, StartAction::Trap);
    assert_eq!(ch.gateway, Some(1));
    assert_eq!(ch.replay_window, DEFAULT_REPLAY_WINDOW);
    assert_eq!(ch.remote_ts.len(), 2);
    let p = hq.authorizer.authorize(&Identity::parse("CN=a, OU=eng").unwrap()).unwrap();
    assert_eq!(p.pool.as_deref(), Some("eng"));
    assert!(hq.authorizer.authorize(&Identity::parse("CN=a, OU=ops").unwrap()).is_none());
    let r = &c.rules[0];
    assert_eq!(r.action, RuleAction::Protect(Target::Child(0, 0)));
    assert_eq!((r.proto, r.dst_ports, r.dscp), (Some(17), (53, 53), Some(1 << 46)));
    assert_eq!(r.src.len(), 2, "src defaults to both families");
    assert_eq!(r.line, 37, "the [[rules]] header line");
}

#[test]
fn failed_reload_keeps_the_running_config() {
    let mut running = Config::from_str(GOOD, "good.toml").unwrap();
    let before = running.clone();
    let bad = GOOD.replace("weight = 3", "weight = 0");
    assert!(running.reload(&bad, "good.toml").is_err());
    assert_eq!(running, before);
    let other = GOOD.replace("dpd_delay = \"30s\"", "dpd_delay = \"45s\"");
    running.reload(&other, "good.toml").unwrap();
    assert_eq!(running.connections[0].dpd_delay, 45);
}

#[test]
fn syntax_error() {
    let e = one("[settings\n", 1, 10, "");
    assert!(e.help.contains("TOML"), "{e}");
}

#[test]
fn unknown_key_with_suggestion() {
    let text = format!("{CONN}[[connections.children]]\nnmae = \"x\"\n");
    let e = one(&text, 6, 1, "unknown key `nmae`");
    assert!(e.help.starts_with("did you mean `name`?"), "{e}");
    let e = one("[setings]\n", 1, 2, "unknown key `setings`");
    assert!(e.help.contains("`settings`"), "{e}");
}

#[test]
fn wrong_type() {
    let text = CONN.replace("name = \"c\"", "name = \"c\"\nmtu = \"big\"");
    let e = one(&text, 3, 7, "invalid type");
    assert!(e.help.contains("whole number"), "{e}");
}

#[test]
fn unknown_enum_value_with_suggestion() {
    let e = one("[settings]\ndefault_action = \"bypas\"\n", 2, 18, "unknown default_action");
    assert!(e.help.contains("did you mean \"bypass\""), "{e}");
}

#[test]
fn inverted_and_empty_ranges() {
    let text = format!(
        "{CONN}[[connections.children]]\nname = \"n\"\nremote_ts = [\"198.51.100.9-198.51.100.1\"]\n"
    );
    one(&text, 7, 14, "inverted");
    let text = format!(
        "{CONN}[[connections.children]]\nname = \"n\"\nremote_ts = [\"198.51.100.0/24[tcp/90-80]\"]\n"
    );
    one(&text, 7, 14, "inverted");
    let text = "[[pools]]\nname = \"p\"\naddrs = []\n";
    let e = errs(text);
    assert_eq!((e[0].line, e[0].column), (3, 9), "{e:?}");
    assert!(e[0].message.contains("no addresses"));
}

#[test]
fn mixed_families() {
    let text =
        format!("{CONN}[[connections.children]]\nname = \"n\"\nremote_ts = [\"198.51.100.1-2001:db8::1\"]\n");
    one(&text, 7, 14, "mixes IPv4 and IPv6");
    let text = format!(
        "{CONN}[[connections.children]]\nname = \"n\"\nlocal_ts = [\"198.51.100.0/24\"]\nremote_ts = [\"2001:db8::/32\"]\n"
    );
    one(&text, 8, 14, "no address family in common");
}

#[test]
fn ports_without_ports() {
    let text =
        format!("{CONN}[[connections.children]]\nname = \"n\"\nremote_ts = [\"203.0.113.0/24[gre/80]\"]\n");
    one(&text, 7, 14, "has no ports");
    let text = format!("{CONN}[[rules]]\naction = \"drop\"\ndst_port = 80\n");
    one(&text, 7, 12, "which has no ports");
}

#[test]
fn duplicate_names() {
    let text = format!("{CONN}{CONN}");
    let e = one(&text, 6, 8, "duplicate connection name \"c\" (first defined on line 2)");
    assert!(e.help.contains("different"));
    let text =
        format!("{CONN}[[connections.children]]\nname = \"n\"\n[[connections.children]]\nname = \"n\"\n");
    one(&text, 8, 8, "duplicate child/static SA name");
}

#[test]
fn dangling_references() {
    let text = CONN.replace("name = \"c\"", "name = \"c\"\npools = [\"engg\"]");
    let e = one(&text, 3, 10, "no pool named \"engg\"");
    assert!(e.help.contains("[[pools]]"), "{e}");
    let text = format!(
        "[[pools]]\nname = \"eng\"\naddrs = [\"198.51.100.64/26\"]\n{}",
        CONN.replace("name = \"c\"", "name = \"c\"\npools = [\"engg\"]")
    );
    let e = one(&text, 6, 10, "no pool named");
    assert!(e.help.contains("did you mean \"eng\""), "{e}");
    let text = format!(
        "{}[[connections.children]]\nname = \"n\"\ngateway = \"gw3\"\n",
        CONN.replace(
            "name = \"c\"",
            "name = \"c\"\ngateways = [{ address = \"192.0.2.1\" }, { address = \"192.0.2.2\" }]"
        )
    );
    let e = one(&text, 8, 11, "no gateway named \"gw3\"");
    assert!(e.help.contains("gw1"), "{e}");
    let text = format!("{CONN}[[rules]]\naction = \"protect\"\nchild = \"nope\"\n");
    one(&text, 7, 9, "no child or static SA named \"nope\"");
}

#[test]
fn weak_and_unknown_proposals() {
    let text = CONN.replace("name = \"c\"", "name = \"c\"\nproposals = [\"aes128gcm16-prfsha1-modp1024\"]");
    let e = one(&text, 3, 14, "weak algorithm `prfsha1`");
    assert!(e.help.contains("allow_weak = true"));
    let allowed = format!("[settings]\nallow_weak = true\n{text}");
    assert!(Config::from_str(&allowed, "t").is_ok());
    let text = CONN.replace("name = \"c\"", "name = \"c\"\nproposals = [\"aes256gcm16-prfsha348-x25519\"]");
    let e = one(&text, 3, 14, "unknown algorithm `prfsha348`");
    assert!(e.help.contains("prfsha384"), "{e}");
}

#[test]
fn secrets_policy() {
    let text = CONN.replace("psk_env = \"K\"", "psk = \"correct horse battery staple\"");
    let e = one(&text, 3, 31, "inline `psk` refused");
    assert!(e.help.contains("allow_inline_secrets"));
    let ok = format!("[settings]\nallow_inline_secrets = true\n{text}");
    let c = Config::from_str(&ok, "t").unwrap();
    let shown = format!("{:?}", c.connections[0].local.psk);
    assert!(!shown.contains("horse"), "{shown}");
    let text = CONN.replace(", psk_env = \"K\"", "");
    assert!(errs(&text).iter().any(|e| e.message.contains("no PSK")));
}

#[test]
fn static_sa_checks() {
    let base = "[settings]\nallow_inline_secrets = true\n[[static_sas]]\nname = \"o\"\ndirection = \"out\"\n\
                spi = \"0x1000\"\nalg = \"aes128gcm16\"\nkey = \"000102030405060708090a0b0c0d0e0f10111213\"\n\
                local = \"192.0.2.1\"\nremote = \"192.0.2.2\"\n";
    let c = Config::from_str(base, "t").unwrap();
    let sa = &c.static_sas[0];
    assert_eq!((sa.spi, sa.encap, sa.direction), (0x1000, Some((4500, 4500)), Direction::Out));
    assert_eq!(format!("{:?}", sa.key), "<redacted>");
    assert_eq!(sa.key.keymat(sa.alg).unwrap().expose()[19], 0x13);
    one(&base.replace("0x1000", "0xff"), 6, 7, "SPI 255 is out of range");
    one(&base.replace("10111213", "1011"), 8, 7, "key is 18 bytes; aes128gcm16 needs 20");
    one(&base.replace("aes128gcm16", "aes128gcm61"), 7, 7, "unknown algorithm");
    one(&base.replace("192.0.2.2", "2001:db8::2"), 10, 10, "mix IPv4 and IPv6");
    one(&base.replace("allow_inline_secrets = true", ""), 8, 7, "inline `key` refused");
}

#[test]
fn lifetimes_must_be_ordered() {
    let text =
        format!("{CONN}[[connections.children]]\nname = \"n\"\nrekey_time = \"1h\"\nlife_time = \"30m\"\n");
    one(&text, 8, 13, "life_time (1800) must be larger than rekey_time (3600)");
    let text = format!("{CONN}[[connections.children]]\nname = \"n\"\nrekey_time = \"2x\"\n");
    one(&text, 7, 14, "unknown time unit");
    let text = format!("{CONN}[[connections.children]]\nname = \"n\"\nreplay_window = 100000\n");
    one(&text, 7, 17, "out of range");
}

#[test]
fn empty_file_says_what_to_add() {
    let e = one("", 1, 1, "nothing to do");
    assert!(e.help.contains("[[connections]]"));
}

#[test]
fn error_display_format() {
    let e = one("[setings]\n", 1, 2, "unknown key");
    let s = e.to_string();
    assert!(s.starts_with("t.toml:1:2: unknown key `setings` — did you mean `settings`?"), "{s}");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random TOML-ish text never panics the loader.
        #[test]
        fn loader_never_panics(s in "[\\[\\]a-z_=\". \n0-9/:\\-{},*@]{0,200}") {
            let _ = Config::from_str(&s, "fuzz.toml");
        }

        /// Mutations of a valid file never panic either.
        #[test]
        fn mutated_good_file_never_panics(pos in 0usize..2000, len in 0usize..20, junk in "[\\[\\]a-z=\"0-9.\n/\\-]{0,8}") {
            let mut t = GOOD.to_string();
            let mut p = pos.min(t.len());
            while !t.is_char_boundary(p) { p -= 1; }
            let mut e = (p + len).min(t.len());
            while !t.is_char_boundary(e) { e -= 1; }
            t.replace_range(p..e, &junk);
            let _ = Config::from_str(&t, "fuzz.toml");
        }
    }
}

#[test]
fn secrets_resolve_from_file_env_and_inline() {
    use super::model::Secret;
    let dir = std::env::temp_dir().join(format!("esptun-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("psk");
    // Trailing newlines (LF or CRLF) are stripped, inner bytes kept.
    std::fs::write(&file, b"s3cret with space\r\n\n").unwrap();
    assert_eq!(Secret::File(file.clone()).resolve().unwrap().as_slice(), b"s3cret with space");
    std::fs::write(&file, b"\n").unwrap();
    let e = Secret::File(file.clone()).resolve().unwrap_err();
    assert!(e.ends_with("is empty"), "{e}");
    let missing = dir.join("missing");
    let e = Secret::File(missing.clone()).resolve().unwrap_err();
    assert!(e.starts_with(&format!("cannot read {}", missing.display())), "{e}");
    let _ = std::fs::remove_dir_all(&dir);

    // PATH is set in any test environment; this name is not.
    let path = std::env::var("PATH").unwrap();
    assert_eq!(Secret::Env("PATH".into()).resolve().unwrap().as_slice(), path.as_bytes());
    let e = Secret::Env("ESPTUN_TEST_SURELY_UNSET_42".into()).resolve().unwrap_err();
    assert_eq!(e, "environment variable ESPTUN_TEST_SURELY_UNSET_42 is not set");

    let inline = Secret::Inline(zeroize::Zeroizing::new("abc".into()));
    assert_eq!(inline.resolve().unwrap().as_slice(), b"abc");
    assert_eq!(format!("{inline}"), "inline <redacted>", "never printed");
}
