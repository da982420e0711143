//! Configuration files (TOML): model, parsing and validation.
