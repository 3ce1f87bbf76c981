//! `oci-image`: the OCI image layout of the filter module, read back with the
//! `tar` crate (an independent reader) and checked against the layout spec and
//! what Istio's agent accepts (`pkg/wasm/imagefetcher.go`, *compat* variant).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use meshward_control::oci::{self, Digest, OciError, WasmModule};
use serde_json::Value;

fn module() -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Enough bytes that the layer spans several tar blocks and compresses.
    m.extend((0..3000u32).map(|i| (i % 251) as u8));
    m
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshward-oci-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every entry of a tar archive: name → (header, content), refusing duplicates.
fn entries(archive: &[u8]) -> BTreeMap<String, (tar::Header, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut names = Vec::new();
    for entry in tar::Archive::new(archive).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        names.push(name.clone());
        assert!(out.insert(name.clone(), (header, data)).is_none(), "duplicate {name}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted");
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The blob a descriptor points at, checked against its size and digest.
fn blob<'a>(files: &'a BTreeMap<String, (tar::Header, Vec<u8>)>, descriptor: &Value) -> &'a [u8] {
    let digest = descriptor["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let (_, data) = &files[&format!("blobs/sha256/{hex}")];
    assert_eq!(
        descriptor["size"].as_u64().unwrap(),
        data.len() as u64,
        "size of {digest}"
    );
    assert_eq!(Digest::of(data).to_string(), digest);
    data
}

