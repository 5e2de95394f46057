//! `escaper NAME publish JSON`

use clap::Subcommand;
use px_ctl_proto::control_capnp::{fetch_escaper, proc_control};
use px_ctl_proto::rpc::get_result;

use crate::{Failure, operation};

/// Escaper operations.
#[derive(Subcommand, Debug)]
pub(crate) enum Op {
    /// Push dynamic data to the escaper (direct_float: `{"ipv4": "192.0.2.7"}`,
    /// a list of addresses, or entries with `expire`).
    Publish {
        /// The JSON document.
        data: String,
    },
}

pub(crate) async fn run(c: &proc_control::Client, name: &str, op: Op) -> Result<(), Failure> {
    let mut req = c.get_escaper_request();
    req.get().set_name(name);
    let reply = req.send().promise.await?;
    let escaper = match reply.get()?.get_escaper()?.which()? {
        fetch_escaper::Escaper(e) => e?,
        fetch_escaper::Err(e) => {
            let reason = e?.get_reason()?.to_string().unwrap_or_default();
            return Err(Failure::Refused(reason));
        }
    };
    match op {
        Op::Publish { data } => {
            let mut req = escaper.publish_request();
            req.get().set_data(data.as_str());
            let reply = req.send().promise.await?;
            operation(get_result(reply.get()?.get_result()?)?)
        }
    }
}
