//! Reading request log lines (`meshward.request {json}`) as the proxies
//! print them: from `kubectl logs -c istio-proxy`, Envoy's own log, a file,
//! standard input or a gzip file.
//!
//! A line is read from the marker `meshward.request ` to the end of the JSON
//! object after it: what comes before (Envoy's `[time][thread][info][wasm]
//! ... wasm log meshward:` prefix, Istio's tab-separated one) and after
//! (Istio's `\tthread=N`) is ignored. Fields unknown to this version are
//! ignored and fields added since a line was written (`port`, `grpc`) may be
//! absent, so lines of every version are read.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// What precedes the JSON object of a request log line.
pub const MARKER: &str = "meshward.request ";

/// The input name that means standard input.
pub const STDIN: &str = "-";

/// One request as its log line records it. Only what learning and replay
/// read; other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The method, as received.
    #[serde(default)]
    pub method: String,
    /// The `:authority`, as received.
    #[serde(default)]
    pub authority: Option<String>,
    /// The canonical path (with the query if the configuration logged it).
    #[serde(default)]
    pub path: String,
    /// The caller's principal; `None` for an anonymous caller.
    #[serde(default)]
    pub principal: Option<String>,
    /// The destination port; absent in lines written before it was logged.
    #[serde(default)]
    pub port: Option<u16>,
    /// Whether the request was gRPC; absent in older lines.
    #[serde(default)]
    pub grpc: Option<bool>,
    /// The receiving workload (the proxy's `WORKLOAD_NAME`).
    #[serde(default)]
    pub workload: Option<String>,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The recorded verdict: `allow`, `deny`, `audit_deny` or `reject`.
    #[serde(default)]
    pub verdict: String,
}

impl Record {
    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// Whether the request reached the workload: `allow` or `audit_deny`.
    pub fn reached(&self) -> bool {
        matches!(self.verdict.as_str(), "allow" | "audit_deny")
    }
}

/// What one line of input is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A request log line.
    Record(Box<Record>),
    /// A line without the marker (other log output).
    Skipped,
    /// The marker, followed by something that is not a log record.
    Bad(String),
}

/// Reads one line.
pub fn parse_line(line: &str) -> Line {
    let Some((_, rest)) = line.split_once(MARKER) else {
        return Line::Skipped;
    };
    // The first JSON value after the marker; whatever follows it is ignored.
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Record>();
    match values.next() {
        Some(Ok(r)) if r.method.is_empty() || r.path.is_empty() || r.verdict.is_empty() => {
            Line::Bad("a request log line needs method, path and verdict".into())
        }
        Some(Ok(r)) => Line::Record(Box::new(r)),
        Some(Err(e)) => Line::Bad(e.to_string()),
        None => Line::Bad("nothing after the marker".into()),
    }
}

/// Where a line was read: the input as named and a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct At {
    /// Index of the input in [`LogStats::files`].
    pub file: u32,
    /// The line, 1-based.
    pub line: u64,
}

/// A line with the marker that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Where.
    pub at: At,
    /// Why.
    pub message: String,
}

/// What was read from the inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// The inputs, as named (`<stdin>` for `-`).
    pub files: Vec<String>,
    /// Lines read.
    pub lines: u64,
    /// Request log lines read.
    pub records: u64,
    /// Lines without the marker.
    pub skipped: u64,
    /// Lines with the marker that could not be read, in input order.
    pub bad: Vec<BadLine>,
}

impl LogStats {
    /// `file:line` for `at`.
    pub fn place(&self, at: &At) -> Place<'_> {
        Place {
            file: self.files.get(at.file as usize).map_or("?", String::as_str),
            line: at.line,
        }
    }
}