/// Checks the whole layout, returns (manifest digest, the module in the layer).
fn check_layout(archive: &[u8], tag: &str) -> (String, Vec<u8>) {
    let files = entries(archive);
    assert_eq!(files["oci-layout"].1, br#"{"imageLayoutVersion":"1.0.0"}"#);
    assert_eq!(json(&files["oci-layout"].1)["imageLayoutVersion"], "1.0.0");

    // Every blob is named by the sha256 of its content; there are exactly three.
    let blobs: Vec<_> = files
        .keys()
        .filter(|k| k.starts_with("blobs/sha256/") && k.len() > 13)
        .collect();
    assert_eq!(blobs.len(), 3, "{blobs:?}");
    for name in &blobs {
        let hex = name.strip_prefix("blobs/sha256/").unwrap();
        assert_eq!(Digest::of(&files[*name].1).hex(), hex);
    }
    for (name, (header, _)) in &files {
        assert_eq!(header.mtime().unwrap(), 0, "{name}");
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0), "{name}");
    }

    let index = json(&files["index.json"].1);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let descriptor = &manifests[0];
    assert_eq!(descriptor["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(descriptor["annotations"]["org.opencontainers.image.ref.name"], tag);

    let manifest = json(blob(&files, descriptor));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    // The media type Istio's agent reads from an OCI manifest (compat variant).
    assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");

    let layer_gz = blob(&files, &layers[0]);
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(layer_gz)
        .read_to_end(&mut layer_tar)
        .unwrap();
    let config = json(blob(&files, &manifest["config"]));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"][0], Digest::of(&layer_tar).to_string());

    // The layer holds exactly plugin.wasm: a regular file, 0644, uid/gid 0, mtime 0.
    let layer = entries(&layer_tar);
    assert_eq!(layer.keys().collect::<Vec<_>>(), ["plugin.wasm"]);
    let (header, module) = &layer["plugin.wasm"];
    assert_eq!(header.entry_type(), tar::EntryType::Regular);
    assert_eq!(header.mode().unwrap(), 0o644);
    assert_eq!(
        (header.uid().unwrap(), header.gid().unwrap(), header.mtime().unwrap()),
        (0, 0, 0)
    );

    let manifest_digest = descriptor["digest"].as_str().unwrap().to_string();
    (manifest_digest, module.clone())
}

#[test]
fn layout_is_valid_and_holds_the_module() {
    let m = module();
    let image = oci::build(&WasmModule::from_bytes(m.clone()).unwrap(), "v1.2.3").unwrap();
    let (manifest_digest, inside) = check_layout(&image.archive, "v1.2.3");
    assert_eq!(inside, m);
    assert_eq!(image.manifest_digest.to_string(), manifest_digest);
    assert_eq!(image.module_digest, Digest::of(&m));
    assert_eq!(image.manifest_digest.hex().len(), 64);
    assert_ne!(image.manifest_digest, image.module_digest);
}

#[test]
fn output_is_reproducible() {
    let build = |tag| {
        oci::build(&WasmModule::from_bytes(module()).unwrap(), tag)
            .unwrap()
            .archive
    };
    assert_eq!(build("latest"), build("latest"));
    // The tag lives in index.json only: the manifest digest does not depend on it.
    let a = oci::build(&WasmModule::from_bytes(module()).unwrap(), "a").unwrap();
    let b = oci::build(&WasmModule::from_bytes(module()).unwrap(), "b").unwrap();
    assert_eq!(a.manifest_digest, b.manifest_digest);
    let mut other = module();
    other.push(1);
    let c = oci::build(&WasmModule::from_bytes(other).unwrap(), "a").unwrap();
    assert_ne!(a.manifest_digest, c.manifest_digest);
}

#[test]
fn non_wasm_input_is_refused_naming_the_file() {
    let d = temp("bad");
    let path = d.join("not-a-module.wasm");
    std::fs::write(&path, b"\x7fELF\x02\x01\x01\0rest").unwrap();
    let err = oci::write(&path, &d.join("out.tar"), "latest").unwrap_err();
    assert!(matches!(err, OciError::NotWasm { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("not-a-module.wasm"), "{message}");
    assert!(message.contains("7f 45 4c 46"), "{message}");
    assert!(!d.join("out.tar").exists());

    std::fs::write(&path, b"").unwrap();
    let message = oci::write(&path, &d.join("out.tar"), "latest").unwrap_err().to_string();
    assert!(
        message.contains("not-a-module.wasm") && message.contains("empty"),
        "{message}"
    );

    let missing = d.join("missing.wasm");
    let err = oci::write(&missing, &d.join("out.tar"), "latest").unwrap_err();
    assert!(matches!(err, OciError::Read { .. }) && err.to_string().contains("missing.wasm"));
}

#[test]
fn tags_are_checked() {
    for good in ["latest", "v1.2.3", "1.0", "a_b", "a--b", "sha-0123abcd"] {
        oci::check_tag(good).unwrap();
    }
    for bad in ["", "-x", "x.", "a..b", "a---b", "a/b", "a:b", "é", &"a".repeat(129)] {
        let err = oci::check_tag(bad).unwrap_err();
        assert!(matches!(err, OciError::InvalidTag { .. }), "{bad:?}: {err:?}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn the_binary_writes_the_image_and_prints_the_digests() {
    let d = temp("cli");
    let wasm = d.join("meshward_filter.wasm");
    std::fs::write(&wasm, module()).unwrap();
    let run = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_meshward-control"))
            .args(["oci-image", "--wasm"])
            .arg(&wasm)
            .arg("--out")
            .arg(d.join(out))
            .output()
            .unwrap()
    };
    let first = run("one.tar");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = run("two.tar");
    assert!(second.status.success());
    let one = std::fs::read(d.join("one.tar")).unwrap();
    assert_eq!(
        one,
        std::fs::read(d.join("two.tar")).unwrap(),
        "two runs, identical bytes"
    );

    let (manifest_digest, inside) = check_layout(&one, "latest");
    assert_eq!(inside, module());
    let stdout = String::from_utf8(first.stdout).unwrap();
    let hex = manifest_digest.strip_prefix("sha256:").unwrap();
    assert!(
        stdout.contains(&format!("manifest digest: {manifest_digest}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "WasmPlugin sha256 for oci:// URLs (the manifest digest): {hex}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&Digest::of(&module()).hex()), "{stdout}");

    let bad = d.join("bad.wasm");
    std::fs::write(&bad, b"not wasm at all").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshward-control"))
        .args(["oci-image", "--wasm"])
        .arg(&bad)
        .arg("--out")
        .arg(d.join("bad.tar"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.wasm") && stderr.contains("not a WebAssembly module"),
        "{stderr}"
    );
}

/// A program on PATH, or `None` with a note (the test is then skipped;
/// `make setup` installs both programs this needs).
fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIPPED: {name} is not installed (run `make setup`)");
    }
    found
}

/// A free port on 127.0.0.1 (bound, then released for the registry).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The CNCF distribution registry (`docker-registry`), on loopback, killed
/// when dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
}

impl Registry {
    fn start(binary: &std::path::Path, dir: &std::path::Path) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {addr}}}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let registry = Self { child, addr };
        // Ready when /v2/ answers (bounded: 10 s).
        for _ in 0..100 {
            if registry.get("/v2/", "*/*").is_some() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "the registry did not start: {}",
            std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
        );
    }

    /// `GET path` over plain HTTP/1.0: (headers, body) of a 200, else `None`.
    fn get(&self, path: &str, accept: &str) -> Option<(String, Vec<u8>)> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&self.addr).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: {accept}\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).ok()?;
        let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        head.starts_with("HTTP/1.0 200")
            .then(|| (head, response[split + 4..].to_vec()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_documented_push_keeps_the_printed_digest_in_a_real_registry() {
    // docs/install.md: `skopeo copy --preserve-digests oci-archive:... docker://...`
    let (Some(registry), Some(skopeo)) = (program("docker-registry"), program("skopeo")) else {
        return;
    };
    let d = temp("push");
    let registry = Registry::start(&registry, &d);
    let image = oci::build(&WasmModule::from_bytes(module()).unwrap(), "0.1.0").unwrap();
    std::fs::write(d.join("filter.tar"), &image.archive).unwrap();
    let out = Command::new(skopeo)
        .args([
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci-archive:{}:0.1.0", d.join("filter.tar").display()))
        .arg(format!("docker://{}/meshward/filter:0.1.0", registry.addr))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // What istio-agent resolves the tag to is the digest oci-image printed:
    // the WasmPlugin's sha256 for this oci:// URL.
    let (head, manifest) = registry
        .get(
            "/v2/meshward/filter/manifests/0.1.0",
            "application/vnd.oci.image.manifest.v1+json",
        )
        .expect("the tag resolves");
    let digest = head
        .lines()
        .find_map(|l| l.strip_prefix("Docker-Content-Digest: "))
        .expect("Docker-Content-Digest");
    assert_eq!(digest, image.manifest_digest.to_string());
    assert_eq!(
        Digest::of(&manifest),
        image.manifest_digest,
        "the manifest bytes were kept"
    );
    // The layer the registry serves holds the module, as istio-agent reads it.
    let manifest = json(&manifest);
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let (_, blob) = registry
        .get(
            &format!("/v2/meshward/filter/blobs/{}", layer["digest"].as_str().unwrap()),
            "*/*",
        )
        .expect("the layer");
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&blob[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let entries = entries(&tar_bytes);
    assert_eq!(entries["plugin.wasm"].1, module());
}
