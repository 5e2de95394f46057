//! capnp-rpc over a Unix socket, both ends. capnp-rpc is `!Send`: both
//! [`connect`] and [`serve`] must run inside a `tokio::task::LocalSet`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use capnp::message::ReaderOptions;
use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::{RpcSystem, twoparty};
use futures::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::control_capnp::{operation_result, proc_control};

/// The largest message either side accepts (words of 8 bytes): control
/// messages are small, and a garbage header must not make us allocate much.
pub const MAX_MESSAGE_WORDS: usize = 1 << 20;

/// A control error with a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError(pub String);

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CtlError {}

impl From<capnp::Error> for CtlError {
    fn from(e: capnp::Error) -> Self {
        CtlError(format!("rpc failed: {}", e.extra))
    }
}

impl From<std::str::Utf8Error> for CtlError {
    fn from(e: std::str::Utf8Error) -> Self {
        CtlError(format!("bad text in reply: {e}"))
    }
}

impl From<capnp::NotInSchema> for CtlError {
    fn from(e: capnp::NotInSchema) -> Self {
        CtlError(format!("reply not in schema: {e}"))
    }
}

/// Reader limits for both sides.
pub fn reader_options() -> ReaderOptions {
    let mut o = ReaderOptions::new();
    o.traversal_limit_in_words(Some(MAX_MESSAGE_WORDS))
        .nesting_limit(32);
    o
}

/// A connected client; the connection ends when it is dropped.
pub struct Connection {
    /// The daemon's bootstrap capability.
    pub client: proc_control::Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects to a control socket (bounded by `timeout`) and bootstraps
/// `ProcControl`. Must run inside a `LocalSet`.
pub async fn connect(path: &Path, timeout: Duration) -> Result<Connection, CtlError> {
    let stream = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(CtlError(format!(
                "cannot connect to control socket {}: {e}",
                path.display()
            )));
        }
        Err(_) => {
            return Err(CtlError(format!(
                "connecting to control socket {} timed out",
                path.display()
            )));
        }
    };
    let (r, w) = stream.into_split();
    let network =
        twoparty::VatNetwork::new(r.compat(), w.compat_write(), Side::Client, reader_options());
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let client: proc_control::Client = rpc.bootstrap(Side::Server);
    let driver = tokio::task::spawn_local(async move {
        let _ = rpc.await;
    });
    Ok(Connection { client, driver })
}

/// The server side of one connection: an `RpcSystem` serving `bootstrap`,
/// to be awaited (inside a `LocalSet`) until the client goes away.
pub fn serve<R, W>(reader: R, writer: W, bootstrap: capnp::capability::Client) -> RpcSystem<Side>
where
    R: AsyncRead + Unpin + 'static,
    W: AsyncWrite + Unpin + 'static,
{
    let network = twoparty::VatNetwork::new(reader, writer, Side::Server, reader_options());
    RpcSystem::new(Box::new(network), Some(bootstrap))
}

/// Fills an `OperationResult` from a Rust result.
pub fn set_result(mut b: operation_result::Builder<'_>, r: Result<String, String>) {
    match r {
        Ok(s) => b.set_ok(s.as_str()),
        Err(e) => {
            let mut err = b.init_err();
            err.set_code(-1);
            err.set_reason(e.as_str());
        }
    }
}

/// Reads an `OperationResult` into a Rust result.
pub fn get_result(r: operation_result::Reader<'_>) -> Result<Result<String, String>, CtlError> {
    Ok(match r.which()? {
        operation_result::Ok(t) => Ok(t?.to_str()?.to_string()),
        operation_result::Err(e) => {
            let e = e?;
            Err(e.get_reason()?.to_str()?.to_string())
        }
    })
}

/// Reads a list of names.
pub fn get_names(r: capnp::text_list::Reader<'_>) -> Result<Vec<String>, CtlError> {
    let mut out = Vec::with_capacity(r.len() as usize);
    for t in r.iter() {
        out.push(t?.to_str()?.to_string());
    }
    Ok(out)
}
