//! The cluster state for one namespace's learn or replay from a laptop: the
//! kinds `serve` watches, listed once (paginated) through the kubeconfig's
//! credentials and read through the same slim wire types, so the laptop
//! derives from exactly what the service would hold.
//!
//! Every kind is listed cluster-wide, as `serve` lists it (callers from other
//! namespaces are named by their ServiceAccounts, Allowlists select
//! workloads of other namespaces). A user whose RBAC refuses a cluster-wide
//! list (403) gets that kind of the namespace alone, and a warning saying so.

use kube::api::ListParams;
use kube::{Api, Client};
use thiserror::Error;

use crate::derive::MANAGED_BY;
use crate::state::wire::{
    AllowlistWire, DaemonSet, Deployment, NamespaceWire, PodWire, ServiceAccountWire, ServiceWire, StatefulSet,
    WasmPluginWire, Watched,
};
use crate::state::{ClusterState, Object};

/// Why the cluster state could not be read.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The namespace does not exist.
    #[error("namespace {0} not found")]
    NoNamespace(String),
    /// A list failed.
    #[error("listing {kind}: {source}")]
    List {
        /// The kind.
        kind: &'static str,
        /// The API error.
        source: kube::Error,
    },
}

/// The state, and what could only be listed in the namespace.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    /// The cluster as `serve` would hold it (or its part the user may list).
    pub state: ClusterState,
    /// Kinds listed in the namespace only (cluster-wide list refused).
    pub namespace_only: Vec<&'static str>,
}

/// Lists every kind `serve` watches, for namespace `ns`.
pub async fn list(client: &Client, trust_domain: &str, ns: &str) -> Result<Listed, ClusterError> {
    let mut listed = Listed {
        state: ClusterState::new(trust_domain),
        namespace_only: Vec::new(),
    };
    let namespaces: Api<NamespaceWire> = Api::all(client.clone());
    let own = namespaces.get_opt(ns).await.map_err(|source| ClusterError::List {
        kind: "Namespace",
        source,
    })?;
    let own = own.ok_or_else(|| ClusterError::NoNamespace(ns.to_string()))?;
    let all = match list_pages(&namespaces, None).await {
        Ok(all) => all,
        Err(e) if forbidden(&e) => {
            listed.namespace_only.push("Namespace");
            own.into_object().into_iter().collect()
        }
        Err(source) => {
            return Err(ClusterError::List {
                kind: "Namespace",
                source,
            })
        }
    };
    for o in all {
        listed.state.apply(o);
    }
    macro_rules! kind {
        ($k:ty, $selector:expr) => {
            let objects = kind::<$k>(
                Api::all(client.clone()),
                Api::namespaced(client.clone(), ns),
                $selector,
                &mut listed.namespace_only,
            )
            .await?;
            for o in objects {
                listed.state.apply(o);
            }
        };
    }
    kind!(PodWire, None);
    kind!(Deployment, None);
    kind!(StatefulSet, None);
    kind!(DaemonSet, None);
    kind!(ServiceAccountWire, None);
    kind!(ServiceWire, None);
    kind!(AllowlistWire, None);
    let owned = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    kind!(WasmPluginWire, Some(owned.as_str()));
    Ok(listed)
}

fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// Every `K` cluster-wide, or in the namespace when that is refused.
async fn kind<K: Watched>(
    all: Api<K>,
    namespaced: Api<K>,
    selector: Option<&str>,
    namespace_only: &mut Vec<&'static str>,
) -> Result<Vec<Object>, ClusterError> {
    let kind = K::KIND.as_str();
    let error = |source| ClusterError::List { kind, source };
    match list_pages(&all, selector).await {
        Ok(objects) => Ok(objects),
        Err(e) if forbidden(&e) => {
            namespace_only.push(kind);
            list_pages(&namespaced, selector).await.map_err(error)
        }
        Err(e) => Err(error(e)),
    }
}

/// A paginated list (500 a page), as the service's watchers list.
async fn list_pages<K: Watched>(api: &Api<K>, selector: Option<&str>) -> Result<Vec<Object>, kube::Error> {
    let mut params = ListParams::default().limit(500);
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let mut out = Vec::new();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items.into_iter().filter_map(Watched::into_object));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}
