//! The process: `version`, `status`, `offline`, `list KIND`, `reload-KIND NAME`.

use px_ctl_proto::control_capnp::proc_control;
use px_ctl_proto::rpc::{get_names, get_result};

use crate::{Failure, Kind, operation};

/// `version`
pub(crate) async fn version(c: &proc_control::Client) -> Result<(), Failure> {
    let reply = c.version_request().send().promise.await?;
    let v = reply.get()?.get_version()?;
    println!(
        "{}",
        v.to_str()
            .map_err(|e| Failure::Unreachable(e.to_string()))?
    );
    Ok(())
}

/// `status`
pub(crate) async fn status(c: &proc_control::Client) -> Result<(), Failure> {
    let reply = c.status_request().send().promise.await?;
    let r = reply.get()?;
    let group = r
        .get_group()?
        .to_str()
        .map_err(|e| Failure::Unreachable(e.to_string()))?
        .to_string();
    println!("pid: {}", r.get_pid());
    println!("group: {group}");
    println!("offline: {}", r.get_offline());
    println!("alive_tasks: {}", r.get_alive_tasks());
    Ok(())
}

/// `offline`
pub(crate) async fn offline(c: &proc_control::Client) -> Result<(), Failure> {
    let reply = c.offline_request().send().promise.await?;
    operation(get_result(reply.get()?.get_result()?)?)
}

/// `list KIND`: one name per line, sorted.
pub(crate) async fn list(c: &proc_control::Client, kind: Kind) -> Result<(), Failure> {
    let names = match kind {
        Kind::Server => {
            let r = c.list_server_request().send().promise.await?;
            get_names(r.get()?.get_result()?)?
        }
        Kind::Escaper => {
            let r = c.list_escaper_request().send().promise.await?;
            get_names(r.get()?.get_result()?)?
        }
        Kind::Resolver => {
            let r = c.list_resolver_request().send().promise.await?;
            get_names(r.get()?.get_result()?)?
        }
        Kind::UserGroup => {
            let r = c.list_user_group_request().send().promise.await?;
            get_names(r.get()?.get_result()?)?
        }
        Kind::Auditor => {
            let r = c.list_auditor_request().send().promise.await?;
            get_names(r.get()?.get_result()?)?
        }
    };
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// `reload-KIND NAME`
pub(crate) async fn reload(
    c: &proc_control::Client,
    kind: Kind,
    name: &str,
) -> Result<(), Failure> {
    let r = match kind {
        Kind::Server => {
            let mut req = c.reload_server_request();
            req.get().set_name(name);
            let reply = req.send().promise.await?;
            get_result(reply.get()?.get_result()?)?
        }
        Kind::Escaper => {
            let mut req = c.reload_escaper_request();
            req.get().set_name(name);
            let reply = req.send().promise.await?;
            get_result(reply.get()?.get_result()?)?
        }
        Kind::Resolver => {
            let mut req = c.reload_resolver_request();
            req.get().set_name(name);
            let reply = req.send().promise.await?;
            get_result(reply.get()?.get_result()?)?
        }
        Kind::UserGroup => {
            let mut req = c.reload_user_group_request();
            req.get().set_name(name);
            let reply = req.send().promise.await?;
            get_result(reply.get()?.get_result()?)?
        }
        Kind::Auditor => {
            let mut req = c.reload_auditor_request();
            req.get().set_name(name);
            let reply = req.send().promise.await?;
            get_result(reply.get()?.get_result()?)?
        }
    };
    operation(r)
}
