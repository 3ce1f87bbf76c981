//! gRPC for the end-to-end tests: a real gRPC server and client in Python
//! (`grpcio` in the project's `.venv`, `make setup`), generated at test time
//! from `tests/e2e/data/inventory.proto` by `grpc_tools.protoc`, driven by
//! `tests/e2e/data/inventory.py`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::client::Caller;
use crate::envoy::Envoy;
use crate::scenario::{free_port, workspace};

/// The project virtualenv's Python, which has `grpcio`, `grpcio-tools` and
/// `grpcio-reflection`.
pub fn python() -> PathBuf {
    let path = workspace().join(".venv/bin/python");
    assert!(path.exists(), "{} is missing: run `make setup` first", path.display());
    path
}

fn data(file: &str) -> PathBuf {
    workspace().join("tests/e2e/data").join(file)
}

/// Generates the Python stubs of `inventory.proto` into `dir`.
pub fn generate_stubs(dir: &Path) {
    let out = Command::new(python())
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(data(""))
        .arg(format!("--python_out={}", dir.display()))
        .arg(format!("--grpc_python_out={}", dir.display()))
        .arg("inventory.proto")
        .output()
        .expect("run grpc_tools.protoc");
    assert!(
        out.status.success(),
        "grpc_tools.protoc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Inventory gRPC server (with server reflection, v1alpha and v1),
/// plaintext HTTP/2 on a free port of 127.0.0.1. Stopped on drop.
#[derive(Debug)]
pub struct GrpcServer {
    /// Its port.
    pub port: u16,
    child: Child,
    calls_log: PathBuf,
}

impl GrpcServer {
    /// Generates the stubs into `dir` and starts the server; returns once it
    /// serves.
    pub fn start(dir: &Path) -> Self {
        generate_stubs(dir);
        let port = free_port();
        let calls_log = dir.join("grpc-calls.log");
        let mut child = Command::new(python())
            .arg(data("inventory.py"))
            .arg("serve")
            .arg(dir)
            .arg(port.to_string())
            .arg(&calls_log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the gRPC server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "READY", "the gRPC server did not start");
        Self { port, child, calls_log }
    }

    /// The full method names (`/package.Service/Method`) of the calls the
    /// server handled so far, in order.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a gRPC client saw for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcReply {
    /// The call (`GetItem`, `reflection-v1alpha`, ...).
    pub call: String,
    /// The gRPC status name (`OK`, `PERMISSION_DENIED`, ...).
    pub code: String,
    /// The status message (`grpc-message`), if any.
    pub details: Option<String>,
    /// The reply, as JSON (an item's name, a list of names).
    pub reply: serde_json::Value,
}

impl Envoy {
    /// Makes gRPC `calls` through the mTLS listener as `caller`, one
    /// channel for all, with the stubs in `stubs` ([`generate_stubs`]).
    /// A call is a method of Inventory or `reflection-v1alpha` /
    /// `reflection-v1` (list the services).
    pub fn grpc(&self, stubs: &Path, caller: &Caller, calls: &[&str]) -> Vec<GrpcReply> {
        let Caller::Mtls { cert, key } = caller else {
            panic!("the gRPC client calls the mTLS listener: give it a certificate");
        };
        let out = Command::new(python())
            .arg(data("inventory.py"))
            .arg("call")
            .arg(stubs)
            .arg(self.mtls.to_string())
            .arg(&self.ca)
            .arg(cert)
            .arg(key)
            .args(calls)
            .output()
            .expect("run the gRPC client");
        assert!(
            out.status.success(),
            "the gRPC client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                GrpcReply {
                    call: v["call"].as_str().unwrap_or_default().to_string(),
                    code: v["code"].as_str().unwrap_or_default().to_string(),
                    details: v["details"].as_str().map(str::to_string),
                    reply: v["reply"].clone(),
                }
            })
            .collect()
    }
}
