#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| esptun::fuzzing::udp(data));
