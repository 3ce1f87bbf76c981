//! Two replicas, one writer: leader election on a Lease, against the fake
//! API server. Each replica's requests carry its own client id, so the fake
//! can count writes per replica and cut one replica off.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use meshward_control::serve::lease::LeaseConfig;
use meshward_control::serve::{self, ServeConfig};
use meshward_fake_apiserver::{FakeApi, Write};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const LEASE: Duration = Duration::from_millis(2_000);
const RENEW_DEADLINE: Duration = Duration::from_millis(1_200);
const RETRY: Duration = Duration::from_millis(200);

struct Replica {
    id: &'static str,
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(fake: &FakeApi, id: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = ServeConfig {
            settings: settings(),
            debounce: Duration::from_millis(20),
            resync: Duration::from_secs(3600),
            backoff: (Duration::from_millis(50), Duration::from_millis(400)),
            lease: Some(LeaseConfig {
                duration: LEASE,
                renew_deadline: RENEW_DEADLINE,
                retry: RETRY,
                ..LeaseConfig::new("meshward-system", id)
            }),
            ..ServeConfig::default()
        };
        let client = serve::client(fake.config_for(id)).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = serve::run(client, config, listener, async move {
                let _ = rx.await;
            })
            .await;
        });
        Self {
            id,
            base,
            stop: Some(tx),
            task,
        }
    }

    /// A crash: the task is dropped, the Lease is not released.
    fn kill(self) {
        self.task.abort();
    }

    /// A graceful stop (SIGTERM): the Lease is released.
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }

    /// `meshward_control_leader` on this replica's /metrics.
    async fn says_leader(&self) -> Option<bool> {
        let text = reqwest_get(&format!("{}/metrics", self.base)).await?;
        text.lines()
            .find_map(|l| l.strip_prefix("meshward_control_leader "))
            .map(|v| v.trim() == "1")
    }
}

/// A plain HTTP GET on loopback; `None` when the service does not answer.
async fn reqwest_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}")))?;
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8(response).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn seed(fake: &FakeApi) {
    for o in [
        serde_json::to_value(mk_ns("shop", Some("enabled"))).unwrap(),
        serde_json::to_value(mk_pod(
            "shop",
            "frontend-1",
            json!({"app": "frontend"}),
            Some("frontend"),
        ))
        .unwrap(),
        serde_json::to_value(mk_pod("shop", "api-1", json!({"app": "api"}), Some("api"))).unwrap(),
    ] {
        let mut o = o;
        let kind = if o["metadata"]["namespace"].is_null() {
            "Namespace"
        } else {
            "Pod"
        };
        o["apiVersion"] = "v1".into();
        o["kind"] = kind.into();
        fake.put(o);
    }
    allowlist(fake, "/items/*");
}

/// The Allowlist `shop/api`, admitting GET on `path`.
fn allowlist(fake: &FakeApi, path: &str) {
    fake.put(serde_json::to_value(api_allowlist(path)).unwrap());
}

/// The path the WasmPlugin of `shop` admits, once written.
fn applied_path(fake: &FakeApi) -> Option<String> {
    let p: Value = fake.get("WasmPlugin", "shop", "meshward")?;
    p["spec"]["pluginConfig"]["policies"][0]["rules"][0]["to"][0]["paths"][0]
        .as_str()
        .map(String::from)
}

fn holder(fake: &FakeApi) -> Option<String> {
    let lease = fake.get("Lease", "meshward-system", "meshward-control")?;
    lease["spec"]["holderIdentity"].as_str().map(String::from)
}

/// Writes other than to the Lease that reached the server.
fn object_writes(fake: &FakeApi) -> Vec<Write> {
    fake.writes()
        .into_iter()
        .filter(|w| !w.path.contains("/leases") && !w.partitioned)
        .collect()
}

