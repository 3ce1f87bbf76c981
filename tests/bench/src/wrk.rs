//! The load generator: `wrk` (Debian's package) with a Lua script that sets
//! the method and path, and its text output parsed.

use std::path::Path;
use std::process::Command;

/// What one wrk run reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WrkResult {
    /// Completed requests (`N requests in ...`).
    pub(crate) requests: u64,
    /// `Requests/sec:` (completed requests over wrk's own run time).
    pub(crate) rps: f64,
    /// The 50% line of `Latency Distribution` (`--latency`), microseconds.
    pub(crate) p50_us: f64,
    /// The 99% line, microseconds.
    pub(crate) p99_us: f64,
    /// `Non-2xx or 3xx responses:` (0 when the line is absent).
    pub(crate) non_2xx: u64,
    /// Sum of `Socket errors: connect a, read b, write c, timeout d`.
    pub(crate) socket_errors: u64,
}

/// Checks that wrk is installed.
pub(crate) fn check_installed() -> Result<String, String> {
    // `wrk -v` prints its version and usage and exits with status 1.
    let out = Command::new("wrk")
        .arg("-v")
        .output()
        .map_err(|e| format!("wrk is not installed ({e}): `apt-get install -y wrk` (scripts/setup.sh installs it)"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let first = text.lines().next().unwrap_or("wrk");
    Ok(first.split(" Copyright").next().unwrap_or(first).trim().to_string())
}

/// A Lua string literal for `s`.
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// The `wrk -s` script sending `method path` on every request.
pub(crate) fn script(method: &str, path: &str) -> String {
    format!(
        "-- meshward-bench: every request is {method} {path}\nwrk.method = {}\nwrk.path = {}\n",
        lua_string(method),
        lua_string(path)
    )
}

/// The arguments of one run (after `taskset -c <cpu> wrk`).
pub(crate) fn args(threads: u32, connections: u32, seconds: u64, script: &Path, port: u16) -> Vec<String> {
    vec![
        format!("--threads={threads}"),
        format!("--connections={connections}"),
        format!("--duration={seconds}s"),
        "--latency".to_string(),
        format!("--script={}", script.display()),
        format!("http://127.0.0.1:{port}"),
    ]
}

/// Runs `taskset -c cpu wrk ...` to completion and parses its output.
pub(crate) fn run(cpu: &str, args: &[String]) -> Result<WrkResult, String> {
    let out = Command::new("taskset")
        .arg("-c")
        .arg(cpu)
        .arg("wrk")
        .args(args)
        .output()
        .map_err(|e| format!("start `taskset -c {cpu} wrk`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`wrk {}` failed ({}):\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse(&stdout).map_err(|e| format!("wrk output: {e}:\n{stdout}"))
}

/// A wrk duration (`123.45us`, `1.20ms`, `2.00s`, `1.00m`) in microseconds.
fn duration_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = s.get(..split)?.parse().ok()?;
    let factor = match s.get(split..)? {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(value * factor)
}

/// Parses wrk 4's report (with `--latency`).
pub(crate) fn parse(out: &str) -> Result<WrkResult, String> {
    let mut requests = None;
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in out.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.trim().parse::<u64>().ok();
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = duration_us(v.trim());
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = duration_us(v.trim());
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().map_err(|_| format!("bad line {line:?}"))?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // connect 0, read 0, write 0, timeout 0
            for part in v.split(',') {
                let n = part.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok());
                socket_errors += n.ok_or_else(|| format!("bad line {line:?}"))?;
            }
        }
    }
    Ok(WrkResult {
        requests: requests.ok_or("no `N requests in` line")?,
        rps: rps.ok_or("no `Requests/sec:` line")?,
        p50_us: p50.ok_or("no 50% latency line (was --latency given?)")?,
        p99_us: p99.ok_or("no 99% latency line (was --latency given?)")?,
        non_2xx,
        socket_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 1s test @ http://127.0.0.1:18080
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.98ms    4.61ms  26.86ms   83.70%
    Req/Sec     0.96k   431.71     1.73k    80.00%
  Latency Distribution
     50%  285.00us
     75%    7.48ms
     90%   11.90ms
     99%   1.26s
  960 requests in 1.00s, 487.68KB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 960
Requests/sec:    959.53
Transfer/sec:    487.44KB
";

    #[test]
    fn parses_a_report() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.requests, 960);
        assert!((r.rps - 959.53).abs() < 1e-9);
        assert!((r.p50_us - 285.0).abs() < 1e-9);
        assert!((r.p99_us - 1.26e6).abs() < 1e-3);
        assert_eq!(r.non_2xx, 960);
        assert_eq!(r.socket_errors, 5);
    }

    #[test]
    fn without_optional_lines() {
        let text = SAMPLE
            .lines()
            .filter(|l| !l.contains("Non-2xx") && !l.contains("Socket"))
            .collect::<Vec<_>>()
            .join("\n");
        let r = parse(&text).unwrap();
        assert_eq!((r.non_2xx, r.socket_errors), (0, 0));
        assert!(parse("Running 1s test").is_err());
    }

    #[test]
    fn lua_literals() {
        assert_eq!(lua_string(r#"/a"b\c"#), r#""/a\"b\\c""#);
        assert_eq!(lua_string("/\u{e9}"), "\"/\\195\\169\"");
        assert!(script("GET", "/x").contains("wrk.method = \"GET\"\nwrk.path = \"/x\""));
    }
}
