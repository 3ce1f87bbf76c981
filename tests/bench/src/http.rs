//! A minimal HTTP/1.1 client over `std::net` for the checks around the load
//! runs (admin readiness and `/memory`, verdicts, the config-change poll): no
//! process per request, so polling is cheap and precise.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status code and (de-chunked) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// The body.
    pub(crate) body: String,
}

/// Sends `method path` to `127.0.0.1:port` on a fresh connection
/// (`connection: close`) and reads the whole response.
pub(crate) fn request(port: u16, method: &str, path: &str, timeout: Duration) -> Result<Response, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("set timeouts: {e}"))?;
    let req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("send {method} {path} to 127.0.0.1:{port}: {e}"))?;
    // Read until the response is complete, not until the connection ends:
    // Envoy closes its side only after the client does or after its
    // `delayed_close_timeout` (1 s), which would swamp the timings.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !is_complete(&raw, method == "HEAD") {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("read the response to {method} {path} from 127.0.0.1:{port}: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    parse_response(&raw).ok_or_else(|| {
        format!(
            "malformed response to {method} {path} from 127.0.0.1:{port}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// The status and body of a complete HTTP/1.1 response (content-length,
/// chunked, or delimited by the end of the connection).
pub(crate) fn parse_response(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked { dechunk(body)? } else { body.to_string() };
    Some(Response { status, body })
}

/// Whether `raw` holds a whole response: its head and a body as long as
/// `content-length`, or a chunked body up to its last chunk (just the head
/// for a response to HEAD).
fn is_complete(raw: &[u8], head_request: bool) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    if head_request {
        return true;
    }
    for line in head.split("\r\n").skip(1) {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            return v.parse::<usize>().is_ok_and(|len| body.len() >= len);
        }
        if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            return dechunk(body).is_some();
        }
    }
    // Neither: a body without length ends with the connection (or a 204/304
    // without a body; either way, reading on until EOF is correct).
    false
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked() {
        let plain = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 5\r\n\r\nnope!";
        assert_eq!(
            parse_response(plain),
            Some(Response {
                status: 403,
                body: "nope!".into()
            })
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nLIVE\r\n2;x=y\r\n\n!\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, "LIVE\n!");
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None);
        assert!(is_complete(plain, false));
        assert!(is_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true));
        assert!(!is_complete(&plain[..plain.len() - 1], false));
        assert!(is_complete(chunked, false));
        assert!(!is_complete(&chunked[..chunked.len() - 3], false));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\n\r\nbody until EOF", false));
    }
}
