//! The packet path: per-core workers, TUN and UDP I/O backends, offloads.
//!
//! (being written; see docs/STATUS.md)
