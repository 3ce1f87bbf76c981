//! The test upstream: an HTTP/1.1 server that answers 200 and records what
//! it receives, so tests can assert what passed the filter.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the upstream received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Request target, exactly as received.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

/// An HTTP/1.1 upstream that answers 200 and records what it receives.
#[derive(Debug)]
pub struct Upstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    /// Requests received; with [`Upstream::start_counting`] only these.
    count: Arc<AtomicU64>,
}

impl Upstream {
    /// Starts listening.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Starts listening, counting requests without recording them (for
    /// long load runs, where a record of every request would not fit).
    pub fn start_counting() -> Self {
        Self::start_with(false)
    }

    fn start_with(record: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (seen2, stop2, count2) = (seen.clone(), stop.clone(), count.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (seen, count) = (seen2.clone(), count2.clone());
                std::thread::spawn(move || serve(conn, &seen, record, &count));
            }
        });
        Self {
            port,
            seen,
            stop,
            count,
        }
    }

    /// How many requests were received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The paths received so far.
    pub fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One line as bytes, shown lossily (header values may be obs-text); the
/// number of bytes read, 0 at the end or on an error.
fn read_line_lossy(reader: &mut impl BufRead, out: &mut String) -> usize {
    let mut bytes = Vec::new();
    let n = reader.read_until(b'\n', &mut bytes).unwrap_or(0);
    *out = String::from_utf8_lossy(&bytes).into_owned();
    n
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>, record: bool, count: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if read_line_lossy(&mut reader, &mut line) == 0 {
            return;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if read_line_lossy(&mut reader, &mut h) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
        if record {
            if let Ok(mut s) = seen.lock() {
                s.push(Seen { method, path, headers });
            }
        }
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nupstream";
        if conn.write_all(reply).is_err() {
            return;
        }
    }
}
