//! `user-group NAME list-static-user` / `list-dynamic-user`

use clap::Subcommand;
use px_ctl_proto::control_capnp::{fetch_user_group, proc_control};
use px_ctl_proto::rpc::get_names;

use crate::Failure;

/// User group operations.
#[derive(Subcommand, Debug)]
pub(crate) enum Op {
    /// List the users from the config (one per line).
    ListStaticUser,
    /// List the users pushed at run time (one per line).
    ListDynamicUser,
}

pub(crate) async fn run(c: &proc_control::Client, name: &str, op: Op) -> Result<(), Failure> {
    let mut req = c.get_user_group_request();
    req.get().set_name(name);
    let reply = req.send().promise.await?;
    let group = match reply.get()?.get_user_group()?.which()? {
        fetch_user_group::UserGroup(g) => g?,
        fetch_user_group::Err(e) => {
            let reason = e?.get_reason()?.to_string().unwrap_or_default();
            return Err(Failure::Refused(reason));
        }
    };
    let names = match op {
        Op::ListStaticUser => {
            let r = group.list_static_user_request().send().promise.await?;
            get_names(r.get()?.get_result()?)?
        }
        Op::ListDynamicUser => {
            let r = group.list_dynamic_user_request().send().promise.await?;
            get_names(r.get()?.get_result()?)?
        }
    };
    for n in names {
        println!("{n}");
    }
    Ok(())
}
