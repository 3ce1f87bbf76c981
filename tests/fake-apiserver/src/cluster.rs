//! Clusters shaped as a real one returns them: Namespaces labelled for
//! meshward, and per Deployment a ServiceAccount, a Service, an Allowlist and
//! Pods as an Istio-injected cluster serves them: `managedFields` from the
//! ReplicaSet controller and the kubelet, sidecar annotations, the app
//! container and `istio-proxy` with their env and volume mounts, the
//! `istio-init` init container, Istio's volumes, and a `status` with
//! conditions and container statuses. A Pod is about 11 KB of JSON, as on a
//! real cluster.

use serde_json::{json, Value};

/// The size of a generated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Namespaces, all labelled `meshward.io/enforcement: enabled`.
    pub namespaces: usize,
    /// Deployments per namespace, each with a ServiceAccount, a Service and
    /// an Allowlist.
    pub deployments: usize,
    /// Pods per Deployment.
    pub pods: usize,
}

impl Shape {
    /// The number of Pods.
    pub fn total_pods(&self) -> usize {
        self.namespaces * self.deployments * self.pods
    }

    /// The number of Allowlists (one per Deployment).
    pub fn total_allowlists(&self) -> usize {
        self.namespaces * self.deployments
    }
}

/// The name of namespace `n`.
pub fn namespace_name(n: usize) -> String {
    format!("team-{n:03}")
}

/// The name of Deployment `d` (also its app label, Service, ServiceAccount and Allowlist).
pub fn app_name(d: usize) -> String {
    format!("svc-{d:03}")
}

/// Every object of a cluster of `shape`, namespace by namespace.
pub fn objects(shape: Shape) -> impl Iterator<Item = Value> {
    (0..shape.namespaces).flat_map(move |n| {
        let ns = namespace_name(n);
        std::iter::once(namespace(&ns)).chain((0..shape.deployments).flat_map(move |d| {
            let ns = ns.clone();
            let app = app_name(d);
            let caller = app_name((d + 1) % shape.deployments);
            let hash = format!("{:010x}", (n * 7919 + d * 104_729) % 0xff_ffff_ffff);
            let fixed = vec![
                service_account(&ns, &app),
                service(&ns, &app),
                deployment(&ns, &app, shape.pods),
                allowlist(&ns, &app, &caller, 0),
            ];
            fixed
                .into_iter()
                .chain((0..shape.pods).map(move |p| pod(&ns, &app, &hash, p)))
        }))
    })
}

/// A Namespace labelled for meshward.
pub fn namespace(ns: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": ns,
            "labels": {"kubernetes.io/metadata.name": ns, "istio-injection": "enabled", "meshward.io/enforcement": "enabled"},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                "time": "2026-11-20T09:12:44Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:istio-injection": {}, "f:kubernetes.io/metadata.name": {}, "f:meshward.io/enforcement": {}}}}}]
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

/// The ServiceAccount of an app.
pub fn service_account(ns: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": app, "namespace": ns, "labels": {"app": app, "account": app}}})
}

/// The Service of an app: port `http` 80 to the named container port `http`.
pub fn service(ns: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": app, "namespace": ns, "labels": {"app": app, "service": app}},
        "spec": {"clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"], "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "type": "ClusterIP", "sessionAffinity": "None",
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
        "status": {"loadBalancer": {}}})
}

/// The Deployment of an app.
pub fn deployment(ns: &str, app: &str, replicas: usize) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "namespace": ns, "labels": {"app": app, "version": "v1"},
            "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": replicas, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": app, "version": "v1"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": app, "version": "v1"}},
                "spec": {"serviceAccountName": app, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{"name": app, "image": format!("registry.example.com/shop/{app}:1.4.2"),
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1}})
}

