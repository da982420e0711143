//! Policy: the configuration model and its validation, the security policy
//! database (SPD) with its per-worker flow cache, and multipath gateway
//! groups.
//!
//! - [`config`]: TOML files to a validated [`config::Config`].
//! - [`identity`]: peer identities, patterns and per-group profiles.
//! - [`compile`]: a `Config` to the ordered rule list the SPD is built from.
//! - [`check`]: the readable report printed by `esptun check`.
//! - [`spd`], [`multipath`]: per-packet classification and gateway choice.

pub mod check;
pub mod compile;
pub mod config;
pub mod identity;
pub mod multipath;
pub mod spd;
