//! Entry points shared by the cargo-fuzz targets (fuzz/) and the corpus
//! replay test (tests/fuzz_corpus.rs). Each takes arbitrary bytes and must
//! never panic.
