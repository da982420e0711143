//! Operations: the benchmark rig (and later metrics and status).

pub mod bench;
