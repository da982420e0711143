//! Multipath gateway groups: weighted rendezvous (HRW) hashing of flows onto gateways.
