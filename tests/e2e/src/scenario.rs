//! What every scenario shares: the workspace, a scratch directory of its
//! own, free ports, and [`Scenario`], which starts an upstream and Envoy
//! together.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::envoy::{Envoy, EnvoyOptions};
use crate::pki::Pki;
use crate::upstream::Upstream;

/// The workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `meshward-control` binary: `MESHWARD_CONTROL`, or the one built next
/// to the running executable (`cargo run` puts binaries in
/// `target/<profile>/`; test binaries run from `target/<profile>/deps/`).
/// `cargo test --workspace` builds it; `cargo test -p meshward-e2e` alone
/// does not (`cargo build -p meshward-control` first).
pub fn control_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MESHWARD_CONTROL") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    for candidate in [dir.join("meshward-control"), dir.join("../meshward-control")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "meshward-control is not built next to {}: run `cargo build -p meshward-control`",
        exe.display()
    );
}

/// A fresh directory for one scenario, removed on drop unless the test fails.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// A number unique in this process: scratch directories and ECDS versions.
pub(crate) fn next_serial() -> usize {
    SCRATCH.fetch_add(1, Ordering::Relaxed)
}

impl Scratch {
    /// Creates `$TMPDIR/meshward-e2e-<pid>-<n>`.
    pub fn new() -> Self {
        let n = next_serial();
        let path = std::env::temp_dir().join(format!("meshward-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scenario files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Everything one scenario needs, started together.
#[derive(Debug)]
pub struct Scenario {
    /// The recording upstream.
    pub upstream: Upstream,
    /// Envoy with the filter.
    pub envoy: Envoy,
    /// The certificates.
    pub pki: Pki,
    scratch: Scratch,
}

impl Scenario {
    /// Starts an upstream and Envoy with `opts`.
    pub fn start(opts: EnvoyOptions) -> Self {
        let scratch = Scratch::new();
        let pki = Pki::new(scratch.path());
        let upstream = Upstream::start();
        let envoy = Envoy::start(&scratch, &pki, &upstream, &opts);
        Self {
            upstream,
            envoy,
            pki,
            scratch,
        }
    }

    /// The scenario directory.
    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }
}
