//! A generator of realistic request logs, for measuring `learn` and `replay`
//! (docs/benchmarks.md, `make bench-learn`).
//!
//! ```text
//! cargo run --release -p meshward-control --example request_log -- \
//!     --out DIR --lines 1000000 [--workloads 40] [--callers 8] [--rules 0] [--seed 1]
//! ```
//!
//! writes into `DIR`:
//!
//! * `manifests.yaml`: the namespace `bench` (labelled `enabled`, so the
//!   proposal `learn` makes from the log is enforced by `replay`), one
//!   Deployment per workload (`svc-0`, `svc-1`, ...) with its pod-template
//!   labels and port 8080, and the callers' ServiceAccounts;
//! * `partners.yaml`: with `--rules N`, N more rules spread over the
//!   workloads' Allowlists (`svc-0-partners`, ...), each admitting a caller
//!   the log never shows, so that `replay` judges every line against a
//!   namespace of N rules more than `learn` proposed;
//! * `requests.log`: `--lines` lines as `kubectl logs -c istio-proxy` and
//!   Envoy print them for a namespace labelled `meshward.io/enforcement:
//!   learn`: Istio's tab-separated prefix and `\tthread=N` suffix (70%) or
//!   Envoy's own prefix (30%), and about 8% other proxy output.
//!
//! The traffic: every workload is called by `--callers` service accounts of
//! a pool twice that size, and by an anonymous health check; each caller
//! uses four of eleven endpoint shapes of its workload (collections,
//! integer ids, UUIDs, prefixed ids, hex object ids, dates, a gRPC method,
//! static files), with a fresh id in almost every request. About 1% of the
//! lines are an enforcing policy's denials of an unknown caller and 0.5%
//! rejections of malformed paths; the rest reached the workload
//! (`audit_deny`, some `allow`). So `learn` proposes one rule per (workload,
//! caller) plus one anonymous rule per workload, and the number of distinct
//! (workload, caller, method, path shape) does not grow with `--lines`.
//!
//! The output depends only on the arguments.

// A measurement tool: indices are in range by construction.
#![allow(clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The directory to write `manifests.yaml` and `requests.log` into.
    #[arg(long)]
    out: PathBuf,
    /// Lines of `requests.log`.
    #[arg(long, default_value_t = 100_000)]
    lines: u64,
    /// Workloads (Deployments) receiving traffic.
    #[arg(long, default_value_t = 40)]
    workloads: usize,
    /// Service accounts calling each workload.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// Rules of `partners.yaml`, spread over the workloads.
    #[arg(long, default_value_t = 0)]
    rules: usize,
    /// The pseudo-random sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

const NAMESPACE: &str = "bench";
const RESOURCES: [&str; 10] = [
    "orders",
    "users",
    "carts",
    "payments",
    "invoices",
    "products",
    "reviews",
    "shipments",
    "accounts",
    "sessions",
];
/// Endpoint shapes; `{r}` is the workload's resource, the other braces are
/// filled with a fresh id per request.
const ENDPOINTS: [(&str, &str); 11] = [
    ("GET", "/api/v1/{r}"),
    ("POST", "/api/v1/{r}"),
    ("GET", "/api/v1/{r}/{int}"),
    ("PUT", "/api/v1/{r}/{int}"),
    ("DELETE", "/api/v1/{r}/{uuid}"),
    ("GET", "/api/v1/{r}/{int}/items"),
    ("GET", "/api/v2/{r}/{prefixed}/events"),
    ("GET", "/objects/{hex}"),
    ("GET", "/reports/{date}/summary"),
    ("POST", "/bench.{R}/Get"),
    ("GET", "/static/app.js"),
];
const OTHER_OUTPUT: [&str; 4] = [
    "2026-11-22T07:49:01.462000Z\tinfo\tenvoy main external/envoy/source/server/server.cc:430\tinitializing epoch 0 (base id=0, hot restart version=11.104)\tthread=14",
    "2026-11-22T07:49:02.101000Z\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012\tid=1",
    "[2026-11-22 07:49:02.193][20][info][wasm] [source/extensions/common/wasm/context.cc:1195] wasm log meshward meshward: configuration accepted for bench/svc-0: 1 of 1 policies apply (meshward:learn), mode audit, 197 bytes compiled in 0.1 ms, VM memory 1.2 MiB",
    "2026-11-22T07:49:03.000000Z\twarning\tenvoy config external/envoy/source/extensions/config_subscription/grpc/grpc_stream.h:152\tStreamAggregatedResources gRPC config stream to xds-grpc closed: 13,\tthread=16",
];

