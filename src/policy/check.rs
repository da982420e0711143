//! The `esptun check` report.
