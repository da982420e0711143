//! Replays every committed fuzz seed (fuzz/corpus/<target>/*) through the
//! matching `esptun::fuzzing` function, so plain `cargo test` (and CI)
//! re-checks the corpus and any crash input added to it later.

use std::fs;
use std::path::Path;

type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("ipv4", esptun::fuzzing::ipv4),
    ("ipv6", esptun::fuzzing::ipv6),
    ("udp", esptun::fuzzing::udp),
    ("tcp", esptun::fuzzing::tcp),
    ("icmp", esptun::fuzzing::icmp),
    ("esp_header", esptun::fuzzing::esp_header),
    ("udp_encap", esptun::fuzzing::udp_encap),
    ("flow", esptun::fuzzing::flow),
];

#[test]
fn every_target_has_a_corpus_and_it_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus");
    for (name, run) in TARGETS {
        let dir = root.join(name);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("readable corpus directory").path();
            if !path.is_file() {
                continue;
            }
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            run(&data);
            count += 1;
        }
        assert!(count > 0, "fuzz corpus for {name} is empty");
    }
}

#[test]
fn every_fuzz_target_is_replayed() {
    // A target directory under fuzz/fuzz_targets without an entry above
    // would silently escape the replay.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("fuzz_targets");
    for entry in fs::read_dir(&dir).expect("fuzz/fuzz_targets exists") {
        let path = entry.expect("readable directory").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        assert!(TARGETS.iter().any(|(n, _)| *n == stem), "fuzz target {stem} is not replayed here");
    }
}
