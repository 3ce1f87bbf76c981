//! `make soak`: the filter in a real Envoy under load for minutes, with its
//! configuration rewritten every 30 s (not part of `make test`).
//!
//! * Load: keep-alive HTTP/1.1 connections to the plaintext listener, each
//!   request to a path of its own out of 1,000,000 (`/{a,b,both,none}/item-N`),
//!   with a random `x-tier` header and up to three random `x-soak-*` headers.
//! * Configuration: two policies alternate through ECDS. `soak-A` admits
//!   `/a/*` and `soak-B` admits `/b/*`, each unless `x-tier: blocked`; both
//!   admit `/both/*` (rule `both`), neither `/none/*`. So every request's
//!   access-log line (path, status, verdict, policy, rule) proves which whole
//!   configuration judged it: the status, verdict and rule must be exactly
//!   what the configuration named by the policy gives for that path and tier.
//!   A request judged by a mix of old and new fails the check.
//! * Recorded: requests, rate, Envoy's RSS every 10 s, the VM memory the
//!   filter logs, configurations applied; checked: every request answered 200
//!   or 403 as its configuration says, the upstream received exactly the
//!   allowed ones, Envoy alive, no panic or critical line in its log.
//!
//! `meshward-soak [--seconds 600] [--interval 30] [--connections 4]`.
//! Exits 1 on any failed check.

// A load driver: a failed set-up step stops it loudly (the harness panics).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshward_e2e::{Envoy, EnvoyOptions, Pki, Scratch, Upstream};

/// Distinct paths: request `seq` goes to item `seq * 7919 mod PATHS` (7919 is
/// prime to 10^6, so the first million requests each get a path of their own).
const PATHS: u64 = 1_000_000;
const PREFIXES: [&str; 4] = ["a", "b", "both", "none"];
const TIERS: [&str; 3] = ["gold", "silver", "blocked"];

fn config(name: &str, prefix: &str) -> String {
    serde_json::json!({"log": {"requests": "off"}, "policies": [{"name": name, "rules": [
        {"name": format!("{prefix}-reads"), "to": [{"paths": [format!("/{prefix}/*")]}],
         "when": [{"header": "x-tier", "notValues": ["blocked"]}]},
        {"name": "both", "to": [{"paths": ["/both/*"]}]}]}]})
    .to_string()
}

/// What configuration `policy` gives a request: (status, verdict, rule).
fn expected(policy: &str, prefix: &str, tier: &str) -> Option<(u16, &'static str, String)> {
    let own = match policy {
        "soak-A" => "a",
        "soak-B" => "b",
        _ => return None,
    };
    let allowed = match prefix {
        "both" => Some("both".to_string()),
        p if p == own && tier != "blocked" => Some(format!("{own}-reads")),
        _ => None,
    };
    Some(match allowed {
        Some(rule) => (200, "allow", rule),
        None => (403, "deny", "-".to_string()),
    })
}

/// xorshift64*: a fast, seedable generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// One request a client sent and what came back.
struct Sent {
    seq: u64,
    prefix: u8,
    tier: u8,
    status: u16,
}

/// Reads one HTTP/1.1 response (status line, headers, content-length body);
/// returns the status.
fn read_response(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok().filter(|n| *n > 0)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}

/// One client: a keep-alive connection, requests until `stop`.
fn client(port: u16, id: u64, next: &AtomicU64, stop: &AtomicBool, errors: &AtomicU64) -> Vec<Sent> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x1234_5678_9abc_def1));
    let mut sent = Vec::new();
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        (s.try_clone().expect("clone"), BufReader::new(s))
    };
    let (mut writer, mut reader) = connect();
    while !stop.load(Ordering::Relaxed) {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        let (prefix, tier) = (rng.below(4), rng.below(3));
        let item = seq.wrapping_mul(7919) % PATHS;
        let mut request = format!(
            "GET /{}/item-{item}?seq={seq} HTTP/1.1\r\nhost: svc\r\nx-tier: {}\r\nuser-agent: meshward-soak\r\n",
            PREFIXES[prefix], TIERS[tier]
        );
        for k in 0..rng.below(4) {
            request.push_str(&format!("x-soak-{k}: {:x}\r\n", rng.next()));
        }
        request.push_str("\r\n");
        let status = writer
            .write_all(request.as_bytes())
            .ok()
            .and_then(|()| read_response(&mut reader));
        match status {
            Some(status) => sent.push(Sent {
                seq,
                prefix: prefix as u8,
                tier: tier as u8,
                status,
            }),
            None => {
                errors.fetch_add(1, Ordering::Relaxed);
                (writer, reader) = connect();
            }
        }
    }
    sent
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{name} {v}: not a number"))
        })
}

