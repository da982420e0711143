//! Configuration files (TOML): model, parsing and validation.
//!
//! The format follows strongSwan's swanctl.conf concepts (connections with
//! local/remote authentication, children with traffic selectors, proposal
//! strings, pools) plus esptun's own: multipath gateways with weights,
//! static (manual) SAs, ordered policy rules and per-group profiles.
//! docs/CONFIG.md documents every key and default.
//!
//! Loading is a pure function of the text: [`Config::from_str`] reads no
//! file, environment variable or clock (key and PSK files are only named
//! here and read at start-up via [`Secret::resolve`] and
//! [`StaticKey::keymat`]). A reload therefore parses into a new value and
//! swaps it in only on success ([`Config::reload`]): a broken file leaves
//! the running policy untouched.
//!
//! Errors carry `file:line:column`, a message and what to do. TOML syntax,
//! unknown keys and wrong types stop at the first one (that is where the
//! TOML deserializer stops); semantic checks report every problem found.

mod build;
mod build_iface;
mod build_rules;
mod error;
mod model;
pub mod proposal;
mod raw;
pub mod selector;
pub mod units;

pub use build::{DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use selector::TsSpec;

use build::Ctx;
use error::Diag;
use std::path::Path;

impl Config {
    /// Parses and validates `text`; `path` is only used in messages.
    pub fn from_str(text: &str, path: &str) -> Result<Config, ConfigErrors> {
        let mut d = Diag::new(path, text);
        let raw: raw::RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let err = d.toml_error(&e);
                return Err(ConfigErrors(vec![err]));
            }
        };
        d = Diag::new(path, text);
        let mut c = Ctx::new(d);
        build::settings(&mut c, &raw.settings);
        let pools = build::pools(&mut c, &raw.pools);
        let connections = build::connections(&mut c, &raw.connections);
        let static_sas = build_rules::static_sas(&mut c, &raw.static_sas, &connections);
        let rules = build_rules::rules(&mut c, &raw.rules, &static_sas);
        let interface = build_iface::interface(&mut c, &raw.interface);
        if connections.is_empty() && static_sas.is_empty() && !c.d.has_errors() {
            c.d.err(
                0..0,
                "nothing to do: no connections and no static SAs",
                "add a [[connections]] or [[static_sas]] table",
            );
        }
        if c.d.has_errors() {
            return Err(c.d.finish());
        }
        Ok(Config {
            source: path.to_string(),
            settings: c.settings,
            pools,
            connections,
            static_sas,
            rules,
            interface,
        })
    }

    /// Reads and validates a file (the only I/O: reading its text).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_str(&text, &name),
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                file: name,
                line: 1,
                column: 1,
                message: format!("cannot read the file: {e}"),
                help: "check the path and permissions".into(),
            }])),
        }
    }

    /// Replaces `self` with the configuration in `text` if, and only if, it
    /// is valid; on error `self` is unchanged and still in force.
    pub fn reload(&mut self, text: &str, path: &str) -> Result<(), ConfigErrors> {
        *self = Config::from_str(text, path)?;
        Ok(())
    }

    /// A connection by name.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// A pool by name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests;
