//! The capnp server of the control socket: turns `ProcControl` calls
//! (`lib/px-ctl-proto/schema/control.capnp`) into operations on the [`App`].
//!
//! It runs on the control thread (`px_daemon::control`); anything that
//! builds modules, binds sockets or resolves names is sent to the daemon's
//! main runtime and awaited, so the control thread only shuttles messages.
//! Capabilities handed out by `getEscaper` / `getResolver` look their module
//! up again on every call, so they follow reloads.

use std::future::Future;
use std::sync::Arc;

use capnp::capability::Rc;
use capnp::text;
use px_core::QueryStrategy;
use px_ctl_proto::control_capnp::{
    QueryStrategy as WireStrategy, escaper_control, proc_control, resolver_control,
    user_group_control,
};
use px_ctl_proto::rpc::set_result;
use px_daemon::app::{App, OfflineCause};
use px_daemon::config::Kind;
use tokio::runtime::Handle as RtHandle;

/// Makes the bootstrap capability for each control connection.
pub(crate) fn bootstrap(app: Arc<App>, rt: RtHandle) -> px_daemon::control::Bootstrap {
    Box::new(move || {
        capnp_rpc::new_client::<proc_control::Client, _>(ProcControl {
            app: Arc::clone(&app),
            rt: rt.clone(),
        })
        .client
    })
}

fn text_of(r: capnp::Result<text::Reader<'_>>) -> Result<String, capnp::Error> {
    r?.to_string()
        .map_err(|e| capnp::Error::failed(format!("bad text: {e}")))
}

struct ProcControl {
    app: Arc<App>,
    rt: RtHandle,
}

impl ProcControl {
    /// Runs a future on the main runtime and waits for it here.
    async fn on_main<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        match self.rt.spawn(f).await {
            Ok(r) => r,
            Err(e) => Err(format!("daemon task failed: {e}")),
        }
    }

    async fn reload(&self, kind: Kind, name: String) -> Result<String, String> {
        let app = Arc::clone(&self.app);
        self.on_main(async move { px_daemon::reload::reload_module(&app, kind, &name).await })
            .await
    }
}

macro_rules! reload_method {
    ($fn:ident, $params:ident, $results:ident, $kind:expr) => {
        fn $fn(
            self: Rc<Self>,
            params: proc_control::$params,
            mut results: proc_control::$results,
        ) -> impl Future<Output = Result<(), capnp::Error>> + 'static {
            async move {
                let name = text_of(params.get()?.get_name())?;
                let r = self.reload($kind, name).await;
                set_result(results.get().init_result(), r);
                Ok(())
            }
        }
    };
}

macro_rules! list_method {
    ($fn:ident, $params:ident, $results:ident, $kind:expr) => {
        fn $fn(
            self: Rc<Self>,
            _: proc_control::$params,
            mut results: proc_control::$results,
        ) -> impl Future<Output = Result<(), capnp::Error>> + 'static {
            let names = self.app.names($kind);
            async move {
                let mut list = results.get().init_result(names.len() as u32);
                for (i, n) in names.iter().enumerate() {
                    list.set(i as u32, n.as_str());
                }
                Ok(())
            }
        }
    };
}

