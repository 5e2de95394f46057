//! px-resolver