fn main() -> ExitCode {
    let seconds = arg("--seconds", 600);
    let interval = arg("--interval", 30);
    let connections = arg("--connections", 4);
    let configs = [config("soak-A", "a"), config("soak-B", "b")];
    let format = "%REQ(:PATH)% %RESPONSE_CODE% %FILTER_STATE(wasm.meshward.verdict:PLAIN)% %FILTER_STATE(wasm.meshward.policy:PLAIN)% %FILTER_STATE(wasm.meshward.rule:PLAIN)%\n";
    let mut opts = EnvoyOptions::new(configs[0].clone()).ecds();
    opts.access_log_format = format.into();
    let scratch = Scratch::new();
    let pki = Pki::new(scratch.path());
    let upstream = Upstream::start_counting();
    let mut envoy = Envoy::start(&scratch, &pki, &upstream, &opts);
    println!(
        "meshward soak: {seconds} s, {connections} connections, configuration alternating every {interval} s, {PATHS} distinct paths"
    );

    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..connections)
        .map(|id| {
            let (next, stop, errors, port) = (next.clone(), stop.clone(), errors.clone(), envoy.plain);
            std::thread::spawn(move || client(port, id, &next, &stop, &errors))
        })
        .collect();

    let t0 = Instant::now();
    let mut applied = 1;
    let mut last_switch = t0;
    let mut last_sample = t0 - Duration::from_secs(10);
    let mut rss = Vec::new();
    let mut alive = true;
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(200));
        if last_switch.elapsed() >= Duration::from_secs(interval) {
            envoy.update_config(&configs[applied % 2]);
            applied += 1;
            last_switch = Instant::now();
        }
        if last_sample.elapsed() >= Duration::from_secs(10) {
            last_sample = Instant::now();
            let kib = rss_kib(envoy.pid()).unwrap_or(0);
            let done = next.load(Ordering::Relaxed);
            rss.push((t0.elapsed().as_secs(), kib, done));
            println!(
                "  t={:>4} s  requests {done:>9}  ({:>5.0}/s)  Envoy RSS {:.1} MiB",
                t0.elapsed().as_secs(),
                done as f64 / t0.elapsed().as_secs_f64().max(0.001),
                kib as f64 / 1024.0
            );
        }
        if !envoy.is_running() {
            alive = false;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<Sent> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    let elapsed = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));

    // Every request's access-log line, by its sequence number, its words
    // interned (millions of lines).
    let mut words: Vec<String> = Vec::new();
    let mut intern = |w: &str| match words.iter().position(|x| x == w) {
        Some(i) => i as u8,
        None => {
            words.push(w.to_string());
            (words.len() - 1) as u8
        }
    };
    let total = next.load(Ordering::Relaxed) as usize;
    let mut logged: Vec<Option<(u16, u8, u8, u8)>> = vec![None; total + 1];
    let file = std::fs::File::open(scratch.path().join("access.log")).expect("access log");
    for line in BufReader::new(file).lines() {
        let line = line.expect("read access log");
        let f: Vec<&str> = line.split(' ').collect();
        let Some(seq) = f
            .first()
            .and_then(|p| p.split_once("?seq="))
            .and_then(|(_, s)| s.parse::<usize>().ok())
        else {
            continue;
        };
        if let ([_, status, verdict, policy, rule], Some(slot)) = (&f[..], logged.get_mut(seq)) {
            *slot = Some((
                status.parse().unwrap_or(0),
                intern(verdict),
                intern(policy),
                intern(rule),
            ));
        }
    }
    let mut wrong = Vec::new();
    let (mut missing, mut allowed) = (0u64, 0u64);
    let mut by_policy: HashMap<String, u64> = HashMap::new();
    for s in &sent {
        let (prefix, tier) = (PREFIXES[s.prefix as usize], TIERS[s.tier as usize]);
        let Some(Some((status, verdict, policy, rule))) = logged.get(s.seq as usize).copied() else {
            missing += 1;
            continue;
        };
        let (verdict, policy, rule) = (&words[verdict as usize], &words[policy as usize], &words[rule as usize]);
        *by_policy.entry(policy.clone()).or_default() += 1;
        allowed += u64::from(s.status == 200);
        let want = expected(policy, prefix, tier);
        let got = (status, verdict.as_str(), rule.clone());
        if want.as_ref().map(|(st, v, r)| (*st, *v, r.clone())) != Some(got) || status != s.status {
            wrong.push(format!(
                "seq {} /{prefix}/… x-tier {tier}: client {} log {status} {verdict} {policy} {rule}",
                s.seq, s.status
            ));
        }
    }
    let distinct = (sent.len() as u64).min(PATHS);
    let log = envoy.log();
    let memory: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("VM memory"))
        .filter_map(|l| l.split("VM memory").nth(1))
        .collect();
    let panics = log
        .lines()
        .filter(|l| l.contains("[critical]") || l.contains("panic"))
        .count();
    let accepted = log.matches("configuration accepted").count();

    println!(
        "\nrequests answered   {} in {:.0} s ({:.0}/s), {} distinct paths",
        sent.len(),
        elapsed.as_secs_f64(),
        sent.len() as f64 / elapsed.as_secs_f64(),
        distinct
    );
    println!("judged by           {by_policy:?}");
    println!("allowed             {allowed} (upstream received {})", upstream.count());
    println!("configurations      {applied} delivered, {accepted} accept lines (one per VM)");
    println!(
        "Envoy RSS (MiB)     first {:.1}, last {:.1}, max {:.1}",
        rss.first().map_or(0.0, |r| r.1 as f64 / 1024.0),
        rss.last().map_or(0.0, |r| r.1 as f64 / 1024.0),
        rss.iter().map(|r| r.1).max().unwrap_or(0) as f64 / 1024.0
    );
    println!(
        "VM memory lines     {} (first: {:?}, last: {:?})",
        memory.len(),
        memory.first(),
        memory.last()
    );
    println!("connection errors   {}", errors.load(Ordering::Relaxed));
    println!("not in access log   {missing}");
    println!("wrong verdicts      {}", wrong.len());
    println!("critical/panic      {panics}");
    println!("Envoy alive         {alive}");
    for w in wrong.iter().take(10) {
        println!("  {w}");
    }
    let ok = alive
        && wrong.is_empty()
        && missing == 0
        && panics == 0
        && errors.load(Ordering::Relaxed) == 0
        && allowed == upstream.count()
        && by_policy.len() == 2;
    println!("meshward soak: {}", if ok { "passed" } else { "FAILED" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
