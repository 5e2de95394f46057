//! px-socket
