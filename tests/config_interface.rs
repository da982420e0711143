//! The `[interface]` section and static SAs that key a connection child's
//! gateway (`child` + `gateway`): defaults, values, and each error class
//! with its position.

use esptun::policy::compile::compile;
use esptun::policy::config::{Config, Cpus, IoChoice, Target};

const SA: &str = r#"
[settings]
allow_inline_secrets = true
[[static_sas]]
name = "out"
direction = "out"
spi = 4097
alg = "aes128gcm16"
key = "000102030405060708090a0b0c0d0e0f10111213"
local = "192.0.2.1"
remote = "192.0.2.2"
"#;

fn errors(text: &str) -> Vec<String> {
    match Config::from_str(text, "t.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn interface_defaults_and_values() {
    let c = Config::from_str(SA, "t.toml").unwrap();
    assert_eq!(c.interface.name, "esptun0");
    assert_eq!((c.interface.mtu, c.interface.path_mtu, c.interface.workers), (None, 1500, 0));
    assert!(c.interface.routes.is_none() && c.interface.offloads && c.interface.io == IoChoice::Auto);
    assert_eq!(c.interface.metrics, None, "metrics are off by default");
    assert_eq!(c.interface.cpus, Cpus::Auto, "workers are pinned by default");
    let text = format!(
        "{SA}\n[interface]\nname = \"vpn1\"\naddresses = [\"198.51.100.1/24\", \"2001:db8:1::1\"]\nmtu = 1400\n\
         path_mtu = 9000\nroutes = [\"203.0.113.0/24\", \"2001:db8:2::/64\"]\nworkers = 3\nio = \"syscall\"\noffloads = false\n\
         metrics = \"[::1]:9720\"\n"
    );
    let c = Config::from_str(&text, "t.toml").unwrap();
    let i = &c.interface;
    assert_eq!(i.name, "vpn1");
    assert_eq!(
        i.addresses,
        vec![("198.51.100.1".parse().unwrap(), 24), ("2001:db8:1::1".parse().unwrap(), 128)]
    );
    assert_eq!(
        (i.mtu, i.path_mtu, i.workers, i.io, i.offloads),
        (Some(1400), 9000, 3, IoChoice::Syscall, false)
    );
    assert_eq!(i.routes.as_ref().map(Vec::len), Some(2));
    assert_eq!(i.metrics, Some("[::1]:9720".parse().unwrap()));
}

#[test]
fn interface_errors_name_the_line() {
    let bad = |body: &str| errors(&format!("{SA}\n[interface]\n{body}\n"));
    // The body's line: the lines of SA, the blank one, "[interface]", then it.
    let line = format!("{SA}\n[interface]\n").matches('\n').count() + 1;
    let e = bad("name = \"this-name-is-far-too-long\"");
    assert!(
        e[0].starts_with(&format!("t.toml:{line}:")) && e[0].contains("not a valid device name"),
        "{e:?}"
    );
    let e = bad("routes = [\"203.0.113.1/24\"]");
    assert!(e[0].contains("bits set past the prefix"), "{e:?}");
    let e = bad("addresses = [\"198.51.100.1/33\"]");
    assert!(e[0].contains("prefix length"), "{e:?}");
    let e = bad("io = \"urign\"");
    assert!(e[0].contains("did you mean \"uring\""), "{e:?}");
    let e = bad("mtu = 100");
    assert!(e[0].contains("out of range"), "{e:?}");
    let e = bad("metrics = \"9720\"");
    assert!(e[0].starts_with(&format!("t.toml:{line}:")) && e[0].contains("ADDR:PORT"), "{e:?}");
    let e = bad("metrics = \"127.0.0.1:0\"");
    assert!(e[0].contains("not an address and port"), "{e:?}");
    let e = bad("cpus = [0, 2, 0]");
    assert!(e[0].starts_with(&format!("t.toml:{line}:")) && e[0].contains("CPU 0 is listed twice"), "{e:?}");
    let e = bad("cpus = \"3-1\"");
    assert!(e[0].contains("inverted"), "{e:?}");
    let e = bad("cpus = []");
    assert!(e[0].contains("empty"), "{e:?}");
    let e = bad("cpus = \"pinned\"");
    assert!(e[0].contains("not a CPU number") && e[0].contains("\"none\""), "{e:?}");
    let e = bad("cpus = [-1]");
    assert!(e[0].contains("not a CPU number"), "{e:?}");
    let e = bad("cpus = 3");
    assert!(
        e[0].starts_with(&format!("t.toml:{line}:")) && e[0].contains("a string or a list of integers"),
        "{e:?}"
    );
    let e = bad("mtuu = 1400");
    assert!(e[0].contains("unknown") && e[0].contains("mtu"), "{e:?}");
}

const MULTI: &str = r#"
[settings]
allow_inline_secrets = true
[[connections]]
name = "wan"
local_addrs = ["192.0.2.1"]
gateways = [
  { name = "gw-a", address = "192.0.2.11", weight = 1 },
  { name = "gw-b", address = "192.0.2.12", weight = 2 },
]
local = { auth = "psk", id = "a.example", psk_env = "X" }
remote = { auth = "psk", id = "b.example" }
[[connections.children]]
name = "bulk"
local_ts = ["198.51.100.0/24"]
remote_ts = ["203.0.113.0/24"]
"#;

fn via_sa(child: &str, gateway: Option<&str>, remote: &str, direction: &str) -> String {
    let gw = gateway.map_or(String::new(), |g| format!("gateway = \"{g}\"\n"));
    format!(
        "{MULTI}\n[[static_sas]]\nname = \"k\"\ndirection = \"{direction}\"\nspi = 4097\nalg = \"aes128gcm16\"\n\
         key = \"000102030405060708090a0b0c0d0e0f10111213\"\nlocal = \"192.0.2.1\"\nremote = \"{remote}\"\nchild = \"{child}\"\n{gw}"
    )
}

#[test]
fn static_sa_keys_a_child_gateway() {
    let c = Config::from_str(&via_sa("wan/bulk", Some("gw-b"), "192.0.2.12", "out"), "t.toml").unwrap();
    let v = c.static_sas[0].via.expect("via");
    assert_eq!((v.conn, v.child, v.gateway), (0, 0, 1));
    // The SA is not a policy target of its own: the child is.
    let p = compile(&c);
    assert_eq!(p.targets, vec![Target::Child(0, 0)]);
    assert!(esptun::policy::check::render(&c).unwrap().contains("keys child wan/bulk via gateway gw-b"));
}

#[test]
fn static_sa_via_errors() {
    let e = errors(&via_sa("wan/bulkk", Some("gw-b"), "192.0.2.12", "out"));
    assert!(
        e.iter().any(|e| e.contains("no child named") && e.contains("did you mean \"wan/bulk\"")),
        "{e:?}"
    );
    let e = errors(&via_sa("bulk", None, "192.0.2.12", "out"));
    assert!(e.iter().any(|e| e.contains("several gateways")), "{e:?}");
    let e = errors(&via_sa("bulk", Some("gw-c"), "192.0.2.12", "out"));
    assert!(e.iter().any(|e| e.contains("no gateway named \"gw-c\"")), "{e:?}");
    let e = errors(&via_sa("bulk", Some("gw-a"), "192.0.2.12", "out"));
    assert!(e.iter().any(|e| e.contains("is not the address of gateway \"gw-a\"")), "{e:?}");
    let e = errors(&via_sa("bulk", Some("gw-a"), "192.0.2.11", "in"));
    assert!(e.iter().any(|e| e.contains("`child` on an inbound static SA")), "{e:?}");
}

#[test]
fn cpus_forms() {
    let cpus = |v: &str| {
        Config::from_str(&format!("{SA}\n[interface]\ncpus = {v}\n"), "t.toml").unwrap().interface.cpus
    };
    assert_eq!(cpus("\"auto\""), Cpus::Auto);
    assert_eq!(cpus("\"none\""), Cpus::Unpinned);
    assert_eq!(cpus("[3, 1]"), Cpus::List(vec![3, 1]));
    assert_eq!(cpus("\"0-2, 6\""), Cpus::List(vec![0, 1, 2, 6]));
    // The command-line form parses the same way.
    assert_eq!("1,0".parse::<Cpus>(), Ok(Cpus::List(vec![1, 0])));
    assert!("1024".parse::<Cpus>().is_err() && "0-1,1".parse::<Cpus>().is_err());
    // Placement: auto walks the allowed CPUs, a list is taken as written
    // and must lie inside them; none pins nothing.
    let allowed = [2, 3, 5];
    assert_eq!(
        (0..4).map(|i| Cpus::Auto.for_worker(i, &allowed).unwrap()).collect::<Vec<_>>(),
        [Some(2), Some(3), Some(5), Some(2)]
    );
    assert_eq!(Cpus::List(vec![5, 3]).for_worker(2, &allowed), Ok(Some(5)));
    let e = Cpus::List(vec![4]).for_worker(0, &allowed).unwrap_err();
    assert!(e.contains("CPU 4 is not one esptun may run on"), "{e}");
    assert_eq!(Cpus::Unpinned.for_worker(0, &allowed), Ok(None));
    assert_eq!(Cpus::Auto.for_worker(0, &[]), Ok(None));
    assert_eq!(Cpus::List(vec![0, 2, 3]).to_string(), "0,2,3");
}

#[test]
fn static_sa_keepalive() {
    let with = |extra: &str| format!("{SA}{extra}\n");
    let c = Config::from_str(&with("keepalive = \"25s\""), "t.toml").unwrap();
    assert_eq!(c.static_sas[0].keepalive, 25);
    assert!(esptun::policy::check::render(&c).unwrap().contains("NAT keepalive every 25s"));
    assert_eq!(Config::from_str(SA, "t.toml").unwrap().static_sas[0].keepalive, 0, "off by default");
    // The keepalive line is the last of the SA: SA's lines, then it.
    let line = SA.matches('\n').count() + 1;
    let e = errors(&with("keepalive = \"25s\"").replace("direction = \"out\"", "direction = \"in\""));
    assert!(
        e.iter().any(|e| e.starts_with(&format!("t.toml:{line}:")) && e.contains("inbound static SA")),
        "{e:?}"
    );
    let e = errors(&with("keepalive = 20\nencap = false"));
    assert!(e.iter().any(|e| e.contains("without UDP encapsulation") && e.contains("encap = true")), "{e:?}");
    let e = errors(&with("keepalive = \"20y\""));
    assert!(e.iter().any(|e| e.contains("keepalive: unknown time unit")), "{e:?}");
}
