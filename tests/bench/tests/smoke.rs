//! The harness must not rot: `meshward-bench --smoke` (every variant, N = 10,
//! one short round) exits 0 and reports a positive request rate for every
//! variant. Needs what the harness needs: Envoy in `.venv`, wrk, taskset and
//! `make build-wasm`.

use std::process::Command;

const LABELS: [&str; 6] = [
    "(a) Router",
    "(b) Rbac",
    "(b2) RbacMatcher",
    "(c) NoopWasm",
    "(d) Meshward",
    "(e) ExtAuthz",
];

#[test]
fn smoke_run_reports_every_variant() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshward-bench"))
        .arg("--smoke")
        .output()
        .expect("run meshward-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "meshward-bench --smoke failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    for label in LABELS {
        for request in ["allowed", "denied"] {
            let row = stdout
                .lines()
                .find(|l| l.starts_with(&format!("| {label} | 10 | {request} |")))
                .unwrap_or_else(|| panic!("no {request} row for {label}:\n{stdout}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            // ["", variant, N, request, req/s, ...]
            let rps: f64 = cells[4]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("unparsable req/s in {row}"));
            assert!(rps > 0.0, "{label} {request}: {rps} req/s in {row}");
        }
    }
}
