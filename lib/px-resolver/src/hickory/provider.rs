//! The tokio runtime provider hickory connects through, with our
//! `connect_timeout` on TCP (plain and TLS) connects.
//!
//! hickory uses one timeout for both connecting and waiting for an answer;
//! g3proxy has two keys (`connect_timeout`, `request_timeout`). This provider
//! applies `connect_timeout` to the TCP connect and leaves the rest to
//! hickory's request timeout. No keys of its own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use hickory_resolver::net::runtime::{QuicSocketBinder, RuntimeProvider, TokioRuntimeProvider};

type Tokio = TokioRuntimeProvider;

/// Tokio provider with a fixed TCP connect timeout.
#[derive(Clone, Default)]
pub(crate) struct Provider {
    inner: Tokio,
    connect_timeout: Duration,
}

impl Provider {
    /// A provider connecting within `connect_timeout`.
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Provider {
            inner: Tokio::default(),
            connect_timeout,
        }
    }
}

impl RuntimeProvider for Provider {
    type Handle = <Tokio as RuntimeProvider>::Handle;
    type Timer = <Tokio as RuntimeProvider>::Timer;
    type Udp = <Tokio as RuntimeProvider>::Udp;
    type Tcp = <Tokio as RuntimeProvider>::Tcp;

    fn create_handle(&self) -> Self::Handle {
        self.inner.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        _timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Tcp, io::Error>>>> {
        self.inner
            .connect_tcp(server_addr, bind_addr, Some(self.connect_timeout))
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = Result<Self::Udp, io::Error>>>> {
        self.inner.bind_udp(local_addr, server_addr)
    }

    fn quic_binder(&self) -> Option<&dyn QuicSocketBinder> {
        self.inner.quic_binder()
    }
}
