//! The client side: who sends a request ([`Caller`]), the request
//! ([`Call`]), and sending it to [`Envoy`] with curl over HTTP/1.1 or HTTP/2,
//! or as raw bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::envoy::Envoy;

/// Who sends a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// mTLS with this client certificate and key.
    Mtls {
        /// PEM certificate.
        cert: PathBuf,
        /// PEM key.
        key: PathBuf,
    },
    /// Plaintext: no identity.
    Anonymous,
}

/// A request for [`Envoy::send`].
#[derive(Debug, Clone)]
pub struct Call {
    /// Method.
    pub method: String,
    /// Request target, sent as is (`--path-as-is`).
    pub path: String,
    /// `Host` / `:authority` override.
    pub host: Option<String>,
    /// Extra headers, in order (repeated names stay separate lines).
    pub headers: Vec<(String, String)>,
    /// HTTP/2 instead of HTTP/1.1.
    pub http2: bool,
    /// The TLS server name an mTLS caller sends (not checked against the
    /// server's certificate); `None` = `localhost`.
    pub sni: Option<String>,
}

/// A request `METHOD path` over HTTP/1.1.
pub fn call(method: &str, path: &str) -> Call {
    Call {
        method: method.into(),
        path: path.into(),
        host: None,
        headers: Vec::new(),
        http2: false,
        sni: None,
    }
}

impl Call {
    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Overrides the authority.
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }
    /// Uses HTTP/2.
    pub fn h2(mut self) -> Self {
        self.http2 = true;
        self
    }
    /// Sends `name` as the TLS server name (mTLS callers).
    pub fn sni(mut self, name: &str) -> Self {
        self.sni = Some(name.into());
        self
    }
}

/// An address as a URL's host: IPv6 in brackets.
fn url_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status (0 if curl failed).
    pub status: u16,
    /// Body.
    pub body: String,
}

impl Envoy {
    /// Sends a request with curl and returns the status and body.
    pub fn send(&self, caller: &Caller, req: &Call) -> Reply {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--path-as-is",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            &req.method,
        ]);
        let url = match caller {
            Caller::Mtls { cert, key } => {
                cmd.arg("--cacert")
                    .arg(&self.ca)
                    .arg("--cert")
                    .arg(cert)
                    .arg("--key")
                    .arg(key);
                cmd.arg(if req.http2 { "--http2" } else { "--http1.1" });
                match &req.sni {
                    // The name goes in the URL, so curl sends it as SNI; the
                    // connection goes to the listener, whose certificate
                    // names localhost only.
                    Some(name) => {
                        cmd.arg("--insecure").arg("--connect-to").arg(format!(
                            "{name}:{port}:{host}:{port}",
                            port = self.mtls,
                            host = url_host(&self.address)
                        ));
                        format!("https://{name}:{}{}", self.mtls, req.path)
                    }
                    None => format!("https://localhost:{}{}", self.mtls, req.path),
                }
            }
            Caller::Anonymous => {
                cmd.arg(if req.http2 {
                    "--http2-prior-knowledge"
                } else {
                    "--http1.1"
                });
                format!("http://{}:{}{}", url_host(&self.address), self.plain, req.path)
            }
        };
        if let Some(host) = &req.host {
            cmd.args(["-H", &format!("Host: {host}")]);
        }
        for (k, v) in &req.headers {
            cmd.args(["-H", &format!("{k}: {v}")]);
        }
        let out = cmd.arg(url).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        Reply {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_string(),
        }
    }

    /// Sends raw bytes as an HTTP/1.1 request on the plaintext listener and
    /// returns the status line's code (0 if the connection closed first).
    pub fn send_raw(&self, request: &[u8]) -> u16 {
        let Ok(mut s) = TcpStream::connect((self.address.as_str(), self.plain)) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        if s.write_all(request).is_err() {
            return 0;
        }
        // The request should carry `Connection: close`; a half-close here
        // would make Envoy drop the stream before answering.
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}
