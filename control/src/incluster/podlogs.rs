//! A namespace's sidecar logs, read through the Kubernetes API as `kubectl
//! logs -c istio-proxy --since` reads them (`pods/log`), bounded.
//!
//! ```text
//!  list pods (namespace) ─▶ with an istio-proxy container (regular, or a native
//!      │                    sidecar: an init container) ─▶ at most max_pods, by name
//!      │                    without one: counted, not read
//!      ▼
//!  GET pods/{name}/log?container=istio-proxy&sinceSeconds=S&limitBytes=B
//!      `concurrency` at once, all within `timeout`; a pod that fails is
//!      reported with the API server's message, the others are read
//! ```
//!
//! A log cut at `limitBytes` loses its last, partial line (it would read as a
//! bad line) and is marked truncated.

use std::time::Duration;

use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

use crate::learn::logs::{read_text, At, LogStats, Record};

/// The container Istio injects: its log holds the filter's request lines.
pub const SIDECAR: &str = "istio-proxy";

/// How much is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `sinceSeconds`: lines written this long ago or later.
    pub since_seconds: u64,
    /// `limitBytes`: at most this much of each pod's log.
    pub limit_bytes: u64,
    /// At most this many pods are read (the first by name); the others are
    /// listed as not read.
    pub max_pods: usize,
    /// Pods read at once.
    pub concurrency: usize,
    /// Every read ends within this; a pod not read by then is reported.
    pub timeout: Duration,
}

impl Default for Limits {
    /// The command line's (`learn --namespace`, `replay --namespace`): the
    /// last hour, 8 MiB of each pod, every pod, 4 at once, within 5 minutes.
    fn default() -> Self {
        Self {
            since_seconds: 3600,
            limit_bytes: 8 << 20,
            max_pods: usize::MAX,
            concurrency: 4,
            timeout: Duration::from_secs(300),
        }
    }
}

/// One pod's sidecar log, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLog {
    /// The pod.
    pub pod: String,
    /// The log (whole lines).
    pub text: String,
    /// Bytes the API server returned.
    pub bytes: u64,
    /// The log was cut at `limitBytes`: older lines since `sinceSeconds`
    /// were read, later ones were not.
    pub truncated: bool,
}

/// A pod whose log could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    /// The pod.
    pub pod: String,
    /// Why (the API server's message).
    pub error: String,
}

/// What was read of a namespace's sidecar logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarLogs {
    /// The pods read, by name.
    pub pods: Vec<PodLog>,
    /// Pods without an `istio-proxy` container, by name: not read.
    pub without_sidecar: Vec<String>,
    /// Pods whose log could not be read, by name.
    pub failed: Vec<PodFailure>,
    /// Pods over [`Limits::max_pods`], by name: not read.
    pub not_read: Vec<String>,
}

impl SidecarLogs {
    /// Reads the request records of every pod's log, in pod order; lines are
    /// placed as `pod/NAME:LINE`.
    pub fn read(&self, each: &mut dyn FnMut(Record, At)) -> LogStats {
        let mut stats = LogStats::default();
        for p in &self.pods {
            read_text(&format!("pod/{}", p.pod), &p.text, &mut stats, &mut *each);
        }
        stats
    }
}

/// Whether `pod` has an `istio-proxy` container (a native sidecar is an
/// init container).
pub fn has_sidecar(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == SIDECAR) || s.init_containers.iter().flatten().any(|c| c.name == SIDECAR)
    })
}

/// Reads the sidecar logs of the pods of namespace `ns`. Fails only when the
/// pods cannot be listed; a pod whose log cannot be read is reported in
/// [`SidecarLogs::failed`].
pub async fn fetch(client: &Client, ns: &str, limits: &Limits) -> Result<SidecarLogs, kube::Error> {
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut names = Vec::new();
    let mut out = SidecarLogs::default();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = tokio::time::timeout_at(deadline, api.list(&params))
            .await
            .map_err(|_| kube::Error::Service(format!("listing pods took over {:?}", limits.timeout).into()))??;
        for pod in &page.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if has_sidecar(pod) {
                names.push(name);
            } else {
                out.without_sidecar.push(name);
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    names.sort();
    out.without_sidecar.sort();
    if names.len() > limits.max_pods {
        out.not_read = names.split_off(limits.max_pods);
    }
    let params = LogParams {
        container: Some(SIDECAR.into()),
        since_seconds: i64::try_from(limits.since_seconds).ok(),
        limit_bytes: i64::try_from(limits.limit_bytes).ok(),
        ..LogParams::default()
    };
    let reads = futures::stream::iter(names)
        .map(|pod| {
            let (api, params) = (&api, &params);
            async move {
                let read = tokio::time::timeout_at(deadline, read_one(api, &pod, params)).await;
                let read = read.unwrap_or_else(|_| Err(format!("not read within {:?}", limits.timeout)));
                (pod, read)
            }
        })
        .buffer_unordered(limits.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for (pod, read) in reads {
        match read {
            Ok(bytes) => out.pods.push(whole_lines(pod, bytes, limits.limit_bytes)),
            Err(error) => out.failed.push(PodFailure { pod, error }),
        }
    }
    out.pods.sort_by(|a, b| a.pod.cmp(&b.pod));
    out.failed.sort_by(|a, b| a.pod.cmp(&b.pod));
    Ok(out)
}

/// The bytes of one pod's sidecar log, or the API server's message.
async fn read_one(api: &Api<Pod>, pod: &str, params: &LogParams) -> Result<Vec<u8>, String> {
    let message = |e: kube::Error| match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    };
    let mut stream = api.log_stream(pod, params).await.map_err(message)?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// A pod's log as read: cut at `limit` bytes, the partial last line is
/// dropped.
fn whole_lines(pod: String, mut bytes: Vec<u8>, limit: u64) -> PodLog {
    let read = bytes.len() as u64;
    // `limitBytes` is what the API server returns at most: reaching it means
    // the log went on.
    let truncated = read >= limit;
    if truncated {
        let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    PodLog {
        pod,
        text: String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        bytes: read,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_log_loses_its_partial_last_line() {
        let whole = whole_lines("p".into(), b"a\nb\n".to_vec(), 100);
        assert_eq!((whole.text.as_str(), whole.truncated), ("a\nb\n", false));
        let cut = whole_lines("p".into(), b"a\nb\ncc".to_vec(), 6);
        assert_eq!((cut.text.as_str(), cut.truncated, cut.bytes), ("a\nb\n", true, 6));
        let one = whole_lines("p".into(), b"abc".to_vec(), 3);
        assert_eq!(one.text, "");
    }

    #[test]
    fn native_sidecars_count() {
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec})).unwrap_or_default()
        };
        assert!(has_sidecar(&pod(
            serde_json::json!({"containers": [{"name": "app"}, {"name": "istio-proxy"}]})
        )));
        assert!(has_sidecar(&pod(serde_json::json!({"containers": [{"name": "app"}],
            "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}]}))));
        assert!(!has_sidecar(&pod(serde_json::json!({"containers": [{"name": "app"}]}))));
    }
}
