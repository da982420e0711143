//! The security policy database: ordered rules compiled for fast per-packet classification.
