//! Policy: the configuration model and its validation, the security policy
//! database (SPD) with its per-worker flow cache, and multipath gateway
//! groups.

pub mod config;
pub mod multipath;
pub mod spd;
