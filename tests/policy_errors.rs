//! One case per class of bad input from issue 3, each asserting the exact
//! `line:column` (counted by hand in the input below) and the message.

use esptun::policy::config::Config;

/// A valid connection header used as a prefix: 4 lines.
const CONN: &str = "[[connections]]\nname = \"c\"\nlocal = { auth = \"psk\", psk_env = \"K\" }\nremote = { auth = \"psk\" }\n";

fn child(extra: &str) -> String {
    format!("{CONN}[[connections.children]]\nname = \"n\"\n{extra}\n")
}

struct Case {
    class: &'static str,
    text: String,
    line: usize,
    col: usize,
    message: &'static str,
    help: &'static str,
}

fn cases() -> Vec<Case> {
    let c = |class, text: String, line, col, message, help| Case { class, text, line, col, message, help };
    vec![
        c("malformed TOML", "[settings\nallow_weak = true\n".into(), 1, 10, "", "fix the TOML syntax"),
        c("malformed TOML: duplicate key", format!("{CONN}name = \"d\"\n"), 5, 1, "duplicate key", ""),
        c("unknown key", child("remote_tss = [\"203.0.113.0/24\"]"), 7, 1, "unknown key `remote_tss`", "did you mean `remote_ts`?"),
        c("unknown top-level table", "[setings]\n".into(), 1, 2, "unknown key `setings`", "did you mean `settings`?"),
        c("wrong type", child("replay_window = \"big\""), 7, 17, "invalid type: string \"big\"", "write a whole number"),
        c("wrong type: list expected", child("remote_ts = \"203.0.113.0/24\""), 7, 13, "invalid type", "list"),
        c("empty range: pool", "[[pools]]\nname = \"p\"\naddrs = []\n".into(), 3, 9, "pool has no addresses", "add a prefix"),
        c("empty selector", child("remote_ts = [\"\"]"), 7, 14, "empty selector", ""),
        c("inverted address range", child("remote_ts = [\"203.0.113.9-203.0.113.1\"]"), 7, 14, "is inverted", ""),
        c("inverted port range", child("remote_ts = [\"203.0.113.0/24[tcp/2000-1000]\"]"), 7, 14, "port range 2000-1000 is inverted", ""),
        c("mixed families in one selector", child("remote_ts = [\"203.0.113.1-2001:db8::1\"]"), 7, 14, "mixes IPv4 and IPv6", ""),
        c(
            "mixed families across a child",
            child("local_ts = [\"198.51.100.0/24\"]\nremote_ts = [\"2001:db8::/32\"]"),
            8,
            14,
            "no address family in common",
            "pair IPv4 with IPv4",
        ),
        c("ports on a protocol without ports", child("remote_ts = [\"203.0.113.0/24[esp/500]\"]"), 7, 14, "protocol `esp` has no ports", ""),
        c(
            "ports on a rule without protocol",
            format!("{CONN}[[rules]]\naction = \"bypass\"\ndst_port = \"1000-2000\"\n"),
            7,
            12,
            "dst_port on any protocol, which has no ports",
            "set proto = \"tcp\"",
        ),
        c("duplicate connection", format!("{CONN}{CONN}"), 6, 8, "duplicate connection name \"c\" (first defined on line 2)", ""),
        c(
            "duplicate child across connections",
            format!("{}{}", child(""), child("").replace("name = \"c\"", "name = \"d\"")),
            13,
            8,
            "duplicate child/static SA name \"n\"",
            "",
        ),
        c(
            "dangling pool",
            CONN.replace("name = \"c\"", "name = \"c\"\npools = [\"eng\"]"),
            3,
            10,
            "no pool named \"eng\"",
            "[[pools]]",
        ),
        c(
            "dangling gateway",
            child("gateway = \"gw2\"").replace("name = \"c\"", "name = \"c\"\ngateways = [{ address = \"192.0.2.1\" }]"),
            8,
            11,
            "no gateway named \"gw2\"",
            "did you mean \"gw1\"?",
        ),
        c(
            "dangling child in a group",
            format!("{}[[connections.groups]]\nname = \"g\"\nmatch = [\"OU=eng\"]\nchildren = [\"m\"]\n", child("")),
            11,
            13,
            "no child named \"m\"",
            "did you mean \"n\"?",
        ),
        c(
            "dangling child in a rule",
            format!("{}[[rules]]\naction = \"protect\"\nchild = \"nn\"\n", child("")),
            10,
            9,
            "no child or static SA named \"nn\"",
            "did you mean \"n\"?",
        ),
        c("weak algorithm", child("esp_proposals = [\"aes128gcm16-modp1024\"]"), 7, 18, "weak algorithm `modp1024`", "allow_weak = true"),
        c("weak integrity", child("esp_proposals = [\"aes128-sha1\"]"), 7, 18, "is not supported here", "AEAD"),
        c(
            "unknown algorithm",
            CONN.replace("name = \"c\"", "name = \"c\"\nproposals = [\"aes256gcm16-prfsha384-x22519\"]"),
            3,
            14,
            "unknown algorithm `x22519`",
            "did you mean `x25519`?",
        ),
        c("unknown value", child("dpd_action = \"restrat\""), 7, 14, "unknown dpd_action \"restrat\"", "did you mean \"restart\"?"),
        c("out of range", child("replay_window = 16384"), 7, 17, "replay_window = 16384 is out of range", "32..=8192"),
        c("bad duration", child("rekey_time = \"1y\""), 7, 14, "unknown time unit `y`", ""),
        c("lifetimes out of order", child("rekey_time = \"2h\"\nlife_time = \"1h\""), 8, 13, "life_time (3600) must be larger", ""),
        c(
            "inline secret refused",
            CONN.replace("psk_env = \"K\"", "psk = \"0123456789abcdef0123\""),
            3,
            31,
            "inline `psk` refused",
            "psk_file or psk_env",
        ),
        c(
            "reserved SPI",
            "[[static_sas]]\nname = \"s\"\ndirection = \"out\"\nspi = 200\nalg = \"aes128gcm16\"\nkey_file = \"/k\"\n\
             local = \"192.0.2.1\"\nremote = \"192.0.2.2\"\n"
                .into(),
            4,
            7,
            "SPI 200 is out of range",
            "RFC 4303",
        ),
        c("missing key", "[[connections]]\nname = \"c\"\n".into(), 1, 1, "missing required key `local`", "add `local = ...`"),
    ]
}

#[test]
fn each_bad_input_class_is_reported_with_its_location() {
    for case in cases() {
        let errs = match Config::from_str(&case.text, "bad.toml") {
            Ok(_) => panic!("{}: accepted", case.class),
            Err(e) => e.0,
        };
        let first = &errs[0];
        assert_eq!((first.line, first.column), (case.line, case.col), "{}: {first}", case.class);
        assert!(first.message.contains(case.message), "{}: {first}", case.class);
        assert!(first.help.contains(case.help), "{}: {first}", case.class);
        assert!(!first.help.is_empty(), "{}: every error says what to do", case.class);
        let shown = first.to_string();
        assert!(
            shown.starts_with(&format!("bad.toml:{}:{}: ", case.line, case.col)),
            "{}: {shown}",
            case.class
        );
    }
}

#[test]
fn a_failed_reload_leaves_the_running_policy_untouched() {
    let good = child("remote_ts = [\"203.0.113.0/24\"]");
    let mut running = Config::from_str(&good, "p.toml").expect("valid");
    let snapshot = running.clone();
    for case in cases() {
        assert!(running.reload(&case.text, "p.toml").is_err(), "{}", case.class);
        assert_eq!(running, snapshot, "{}: config changed by a failed reload", case.class);
    }
}
