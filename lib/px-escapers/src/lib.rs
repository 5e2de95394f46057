//! px-escapers