async fn started_pair(fake: &FakeApi) -> (Replica, Replica, String) {
    let a = Replica::start(fake, "replica-a").await;
    let b = Replica::start(fake, "replica-b").await;
    eventually("a WasmPlugin", Duration::from_secs(20), || async { applied_path(fake) }).await;
    let leader = eventually("a Lease holder", Duration::from_secs(20), || async { holder(fake) }).await;
    (a, b, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_writes_and_a_killed_holder_is_replaced_within_the_lease_duration() {
    let fake = FakeApi::start().await;
    seed(&fake);
    let (a, b, leader) = started_pair(&fake).await;
    for (i, path) in ["/items/{*}", "/orders/*", "/carts/*"].iter().enumerate() {
        allowlist(&fake, path);

        eventually(&format!("change {i} applied"), Duration::from_secs(10), || async {
            (applied_path(&fake).as_deref() == Some(*path)).then_some(())
        })
        .await;
    }
    let writers: std::collections::BTreeSet<Option<String>> =
        object_writes(&fake).into_iter().map(|w| w.client).collect();
    assert_eq!(writers.len(), 1, "one writer while both run: {writers:?}");
    assert_eq!(writers.into_iter().next().flatten(), Some(leader.clone()));

    let (dead, alive) = if leader == a.id { (a, b) } else { (b, a) };
    dead.kill();
    let killed = Instant::now();
    allowlist(&fake, "/after-failover/*");
    eventually(
        "the other replica applies the change",
        Duration::from_secs(15),
        || async { (applied_path(&fake).as_deref() == Some("/after-failover/*")).then_some(()) },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= LEASE + 2 * RETRY + Duration::from_millis(800),
        "took over and wrote {took:?} after the crash (lease {LEASE:?})"
    );
    let last = object_writes(&fake).into_iter().last().unwrap();
    assert_eq!(last.client.as_deref(), Some(alive.id));
    assert_eq!(holder(&fake).as_deref(), Some(alive.id));
    alive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_holder_stops_writing_before_its_lease_can_be_taken() {
    let fake = FakeApi::start().await;
    seed(&fake);
    let (a, b, leader) = started_pair(&fake).await;
    let (cut, other) = if leader == a.id { (a, b) } else { (b, a) };
    assert_eq!(cut.says_leader().await, Some(true));
    assert_eq!(other.says_leader().await, Some(false));

    let partitioned = Instant::now();
    fake.set_partitioned(cut.id, true);
    let stopped = eventually("the cut-off holder gives up", Duration::from_secs(10), || async {
        (cut.says_leader().await == Some(false)).then(Instant::now)
    })
    .await;
    let taken = eventually("the other replica takes the Lease", Duration::from_secs(10), || async {
        fake.writes()
            .into_iter()
            .find(|w| {
                w.path.contains("/leases")
                    && w.at > partitioned
                    && w.client.as_deref() == Some(other.id)
                    && w.body["spec"]["holderIdentity"] == other.id
            })
            .map(|w| w.at)
    })
    .await;
    assert!(
        stopped < taken,
        "the holder stopped {:?} after the cut, the Lease was taken {:?} after it",
        stopped - partitioned,
        taken - partitioned
    );
    // Nothing the cut-off replica attempted after it stopped.
    let late: Vec<Write> = fake
        .writes()
        .into_iter()
        .filter(|w| w.client.as_deref() == Some(cut.id) && !w.path.contains("/leases") && w.at > stopped)
        .collect();
    assert!(late.is_empty(), "{late:#?}");

    // Healed, the old holder follows: the new one applies the next change.
    fake.set_partitioned(cut.id, false);
    allowlist(&fake, "/healed/*");
    eventually("the new holder applies the change", Duration::from_secs(10), || async {
        (applied_path(&fake).as_deref() == Some("/healed/*")).then_some(())
    })
    .await;
    let after: std::collections::BTreeSet<Option<String>> = object_writes(&fake)
        .into_iter()
        .filter(|w| w.at > taken)
        .map(|w| w.client)
        .collect();
    assert_eq!(after.into_iter().collect::<Vec<_>>(), [Some(other.id.to_string())]);
    assert_eq!(cut.says_leader().await, Some(false));
    cut.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_the_lease_over_at_once() {
    let fake = FakeApi::start().await;
    seed(&fake);
    let (a, b, leader) = started_pair(&fake).await;
    let (leaving, staying) = if leader == a.id { (a, b) } else { (b, a) };
    let stopped = Instant::now();
    leaving.stop().await;
    eventually("the other holds the Lease", Duration::from_secs(10), || async {
        (holder(&fake).as_deref() == Some(staying.id)).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < LEASE,
        "released, not expired: {:?}",
        stopped.elapsed()
    );
    staying.stop().await;
}
