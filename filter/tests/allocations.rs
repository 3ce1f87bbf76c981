//! The evaluation of an already-canonical request allocates nothing: the
//! scratch buffers and the lazy-DFA cache are reused, the canonical path and
//! host are borrowed. Counted with a global allocator wrapper.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg(not(target_arch = "wasm32"))]
// A counting allocator needs an `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use meshward_filter::auth::Claims;
use meshward_filter::{Request, Verdict};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn evaluating_a_canonical_request_does_not_allocate() {
    // Tests in this file run one at a time so no other thread allocates.
    let mut ev = common::evaluator(&common::generated_rules(1_000));
    for (i, want) in [(999, Verdict::Allow), (998, Verdict::Allow), (1_500, Verdict::Deny)] {
        let path = common::generated_path(i);
        let request = common::typical_request(&path);
        // The first evaluations grow the reusable buffers and add the path's
        // states to the lazy DFA cache (seen: one allocation in the second).
        for _ in 0..2 {
            assert_eq!(ev.evaluate(&request).verdict, want);
        }
        let per_eval: Vec<usize> = (0..100)
            .map(|_| allocations_during(|| assert_eq!(ev.evaluate(&request).verdict, want)))
            .collect();
        let n: usize = per_eval.iter().sum();
        assert_eq!(n, 0, "{path}: allocations per evaluation in steady state: {per_eval:?}");
    }
    // A rewritten path must allocate its canonical form, and only that.
    let request = Request {
        connection: Default::default(),
        method: "GET",
        path: "/x/../svc999/v1/report",
        authority: Some("svc"),
        port: Some(8080),
        principal: None,
        auth: None,
        headers: &common::TYPICAL_HEADERS[..],
    };
    assert_eq!(ev.evaluate(&request).verdict, Verdict::Allow);
    let n = allocations_during(|| {
        let d = ev.evaluate(&request);
        assert!(d.path.unwrap().is_rewritten());
    });
    assert!(n <= 3, "{n} allocations for one rewritten path");

    // Rules on a verified token read its claims in place.
    let mut jwt = common::evaluator(
        r#"{"policies":[{"name":"p","rules":[{"from":[{"requestPrincipals":["https://issuer.example/*"]}],
          "when":[{"key":"request.auth.claims[org][team]","values":["payments"]},
                  {"key":"request.auth.audiences","values":["shop"]}]}]}]}"#,
    );
    let claims = Claims::from_json(&serde_json::json!({
        "iss": "https://issuer.example", "sub": "alice", "aud": ["web", "shop"], "org": {"team": "payments"}
    }))
    .unwrap();
    let request = Request {
        auth: Some(&claims),
        ..common::typical_request("/x")
    };
    assert_eq!(jwt.evaluate(&request).verdict, Verdict::Allow);
    let n = allocations_during(|| assert_eq!(jwt.evaluate(&request).verdict, Verdict::Allow));
    assert_eq!(n, 0, "allocations per evaluation of a JWT rule");
}
