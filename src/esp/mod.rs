//! ESP security associations and tunnel-mode seal/open (being built).

pub mod frag;
pub mod pmtu;
pub mod replay;
