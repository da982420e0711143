//! Compiling a Config into ordered SPD rules.
