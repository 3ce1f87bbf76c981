//! `make demo` is part of the test suite: the demo binary must finish with
//! every verdict as expected, so it cannot rot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn the_demo_runs_and_every_verdict_is_as_expected() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshward-demo"))
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all 14 verdicts as expected"), "{stdout}");
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
    for needle in ["bookinfo/reviews/productpage-reads ok", "\"verdict\":\"deny\""] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // The five enforce-mode denials of the table, plus one for each try of
    // the wait for the audit configuration that still met the old one.
    let denials: u64 = stdout
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix(
                "meshward_requests_total{meshward_namespace=\"bookinfo\",meshward_workload=\"reviews\",\
                     meshward_mode=\"enforce\",meshward_verdict=\"deny\",meshward_policy=\"bookinfo/reviews\",\
                     meshward_rule=\"-\"} ",
            )
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no deny counter in:\n{stdout}"));
    assert!(
        denials >= 5,
        "{denials} denials counted, at least 5 expected:\n{stdout}"
    );
}