/// `file:line`, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    file: &'a str,
    line: u64,
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why the logs could not be read.
#[derive(Debug, Error)]
pub enum LogError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file (`-` for standard input).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Reads every input in order (`-` is standard input, read once; a name
/// ending in `.gz` is gunzipped) and hands each request record to `each`
/// with where it was read.
pub fn read_logs(inputs: &[PathBuf], mut each: impl FnMut(Record, At)) -> Result<LogStats, LogError> {
    let mut stats = LogStats::default();
    let mut stdin_read = false;
    for input in inputs {
        let io = |source| LogError::Io {
            path: input.clone(),
            source,
        };
        let (name, reader): (String, Box<dyn Read>) = if input.as_os_str() == STDIN {
            if stdin_read {
                continue;
            }
            stdin_read = true;
            ("<stdin>".into(), Box::new(std::io::stdin().lock()))
        } else {
            let file = std::fs::File::open(input).map_err(io)?;
            (input.display().to_string(), Box::new(file))
        };
        let reader: Box<dyn Read> = if is_gzip(input) {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            reader
        };
        let file = stats.files.len() as u32;
        stats.files.push(name);
        read_one(BufReader::with_capacity(1 << 16, reader), file, &mut stats, &mut each).map_err(io)?;
    }
    Ok(stats)
}

/// Reads one input held in memory (a pod's log as the API server returned
/// it, lines posted to the service), named `name` in places, into `stats`,
/// handing each request record to `each`.
pub fn read_text(name: &str, text: &str, stats: &mut LogStats, mut each: impl FnMut(Record, At)) {
    let file = stats.files.len() as u32;
    stats.files.push(name.to_string());
    // Reading from memory cannot fail.
    let _ = read_one(text.as_bytes(), file, stats, &mut each);
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Reads the lines of one input. A line that is not UTF-8 is read with the
/// invalid bytes replaced (a log line with the marker is ASCII JSON).
fn read_one(
    mut reader: impl BufRead,
    file: u32,
    stats: &mut LogStats,
    each: &mut impl FnMut(Record, At),
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut number = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        number += 1;
        stats.lines += 1;
        let text = String::from_utf8_lossy(&buf);
        let at = At { file, line: number };
        match parse_line(text.trim_end_matches(['\n', '\r'])) {
            Line::Record(r) => {
                stats.records += 1;
                each(*r, at);
            }
            Line::Skipped => stats.skipped += 1,
            Line::Bad(message) => stats.bad.push(BadLine { at, message }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"time":"2026-11-22T07:49:48.213Z","requestId":"r1","method":"GET","authority":"reviews:9080","path":"/reviews/1","principal":"cluster.local/ns/bookinfo/sa/productpage","port":9080,"grpc":false,"workload":"reviews","namespace":"bookinfo","policy":"bookinfo/reviews","rule":"reads","verdict":"allow","mode":"enforce","status":200,"durationMs":0.3}"#;

    fn record(line: &str) -> Record {
        match parse_line(line) {
            Line::Record(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envoy_and_istio_prefixes_and_istios_thread_suffix_are_ignored() {
        let envoy = format!(
            "[2026-11-22 07:49:48.213][21][info][wasm] [source/extensions/common/wasm/context.cc:1195] wasm log meshward meshward: meshward.request {JSON}"
        );
        let istio = format!(
            "2026-11-22T07:49:48.213421Z\tinfo\twasm\twasm log meshward meshward: meshward.request {JSON}\tthread=24"
        );
        let bare = format!("meshward.request {JSON}");
        for line in [envoy, istio, bare] {
            let r = record(&line);
            assert_eq!(r.path, "/reviews/1");
            assert_eq!(r.port, Some(9080));
            assert_eq!(r.workload.as_deref(), Some("reviews"));
            assert!(r.reached());
        }
    }

    #[test]
    fn lines_without_the_new_fields_and_with_unknown_ones_are_read() {
        let old = r#"meshward.request {"method":"POST","path":"/a?x=1","principal":null,"workload":"w","namespace":"n","verdict":"deny","future":{"x":[1]}}"#;
        let r = record(old);
        assert_eq!((r.port, r.grpc, r.principal.as_deref()), (None, None, None));
        assert_eq!(r.path_only(), "/a");
        assert!(!r.reached());
    }

    #[test]
    fn other_lines_are_skipped_and_bad_ones_say_why() {
        assert_eq!(parse_line("2026 info envoy main starting"), Line::Skipped);
        for bad in [
            "meshward.request {\"method\":\"GET\"",
            "meshward.request not json",
            "meshward.request ",
            "meshward.request {\"method\":\"GET\",\"path\":\"/\"}",
            "meshward.request {\"method\":\"GET\",\"path\":\"/\",\"verdict\":\"allow\",\"port\":70000}",
        ] {
            assert!(matches!(parse_line(bad), Line::Bad(_)), "{bad}");
        }
    }

    #[test]
    fn files_count_lines_and_read_gzip() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("meshward-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!("starting\nmeshward.request {JSON}\nmeshward.request {{oops\n");
        let plain = dir.join("a.log");
        std::fs::write(&plain, &text).unwrap();
        let gz = dir.join("b.log.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let mut seen = Vec::new();
        let stats = read_logs(&[plain, gz], |r, at| seen.push((r.path, at))).unwrap();
        assert_eq!(
            (stats.lines, stats.records, stats.skipped, stats.bad.len()),
            (6, 2, 2, 2)
        );
        assert_eq!(seen[1].1, At { file: 1, line: 2 });
        assert_eq!(
            stats.place(&stats.bad[1].at).to_string(),
            format!("{}:3", dir.join("b.log.gz").display())
        );
        let missing = read_logs(&[dir.join("nope.log")], |_, _| {});
        assert!(matches!(missing, Err(LogError::Io { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