impl proc_control::Server for ProcControl {
    fn version(
        self: Rc<Self>,
        _: proc_control::VersionParams,
        mut results: proc_control::VersionResults,
    ) -> impl Future<Output = Result<(), capnp::Error>> + 'static {
        results.get().set_version(env!("CARGO_PKG_VERSION"));
        std::future::ready(Ok(()))
    }

    fn offline(
        self: Rc<Self>,
        _: proc_control::OfflineParams,
        mut results: proc_control::OfflineResults,
    ) -> impl Future<Output = Result<(), capnp::Error>> + 'static {
        let already = self.app.is_offline();
        self.app.request_offline(OfflineCause::Ctl);
        let msg = if already {
            "already going offline"
        } else {
            "going offline"
        };
        set_result(results.get().init_result(), Ok(msg.to_string()));
        std::future::ready(Ok(()))
    }

    reload_method!(
        reload_user_group,
        ReloadUserGroupParams,
        ReloadUserGroupResults,
        Kind::UserGroup
    );
    reload_method!(
        reload_resolver,
        ReloadResolverParams,
        ReloadResolverResults,
        Kind::Resolver
    );
    reload_method!(
        reload_auditor,
        ReloadAuditorParams,
        ReloadAuditorResults,
        Kind::Auditor
    );
    reload_method!(
        reload_escaper,
        ReloadEscaperParams,
        ReloadEscaperResults,
        Kind::Escaper
    );
    reload_method!(
        reload_server,
        ReloadServerParams,
        ReloadServerResults,
        Kind::Server
    );

    async fn get_user_group(
        self: Rc<Self>,
        params: proc_control::GetUserGroupParams,
        mut results: proc_control::GetUserGroupResults,
    ) -> Result<(), capnp::Error> {
        let name = text_of(params.get()?.get_name())?;
        let mut out = results.get().init_user_group();
        if self.app.user_groups.get(&name).is_some() {
            out.set_user_group(capnp_rpc::new_client(UserGroupCtl {
                app: Arc::clone(&self.app),
                name,
            }));
        } else {
            let mut e = out.init_err();
            e.set_code(-1);
            e.set_reason(format!("no user group named `{name}`").as_str());
        }
        Ok(())
    }

    async fn get_resolver(
        self: Rc<Self>,
        params: proc_control::GetResolverParams,
        mut results: proc_control::GetResolverResults,
    ) -> Result<(), capnp::Error> {
        let name = text_of(params.get()?.get_name())?;
        let mut out = results.get().init_resolver();
        if self.app.resolvers.get(&name).is_some() {
            out.set_resolver(capnp_rpc::new_client(ResolverCtl {
                app: Arc::clone(&self.app),
                rt: self.rt.clone(),
                name,
            }));
        } else {
            let mut e = out.init_err();
            e.set_code(-1);
            e.set_reason(format!("no resolver named `{name}`").as_str());
        }
        Ok(())
    }

    async fn get_escaper(
        self: Rc<Self>,
        params: proc_control::GetEscaperParams,
        mut results: proc_control::GetEscaperResults,
    ) -> Result<(), capnp::Error> {
        let name = text_of(params.get()?.get_name())?;
        let mut out = results.get().init_escaper();
        if self.app.escapers.get(&name).is_some() {
            out.set_escaper(capnp_rpc::new_client(EscaperCtl {
                app: Arc::clone(&self.app),
                rt: self.rt.clone(),
                name,
            }));
        } else {
            let mut e = out.init_err();
            e.set_code(-1);
            e.set_reason(format!("no escaper named `{name}`").as_str());
        }
        Ok(())
    }

    list_method!(
        list_user_group,
        ListUserGroupParams,
        ListUserGroupResults,
        Kind::UserGroup
    );
    list_method!(
        list_resolver,
        ListResolverParams,
        ListResolverResults,
        Kind::Resolver
    );
    list_method!(
        list_auditor,
        ListAuditorParams,
        ListAuditorResults,
        Kind::Auditor
    );
    list_method!(
        list_escaper,
        ListEscaperParams,
        ListEscaperResults,
        Kind::Escaper
    );
    list_method!(
        list_server,
        ListServerParams,
        ListServerResults,
        Kind::Server
    );

    fn status(
        self: Rc<Self>,
        _: proc_control::StatusParams,
        mut results: proc_control::StatusResults,
    ) -> impl Future<Output = Result<(), capnp::Error>> + 'static {
        let mut r = results.get();
        r.set_pid(std::process::id());
        r.set_group(self.app.group.as_str());
        r.set_offline(self.app.is_offline());
        r.set_alive_tasks(self.app.tasks.len() as u64);
        std::future::ready(Ok(()))
    }
}

struct EscaperCtl {
    app: Arc<App>,
    rt: RtHandle,
    name: String,
}

