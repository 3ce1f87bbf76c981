//! Running the service against the fake API server, and reading what it
//! wrote: shared by the service's tests.

use std::future::Future;
use std::time::Duration;

use meshward_control::serve::{self, ServeConfig};
use meshward_fake_apiserver::FakeApi;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::*;

/// A running service: its API address, and how to stop it.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the service stops")
            .unwrap();
    }
}

pub async fn start(fake: &FakeApi) -> Running {
    start_with(fake, |_| {}).await
}

/// Starts the service with the test settings, changed by `tune`.
pub async fn start_with(fake: &FakeApi, tune: impl FnOnce(&mut ServeConfig)) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = ServeConfig {
        settings: settings(),
        debounce: Duration::from_millis(50),
        resync: Duration::from_secs(3600),
        backoff: (Duration::from_millis(50), Duration::from_millis(400)),
        ..ServeConfig::default()
    };
    tune(&mut config);
    let (tx, rx) = oneshot::channel::<()>();
    let client = serve::client(fake.config()).unwrap();
    let task = tokio::spawn(async move {
        serve::run(client, config, listener, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        base,
        stop: Some(tx),
        task,
    }
}

/// Polls `f` until it returns `Some`, for up to 20 s.
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(20), f).await
}

/// Polls `f` until it returns `Some`, for up to `within`.
pub async fn eventually_within<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn put<T: serde::Serialize>(fake: &FakeApi, object: T) {
    fake.put(serde_json::to_value(object).unwrap());
}

/// A namespace `shop` with a frontend calling an api, and one Allowlist.
pub fn seed(fake: &FakeApi, ns: &str, label: Option<&str>) {
    put(fake, mk_ns(ns, label));
    put(
        fake,
        mk_pod(ns, "frontend-1", json!({"app": "frontend"}), Some("frontend")),
    );
    put(fake, mk_pod(ns, "api-1", json!({"app": "api"}), Some("api")));
    put(
        fake,
        mk_allowlist(
            ns,
            "api",
            json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{
                "name": "frontend-reads",
                "from": [{"workloads": {"selector": {"matchLabels": {"app": "frontend"}}}}],
                "to": [{"methods": ["GET"], "paths": ["/items/*"]}]
            }]}),
        ),
    );
}

pub fn plugin(fake: &FakeApi, ns: &str) -> Option<Value> {
    fake.get("WasmPlugin", ns, "meshward")
}

pub fn principals(plugin: &Value) -> Vec<String> {
    let p = &plugin["spec"]["pluginConfig"]["policies"][0]["rules"][0]["from"][0]["principals"];
    p.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

pub fn ready(fake: &FakeApi, ns: &str, name: &str) -> Option<Value> {
    let a = fake.get("Allowlist", ns, name)?;
    let c = a["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    Some(c)
}

pub fn mutating(fake: &FakeApi) -> Vec<meshward_fake_apiserver::Write> {
    fake.writes()
        .into_iter()
        .filter(|w| !w.path.contains("review"))
        .collect()
}

pub async fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    // A raw HTTP/1.1 client keeps the test's dependencies to what the service uses.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} /{path} HTTP/1.1\r\nhost: {host}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let code: u16 = text[9..12].parse().unwrap();
    let (_, payload) = text.split_once("\r\n\r\n").unwrap();
    (
        code,
        serde_json::from_str(payload).unwrap_or(Value::String(payload.to_string())),
    )
}

/// The service's `/metrics` text (the request must succeed).
pub async fn metrics(base: &str) -> String {
    let (code, body) = http("GET", &format!("{base}/metrics"), None, None).await;
    assert_eq!(code, 200, "{body}");
    body.as_str().unwrap_or_default().to_string()
}