/// An Allowlist protecting `app`, admitting `caller` (a workload selector)
/// to GET and POST under `/<app>/` on the Service port; `change` names an
/// extra rule (0: none) so a benchmark can tell its changes apart.
pub fn allowlist(ns: &str, app: &str, caller: &str, change: usize) -> Value {
    let mut rules = vec![json!({
        "name": "callers",
        "from": [{"workloads": {"selector": {"matchLabels": {"app": caller}}}}],
        "to": [{"methods": ["GET", "POST"], "paths": [format!("/{app}/*")], "servicePorts": [{"service": app, "port": "http"}]}]
    })];
    if change > 0 {
        rules.push(
            json!({"name": format!("change-{change}"), "from": [{"serviceAccounts": [format!("{ns}/{caller}")]}],
            "to": [{"methods": ["GET"], "paths": [format!("/{app}/change/{change}")]}]}),
        );
    }
    json!({"apiVersion": "meshward.io/v1alpha1", "kind": "Allowlist",
        "metadata": {"name": app, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": app}}, "rules": rules}})
}

/// A Pod of `app`'s ReplicaSet `hash`, as an Istio-injected cluster returns it.
pub fn pod(ns: &str, app: &str, hash: &str, i: usize) -> Value {
    let name = format!("{app}-{hash}-{i:05}");
    let ip = format!("10.{}.{}.{}", 20 + i % 200, (i / 200) % 250, 2 + i % 250);
    let env = |pairs: &[(&str, &str)]| -> Value {
        Value::Array(pairs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect())
    };
    let field_env = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}});
    let mut proxy_env = vec![
        json!({"name": "PILOT_CERT_PROVIDER", "value": "istiod"}),
        json!({"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"}),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("INSTANCE_IP", "status.podIP"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        field_env("HOST_IP", "status.hostIP"),
        json!({"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}}),
        json!({"name": "PROXY_CONFIG", "value": "{}\n"}),
        json!({"name": "ISTIO_META_POD_PORTS", "value": "[\n    {\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"}\n]"}),
        json!({"name": "ISTIO_META_APP_CONTAINERS", "value": app}),
        json!({"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.memory"}}}),
        json!({"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}}),
        json!({"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"}),
        json!({"name": "ISTIO_META_NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        json!({"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"}),
        json!({"name": "ISTIO_META_WORKLOAD_NAME", "value": app}),
        json!({"name": "ISTIO_META_OWNER", "value": format!("kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{app}")}),
        json!({"name": "ISTIO_META_MESH_ID", "value": "cluster.local"}),
        json!({"name": "TRUST_DOMAIN", "value": "cluster.local"}),
    ];
    proxy_env.extend(env(&[("ISTIO_KUBE_APP_PROBERS", "{\"/app-health/app/livez\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080,\"scheme\":\"HTTP\"},\"timeoutSeconds\":1}}")]).as_array().cloned().unwrap_or_default());
    let mount = |name: &str, path: &str| json!({"name": name, "mountPath": path});
    let token_mount = json!({"name": format!("kube-api-access-{}", &hash[..5]), "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true});
    let status_annotation = json!({"initContainers": ["istio-init"], "containers": ["istio-proxy"],
        "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
        "imagePullSecrets": null, "revision": "default"}).to_string();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "generateName": format!("{app}-{hash}-"),
            "uid": format!("5b1c3a2e-{:04x}-4e1f-9a3b-{:012x}", i % 0xffff, i),
            "creationTimestamp": "2026-11-20T09:15:02Z",
            "labels": {"app": app, "version": "v1", "pod-template-hash": hash,
                "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": app,
                "service.istio.io/canonical-revision": "v1"},
            "annotations": {"istio.io/rev": "default", "kubectl.kubernetes.io/default-container": app,
                "kubectl.kubernetes.io/default-logs-container": app, "prometheus.io/path": "/stats/prometheus",
                "prometheus.io/port": "15020", "prometheus.io/scrape": "true",
                "sidecar.istio.io/status": status_annotation},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"),
                "uid": "0a4d1f6e-2b7c-4c59-8d3e-5f6a7b8c9d0e", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2026-11-20T09:15:02Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:version": {}},
                    "f:ownerReferences": {".": {}, "k:{\"uid\":\"0a4d1f6e-2b7c-4c59-8d3e-5f6a7b8c9d0e\"}": {}}},
                    "f:spec": {"f:containers": {format!("k:{{\"name\":\"{app}\"}}"): {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:name": {}, "f:protocol": {}}},
                        "f:resources": {".": {}, "f:requests": {".": {}, "f:cpu": {}, "f:memory": {}}}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                        "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                        "f:serviceAccount": {}, "f:serviceAccountName": {}, "f:terminationGracePeriodSeconds": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-11-20T09:15:09Z", "subresource": "status",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {
                    "k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                    "k:{\"type\":\"Initialized\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                    "k:{\"type\":\"PodReadyToStartContainers\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                    "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                    "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:initContainerStatuses": {}, "f:phase": {}, "f:podIP": {},
                    "f:podIPs": {".": {}, format!("k:{{\"ip\":\"{ip}\"}}"): {".": {}, "f:ip": {}}}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "serviceAccountName": app, "serviceAccount": app, "nodeName": format!("node-{:03}", i % 97),
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0, "securityContext": {},
            "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
            "initContainers": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.28.1",
                "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                    "privileged": false, "readOnlyRootFilesystem": false, "runAsGroup": 0, "runAsNonRoot": false, "runAsUser": 0},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
                "volumeMounts": [token_mount.clone()]}],
            "containers": [
                {"name": app, "image": format!("registry.example.com/shop/{app}:1.4.2"), "imagePullPolicy": "IfNotPresent",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                 "livenessProbe": {"httpGet": {"path": "/app-health/app/livez", "port": 15020, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3, "successThreshold": 1},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                 "volumeMounts": [token_mount.clone()]},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.1",
                 "args": ["proxy", "sidecar", "--domain", format!("{ns}.svc.cluster.local"), "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
                 "env": proxy_env,
                 "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
                 "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}, "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4, "successThreshold": 1},
                 "startupProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}, "periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 600, "successThreshold": 1},
                 "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
                 "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": false,
                    "readOnlyRootFilesystem": true, "runAsGroup": 1337, "runAsNonRoot": true, "runAsUser": 1337},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
                 "volumeMounts": [mount("workload-socket", "/var/run/secrets/workload-spiffe-uds"), mount("credential-socket", "/var/run/secrets/credential-uds"),
                    mount("workload-certs", "/var/run/secrets/workload-spiffe-credentials"), mount("istiod-ca-cert", "/var/run/secrets/istio"),
                    mount("istio-data", "/var/lib/istio/data"), mount("istio-envoy", "/etc/istio/proxy"), mount("istio-token", "/var/run/secrets/tokens"),
                    mount("istio-podinfo", "/etc/istio/pod"), token_mount]}
            ],
            "volumes": [
                {"name": "workload-socket", "emptyDir": {}}, {"name": "credential-socket", "emptyDir": {}}, {"name": "workload-certs", "emptyDir": {}},
                {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}, {"name": "istio-data", "emptyDir": {}},
                {"name": "istio-podinfo", "downwardAPI": {"defaultMode": 420, "items": [
                    {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}]}},
                {"name": "istio-token", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
                {"name": "istiod-ca-cert", "configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}},
                {"name": format!("kube-api-access-{}", &hash[..5]), "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
            ]
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "hostIP": "192.168.7.21", "hostIPs": [{"ip": "192.168.7.21"}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": "2026-11-20T09:15:02Z",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T09:15:04Z"},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T09:15:04Z"},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T09:15:09Z"},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T09:15:09Z"},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T09:15:02Z"}],
            "initContainerStatuses": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.28.1",
                "imageID": "docker.io/istio/proxyv2@sha256:4b3c5f0f1f5e6d7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a",
                "containerID": format!("containerd://{:064x}", i * 3 + 1), "ready": true, "restartCount": 0, "started": false,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-11-20T09:15:03Z", "finishedAt": "2026-11-20T09:15:03Z",
                    "containerID": format!("containerd://{:064x}", i * 3 + 1)}}, "lastState": {}}],
            "containerStatuses": [
                {"name": app, "image": format!("registry.example.com/shop/{app}:1.4.2"),
                 "imageID": "registry.example.com/shop/app@sha256:9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
                 "containerID": format!("containerd://{:064x}", i * 3 + 2), "ready": true, "restartCount": 0, "started": true,
                 "state": {"running": {"startedAt": "2026-11-20T09:15:04Z"}}, "lastState": {}},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.1",
                 "imageID": "docker.io/istio/proxyv2@sha256:4b3c5f0f1f5e6d7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a",
                 "containerID": format!("containerd://{:064x}", i * 3 + 3), "ready": true, "restartCount": 0, "started": true,
                 "state": {"running": {"startedAt": "2026-11-20T09:15:05Z"}}, "lastState": {}}]
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pods_are_about_nine_kilobytes_and_the_cluster_has_the_shape_asked() {
        let size = pod("team-000", "svc-001", "5d8c7f9b4d", 3).to_string().len();
        assert!((9_000..13_000).contains(&size), "a pod is {size} bytes");
        let shape = Shape {
            namespaces: 2,
            deployments: 3,
            pods: 4,
        };
        let all: Vec<Value> = objects(shape).collect();
        let count = |kind: &str| all.iter().filter(|o| o["kind"] == kind).count();
        assert_eq!(count("Namespace"), 2);
        assert_eq!(count("Pod"), shape.total_pods());
        assert_eq!(count("Allowlist"), shape.total_allowlists());
        assert_eq!(count("Deployment"), 6);
        assert_eq!(count("Service"), 6);
        assert_eq!(count("ServiceAccount"), 6);
    }
}
