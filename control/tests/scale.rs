//! The scale benchmark's harness, at a small size, as a behaviour test (no
//! time is asserted): `serve` as its own process against a generated
//! Istio-injected cluster applies every namespace's WasmPlugin, applies every
//! Allowlist change, and writes each status once per generation.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::time::Duration;

use meshward_fake_apiserver::cluster::Shape;
use meshward_fake_apiserver::scale::{run, ScaleConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_cluster_is_synced_every_change_applied_and_statuses_written_once() {
    let config = ScaleConfig {
        shape: Shape {
            namespaces: 4,
            deployments: 6,
            pods: 3,
        },
        changes: 6,
        pause: Duration::from_millis(20),
        timeout: Duration::from_secs(60),
        serve_args: Vec::new(),
        log: "warn".into(),
    };
    let serve = Path::new(env!("CARGO_BIN_EXE_meshward-control"));
    let work = std::env::temp_dir().join(format!("meshward-scale-smoke-{}", std::process::id()));
    let report = run(serve, &work, &config).await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", report.table());
    assert!(
        report.latencies.iter().all(Option::is_some),
        "every change reaches its WasmPlugin: {:?}",
        report.latencies
    );
    assert!(report.statuses_missing.is_empty(), "{:?}", report.statuses_missing);
    assert!(report.statuses_repeated.is_empty(), "{:?}", report.statuses_repeated);
    // 4 namespaces' first WasmPlugins, then one apply per change.
    assert_eq!(
        report.plugin_applies,
        4 + 6,
        "no WasmPlugin is applied twice with the same content"
    );
    assert_eq!(
        report.status_writes,
        24 + 6,
        "one per Allowlist, one more per changed Allowlist"
    );
    assert!(report.rss_after_sync > 0 && report.peak_rss >= report.rss_after_sync);
    let _ = std::fs::remove_dir_all(&work);
}
