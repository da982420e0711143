//! Configuration model, validation and the security policy database (SPD).
//!
//! (Being built under issue 3.)
