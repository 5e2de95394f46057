//! The control protocol shared by `g3proxy` (the server side) and
//! `g3proxy-ctl` (the client):
//!
//! - [`control_capnp`]: the Rust generated from `schema/control.capnp`
//!   (`ProcControl` is the bootstrap interface). The generated code is
//!   committed; `scripts/capnp-regen.sh` regenerates it and [`stamp`] is what
//!   the drift test checks, so a build needs no Cap'n Proto compiler.
//! - [`naming`]: where the control sockets are (`<dir>/<group>_<pid>.sock`,
//!   and `<dir>/<group>.sock`, a symlink to the group's newest daemon).
//! - [`rpc`]: connecting a capnp-rpc client over a Unix socket.
//! - [`handover`]: passing listening sockets from an old daemon to its
//!   successor over the same control socket (SCM_RIGHTS).
//!
//! ```no_run
//! # async fn f() -> Result<(), px_ctl_proto::rpc::CtlError> {
//! let path = px_ctl_proto::naming::group_link("/run/g3proxy".as_ref(), "edge");
//! let local = tokio::task::LocalSet::new();
//! local.run_until(async move {
//!     let ctl = px_ctl_proto::rpc::connect(&path, std::time::Duration::from_secs(5)).await?;
//!     let reply = ctl.client.version_request().send().promise.await?;
//!     println!("{}", reply.get()?.get_version()?.to_str()?);
//!     Ok(())
//! }).await
//! # }
//! ```

pub mod handover;
pub mod naming;
pub mod rpc;
pub mod stamp;

/// The Rust generated from `schema/control.capnp` (do not edit by hand).
#[rustfmt::skip]
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    missing_docs,
    unused_qualifications
)]
#[path = "generated/control_capnp.rs"]
pub mod control_capnp;
