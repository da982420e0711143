//! Zero-copy, panic-free views over packet bytes (being built under issue 2).

pub mod checksum;
