//! Operations: the benchmark rig and the metrics exporter.

pub mod bench;
pub mod metrics;