fn workload(i: usize) -> String {
    format!("svc-{i}")
}

/// The service account of caller `j` of workload `i`, from a pool of
/// `2 * callers`.
fn caller(i: usize, j: usize, callers: usize) -> String {
    format!("client-{}", (i * 7 + j) % (2 * callers).max(1))
}

/// The endpoints caller `j` uses: four consecutive shapes.
fn endpoints_of(j: usize) -> impl Iterator<Item = usize> {
    (0..4).map(move |k| (j * 3 + k) % ENDPOINTS.len())
}

fn manifests(args: &Args) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels: {{meshward.io/enforcement: enabled}}\n"
    );
    let mut accounts: Vec<String> = (0..args.workloads)
        .flat_map(|i| (0..args.callers).map(move |j| (i, j)))
        .map(|(i, j)| caller(i, j, args.callers))
        .collect();
    accounts.sort();
    accounts.dedup();
    for sa in accounts {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {NAMESPACE}}}\n"
        );
    }
    for i in 0..args.workloads {
        let w = workload(i);
        let _ = write!(
            out,
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {w}, namespace: {NAMESPACE}}}\n\
             spec:\n  selector: {{matchLabels: {{app: {w}}}}}\n  template:\n    metadata: {{labels: {{app: {w}, version: v1}}}}\n\
             \x20   spec: {{containers: [{{name: app, image: {w}:1, ports: [{{name: http, containerPort: 8080}}]}}]}}\n"
        );
    }
    out
}

/// `args.rules` rules in one Allowlist per workload, each for a caller of
/// namespace `partners` that never appears in the log.
fn partners(args: &Args) -> String {
    let workloads = args.workloads.max(1);
    let mut out = String::new();
    for i in 0..workloads.min(args.rules) {
        let w = workload(i);
        let _ = write!(
            out,
            "---\napiVersion: meshward.io/v1alpha1\nkind: Allowlist\nmetadata: {{name: {w}-partners, namespace: {NAMESPACE}}}\n\
             spec:\n  selector: {{matchLabels: {{app: {w}}}}}\n  mode: audit\n  rules:\n"
        );
        for k in (i..args.rules).step_by(workloads) {
            let _ = writeln!(
                out,
                "  - {{name: partner-{k}, from: [{{principals: [cluster.local/ns/partners/sa/partner-{k}]}}], \
                 to: [{{methods: [GET, POST], paths: [\"/partners/{k}/orders/{{*}}\", /partners/{k}/status]}}]}}"
            );
        }
    }
    out
}

fn hex(rng: &mut Rng, out: &mut String, digits: usize) {
    const HEX: &[u8] = b"0123456789abcdef";
    for _ in 0..digits {
        out.push(HEX[rng.index(16)] as char);
    }
}

