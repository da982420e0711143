//! ESP security associations and tunnel-mode seal/open (being built).
