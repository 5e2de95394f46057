//! What several escaper types share: readers for the common socket and
//! connect keys, and the egress network filter with its built-in defaults.

pub mod config;
pub mod egress;
pub mod stats;