/// `template` with a fresh id in each placeholder.
fn path(rng: &mut Rng, template: &str, resource: &str, out: &mut String) {
    out.clear();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').unwrap_or(0);
        match &rest[open + 1..close] {
            "r" => out.push_str(resource),
            "R" => {
                let mut c = resource.chars();
                if let Some(first) = c.next() {
                    out.push(first.to_ascii_uppercase());
                    out.push_str(c.as_str());
                }
            }
            "int" => {
                let _ = write!(out, "{}", rng.below(10_000_000));
            }
            "uuid" => {
                hex(rng, out, 8);
                out.push('-');
                hex(rng, out, 4);
                out.push_str("-4");
                hex(rng, out, 3);
                out.push('-');
                out.push(['8', '9', 'a', 'b'][rng.index(4)]);
                hex(rng, out, 3);
                out.push('-');
                hex(rng, out, 12);
            }
            "prefixed" => {
                const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                out.push_str("evt_");
                out.push((b'0' + rng.below(10) as u8) as char);
                for _ in 0..11 {
                    out.push(ALNUM[rng.index(ALNUM.len())] as char);
                }
            }
            "hex" => hex(rng, out, 24),
            "date" => {
                let _ = write!(out, "2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
            }
            _ => {}
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("manifests.yaml"), manifests(&args))?;
    if args.rules > 0 {
        std::fs::write(args.out.join("partners.yaml"), partners(&args))?;
    }
    let file = std::fs::File::create(args.out.join("requests.log"))?;
    let mut log = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(args.seed);
    let mut p = String::new();
    let mut line = String::with_capacity(1024);
    let workloads = args.workloads.max(1);
    for n in 0..args.lines {
        line.clear();
        let roll = rng.below(1000);
        if roll < 80 {
            line.push_str(OTHER_OUTPUT[rng.index(OTHER_OUTPUT.len())]);
            line.push('\n');
            log.write_all(line.as_bytes())?;
            continue;
        }
        let i = rng.index(workloads);
        let w = workload(i);
        let resource = RESOURCES[i % RESOURCES.len()];
        // Who, what, and the recorded verdict.
        let (principal, method, verdict) = if roll < 90 {
            // An unknown caller an enforcing policy refused.
            path(&mut rng, "/admin/{int}", resource, &mut p);
            ("\"cluster.local/ns/attacker/sa/default\"".to_string(), "GET", "deny")
        } else if roll < 95 {
            // A malformed request, rejected.
            path(&mut rng, "/api/v1/{r}/..%2F..%2Fadmin", resource, &mut p);
            ("null".to_string(), "GET", "reject")
        } else if roll < 115 {
            // The anonymous health check.
            p.clear();
            p.push_str("/healthz");
            ("null".to_string(), "GET", "audit_deny")
        } else {
            let j = rng.index(args.callers.max(1));
            let e = endpoints_of(j).nth(rng.index(4)).unwrap_or(0);
            let (method, template) = ENDPOINTS[e];
            path(&mut rng, template, resource, &mut p);
            let sa = caller(i, j, args.callers);
            let verdict = if roll < 135 { "allow" } else { "audit_deny" };
            (format!("\"cluster.local/ns/{NAMESPACE}/sa/{sa}\""), method, verdict)
        };
        let grpc = p.starts_with("/bench.");
        let status = match verdict {
            "deny" => 403,
            "reject" => 400,
            _ => 200,
        };
        let (ms, sec) = (n % 1000, (n / 1000) % 60);
        let thread = 20 + rng.below(4);
        let envoy_style = rng.below(10) < 3;
        if envoy_style {
            let _ = write!(
                line,
                "[2026-11-22 07:49:{sec:02}.{ms:03}][{thread}][info][wasm] [source/extensions/common/wasm/context.cc:1195] wasm log meshward meshward: "
            );
        } else {
            let _ = write!(
                line,
                "2026-11-22T07:49:{sec:02}.{ms:03}421Z\tinfo\twasm\twasm log meshward meshward: "
            );
        }
        let _ = write!(
            line,
            "meshward.request {{\"authority\":\"{w}.{NAMESPACE}.svc.cluster.local:8080\",\"durationMs\":0.{d},\
             \"grpc\":{grpc},\"method\":\"{method}\",\"mode\":\"audit\",\"namespace\":\"{NAMESPACE}\",\"path\":\"{p}\",\
             \"policy\":\"meshward:learn\",\"port\":8080,\"principal\":{principal},\"requestId\":\"{id:016x}\",\
             \"rule\":\"-\",\"status\":{status},\"time\":\"2026-11-22T07:49:{sec:02}.{ms:03}Z\",\"verdict\":\"{verdict}\",\
             \"workload\":\"{w}\"}}",
            d = 100 + rng.below(900),
            id = rng.next(),
        );
        if !envoy_style {
            let _ = write!(line, "\tthread={thread}");
        }
        line.push('\n');
        log.write_all(line.as_bytes())?;
    }
    log.flush()
}