impl escaper_control::Server for EscaperCtl {
    async fn publish(
        self: Rc<Self>,
        params: escaper_control::PublishParams,
        mut results: escaper_control::PublishResults,
    ) -> Result<(), capnp::Error> {
        let data = text_of(params.get()?.get_data())?;
        let app = Arc::clone(&self.app);
        let name = self.name.clone();
        // publish may write a cache file: keep that off the control thread
        let r = self
            .rt
            .spawn_blocking(move || match app.escapers.get(&name) {
                Some(h) => h
                    .get()
                    .publish(&data)
                    .map(|()| format!("published to escaper {name}")),
                None => Err(format!("no escaper named `{name}` any more")),
            })
            .await
            .unwrap_or_else(|e| Err(format!("publish task failed: {e}")));
        set_result(results.get().init_result(), r);
        Ok(())
    }
}

struct ResolverCtl {
    app: Arc<App>,
    rt: RtHandle,
    name: String,
}

impl resolver_control::Server for ResolverCtl {
    async fn query(
        self: Rc<Self>,
        params: resolver_control::QueryParams,
        mut results: resolver_control::QueryResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let domain = text_of(p.get_domain())?;
        let strategy = match p.get_strategy() {
            Ok(WireStrategy::Ipv4First) => QueryStrategy::Ipv4First,
            Ok(WireStrategy::Ipv6First) => QueryStrategy::Ipv6First,
            Ok(WireStrategy::Ipv4Only) => QueryStrategy::Ipv4Only,
            Ok(WireStrategy::Ipv6Only) => QueryStrategy::Ipv6Only,
            Err(_) => QueryStrategy::Ipv4First,
        };
        let app = Arc::clone(&self.app);
        let name = self.name.clone();
        let r = self
            .rt
            .spawn(async move {
                let Some(h) = app.resolvers.get(&name) else {
                    return Err(format!("no resolver named `{name}` any more"));
                };
                let resolver = h.get();
                resolver
                    .resolve(&domain, strategy)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("query task failed: {e}")));
        let mut out = results.get().init_result();
        match r {
            Ok(ips) => {
                let mut list = out.init_ip(ips.len() as u32);
                for (i, ip) in ips.iter().enumerate() {
                    list.set(i as u32, ip.to_string().as_str());
                }
            }
            Err(e) => out.set_err(e.as_str()),
        }
        Ok(())
    }
}

/// One user group's queries: the names of its static and dynamic users,
/// read from the group the handle holds now.
struct UserGroupCtl {
    app: Arc<App>,
    name: String,
}

impl UserGroupCtl {
    fn names(&self, dynamic: bool) -> Result<Vec<String>, capnp::Error> {
        let handle = self.app.user_groups.get(&self.name).ok_or_else(|| {
            capnp::Error::failed(format!("no user group named `{}` any more", self.name))
        })?;
        let group = handle.get();
        Ok(if dynamic {
            group.dynamic_users()
        } else {
            group.static_users()
        })
    }
}

fn fill_names(list: Vec<String>, mut out: capnp::text_list::Builder<'_>) {
    for (i, n) in list.iter().enumerate() {
        out.set(i as u32, n.as_str());
    }
}

impl user_group_control::Server for UserGroupCtl {
    fn list_static_user(
        self: Rc<Self>,
        _: user_group_control::ListStaticUserParams,
        mut results: user_group_control::ListStaticUserResults,
    ) -> impl Future<Output = Result<(), capnp::Error>> + 'static {
        let r = self.names(false).map(|names| {
            let len = names.len() as u32;
            fill_names(names, results.get().init_result(len));
        });
        std::future::ready(r)
    }

    fn list_dynamic_user(
        self: Rc<Self>,
        _: user_group_control::ListDynamicUserParams,
        mut results: user_group_control::ListDynamicUserResults,
    ) -> impl Future<Output = Result<(), capnp::Error>> + 'static {
        let r = self.names(true).map(|names| {
            let len = names.len() as u32;
            fill_names(names, results.get().init_result(len));
        });
        std::future::ready(r)
    }
}
