//! Packaging the filter module as an OCI image that Istio's agent pulls from
//! an `oci://` URL, written as an [OCI image layout] in a tar archive, with
//! no Docker daemon and no registry client.
//!
//! # The format, and why
//!
//! Istio's agent (`pkg/wasm/imagefetcher.go` in istio/istio) accepts three
//! shapes of image, following the Wasm image specification
//! (solo-io/wasm `spec/spec-compat.md` and `spec/spec.md`):
//!
//! * the *compat* variant with a Docker manifest: the last layer is an
//!   `application/vnd.docker.image.rootfs.diff.tar.gzip` holding `plugin.wasm`;
//! * the *compat* variant with an OCI manifest: the last layer is an
//!   `application/vnd.oci.image.layer.v1.tar+gzip` holding `plugin.wasm`
//!   (any directory: the agent compares the base name);
//! * the *oci* variant: exactly two layers, one of them the raw module as
//!   `application/vnd.module.wasm.content.layer.v1+wasm`.
//!
//! This module writes the second: a plain OCI image with one gzip layer
//! holding `plugin.wasm`. Every registry and every standard tool (`skopeo`,
//! `crane`, `oras`, `docker pull`) handles it, where custom layer media types
//! are still refused by some registries. The layer must be *gzip*: the agent
//! opens it with a gzip reader, and refuses an uncompressed
//! `application/vnd.oci.image.layer.v1.tar` layer.
//!
//! The image config is a standard `application/vnd.oci.image.config.v1+json`
//! (`linux`/`amd64`, what `docker build` of a `FROM scratch` image gives on
//! a build machine; the agent does not read it, and the module is the same
//! on every platform), its `rootfs.diff_ids` the digest of the uncompressed
//! layer, so tools that check the config accept the image.
//!
//! # Which sha256 the WasmPlugin carries
//!
//! For an `oci://` URL the agent compares `WasmPlugin.spec.sha256` with the
//! **digest of the image manifest** (hex, without `sha256:`), before it
//! downloads any layer (`pkg/wasm/cache.go`: `PrepareFetch` returns
//! `img.Digest().Hex`, and a mismatch is a `checksumMismatch`). The sha256
//! of the module itself is what it compares for `http(s)://` URLs only.
//! [`Image`] carries both: [`Image::manifest_digest`] and
//! [`Image::module_digest`].
//!
//! # Reproducible
//!
//! The same module and tag give the same bytes: tar entries are sorted, with
//! mtime 0, uid/gid 0, no user or group names; gzip has no timestamp or file
//! name; the JSON documents have a fixed field order and no timestamps. So
//! the manifest digest identifies the module, and rebuilding the same module
//! does not change the WasmPlugin.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// The tag written when none is given.
pub const DEFAULT_TAG: &str = "latest";
/// The name of the module inside the layer, as Istio's agent looks for it.
pub const MODULE_FILE_NAME: &str = "plugin.wasm";
/// The media type of the layout's `index.json`.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of the image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The media type of the one layer: the one Istio's agent reads in an OCI
/// manifest (*compat* variant).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation of `index.json` that names the tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The content of the layout's `oci-layout` file.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// The first 8 bytes of a WebAssembly binary module: `\0asm`, version 1.
const WASM_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";
/// The largest entry a ustar header can describe (11 octal digits).
const TAR_MAX_SIZE: u64 = 0o777_7777_7777;
const TAR_BLOCK: usize = 512;

/// Why an image could not be written.
#[derive(Debug, Error)]
pub enum OciError {
    /// The module could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The module's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input is not a WebAssembly binary module.
    #[error("{}: {source}", path.display())]
    NotWasm {
        /// The input's path.
        path: PathBuf,
        /// What it starts with.
        source: NotWasm,
    },
    /// The tag is not a valid OCI reference name and image tag.
    #[error("tag {tag:?}: {reason}")]
    InvalidTag {
        /// The tag.
        tag: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A tar entry cannot be written (too large for a ustar header).
    #[error("tar entry {name}: {reason}")]
    Tar {
        /// The entry's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Compressing the layer failed.
    #[error("compressing the layer: {0}")]
    Compress(std::io::Error),
    /// A JSON document could not be encoded.
    #[error("encoding {what}: {source}")]
    Encode {
        /// `manifest`, `config` or `index.json`.
        what: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// The archive could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The archive's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Bytes that do not start like a WebAssembly binary module (`\0asm`,
/// version 1).
#[derive(Debug, Error)]
#[error("not a WebAssembly module: starts with {found}, expected 00 61 73 6d 01 00 00 00 (\\0asm, version 1)")]
pub struct NotWasm {
    /// The first bytes, in hex (or `an empty file`).
    pub found: String,
}

/// A sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The 64 lower-case hex digits, without the `sha256:` prefix (the form
    /// of `WasmPlugin.spec.sha256` and of blob file names).
    pub fn hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// `sha256:<hex>`, the form of OCI descriptors and `@`-references.
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A WebAssembly binary module: bytes checked to start with `\0asm`,
/// version 1 (what Envoy loads; Istio's agent checks the magic too).
#[derive(Debug, Clone)]
pub struct WasmModule {
    bytes: Vec<u8>,
}

impl WasmModule {
    /// Checks the header.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, NotWasm> {
        if bytes.starts_with(&WASM_HEADER) {
            return Ok(Self { bytes });
        }
        let found = if bytes.is_empty() {
            "an empty file".to_string()
        } else {
            bytes
                .iter()
                .take(WASM_HEADER.len())
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        Err(NotWasm { found })
    }

    /// The module's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// An image, ready to be written.
#[derive(Debug, Clone)]
pub struct Image {
    /// The OCI image layout as a tar archive.
    pub archive: Vec<u8>,
    /// The digest of the image manifest: the image's digest in a registry
    /// (`oci://<repository>@<digest>`), and, as hex, the value of
    /// `WasmPlugin.spec.sha256` for an `oci://` URL.
    pub manifest_digest: Digest,
    /// The sha256 of `plugin.wasm` itself: the value of
    /// `WasmPlugin.spec.sha256` for an `http(s)://` URL, not for `oci://`.
    pub module_digest: Digest,
    /// The tag in `index.json`.
    pub tag: String,
}

/// Checks a tag: it must be both a Docker tag (`[A-Za-z0-9_][A-Za-z0-9_.-]`,
/// at most 128 characters), which it becomes when pushed, and an OCI
/// `ref.name` (alphanumeric runs joined by one of `-._` or by `--`).
pub fn check_tag(tag: &str) -> Result<(), OciError> {
    let invalid = |reason| OciError::InvalidTag {
        tag: tag.to_string(),
        reason,
    };
    if tag.is_empty() {
        return Err(invalid("empty"));
    }
    if tag.len() > 128 {
        return Err(invalid("longer than 128 characters"));
    }
    if !tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(invalid("only letters, digits, '-', '.' and '_' are allowed"));
    }
    let separators: Vec<&str> = tag.split(|c: char| c.is_ascii_alphanumeric()).collect();
    let (first, last) = (separators.first(), separators.last());
    if first.is_some_and(|s| !s.is_empty()) || last.is_some_and(|s| !s.is_empty()) {
        return Err(invalid("must start and end with a letter or digit"));
    }
    if separators.iter().any(|s| s.len() > 1 && *s != "--") {
        return Err(invalid("separators are one of '-', '.', '_', or '--'"));
    }
    Ok(())
}

/// Builds the image layout of `module`, tagged `tag`.
pub fn build(module: &WasmModule, tag: &str) -> Result<Image, OciError> {
    check_tag(tag)?;
    let layer_tar = tar(&[Entry::file(MODULE_FILE_NAME, module.bytes())])?;
    let layer = gzip(&layer_tar)?;
    let config = encode(
        "config",
        &Config {
            architecture: "amd64",
            os: "linux",
            rootfs: RootFs {
                kind: "layers",
                diff_ids: vec![Digest::of(&layer_tar).to_string()],
            },
        },
    )?;
    let manifest = encode(
        "manifest",
        &Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE,
            config: Descriptor::of(CONFIG_MEDIA_TYPE, &config),
            layers: vec![Descriptor::of(LAYER_MEDIA_TYPE, &layer)],
        },
    )?;
    let manifest_digest = Digest::of(&manifest);
    let mut manifest_descriptor = Descriptor::of(MANIFEST_MEDIA_TYPE, &manifest);
    manifest_descriptor.annotations.insert(REF_NAME_ANNOTATION, tag);
    let index = encode(
        "index.json",
        &Index {
            schema_version: 2,
            media_type: INDEX_MEDIA_TYPE,
            manifests: vec![manifest_descriptor],
        },
    )?;

    let mut files: BTreeMap<String, &[u8]> = BTreeMap::new();
    for blob in [&layer, &config, &manifest] {
        files.insert(format!("blobs/sha256/{}", Digest::of(blob).hex()), blob);
    }
    files.insert("index.json".into(), &index);
    files.insert("oci-layout".into(), OCI_LAYOUT.as_bytes());
    let mut entries = vec![Entry::dir("blobs/"), Entry::dir("blobs/sha256/")];
    entries.extend(files.iter().map(|(name, data)| Entry::file(name, data)));
    entries.sort_by(|a, b| a.name.cmp(b.name));

    Ok(Image {
        archive: tar(&entries)?,
        manifest_digest,
        module_digest: Digest::of(module.bytes()),
        tag: tag.to_string(),
    })
}

/// Reads the module at `wasm`, builds its image tagged `tag`, and writes the
/// archive to `out`.
pub fn write(wasm: &Path, out: &Path, tag: &str) -> Result<Image, OciError> {
    let bytes = std::fs::read(wasm).map_err(|source| OciError::Read {
        path: wasm.to_path_buf(),
        source,
    })?;
    let module = WasmModule::from_bytes(bytes).map_err(|source| OciError::NotWasm {
        path: wasm.to_path_buf(),
        source,
    })?;
    let image = build(&module, tag)?;
    std::fs::write(out, &image.archive).map_err(|source| OciError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(image)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
}

impl<'a> Descriptor<'a> {
    fn of(media_type: &'a str, blob: &[u8]) -> Self {
        Self {
            media_type,
            digest: Digest::of(blob).to_string(),
            size: blob.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
struct Config<'a> {
    architecture: &'a str,
    os: &'a str,
    rootfs: RootFs<'a>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: Vec<String>,
}

fn encode(what: &'static str, value: &impl Serialize) -> Result<Vec<u8>, OciError> {
    serde_json::to_vec(value).map_err(|source| OciError::Encode { what, source })
}

/// gzip with no timestamp, no file name and a fixed OS byte.
fn gzip(data: &[u8]) -> Result<Vec<u8>, OciError> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).map_err(OciError::Compress)?;
    encoder.finish().map_err(OciError::Compress)
}

/// One tar entry: a regular file or a directory.
struct Entry<'a> {
    name: &'a str,
    data: &'a [u8],
    dir: bool,
}

impl<'a> Entry<'a> {
    fn file(name: &'a str, data: &'a [u8]) -> Self {
        Self { name, data, dir: false }
    }

    fn dir(name: &'a str) -> Self {
        Self {
            name,
            data: &[],
            dir: true,
        }
    }
}

/// A ustar archive of `entries`, in the given order: mode 0644 (files) or
/// 0755 (directories), uid/gid 0, mtime 0, no user or group names.
fn tar(entries: &[Entry<'_>]) -> Result<Vec<u8>, OciError> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend_from_slice(&tar_header(entry)?);
        out.extend_from_slice(entry.data);
        let padding = (TAR_BLOCK - entry.data.len() % TAR_BLOCK) % TAR_BLOCK;
        out.resize(out.len() + padding, 0);
    }
    // The end of the archive: two zero blocks.
    out.resize(out.len() + 2 * TAR_BLOCK, 0);
    Ok(out)
}

fn tar_header(entry: &Entry<'_>) -> Result<[u8; TAR_BLOCK], OciError> {
    let error = |reason: String| OciError::Tar {
        name: entry.name.to_string(),
        reason,
    };
    if entry.name.len() > 100 {
        return Err(error("name longer than 100 bytes".into()));
    }
    let size = entry.data.len() as u64;
    if size > TAR_MAX_SIZE {
        return Err(error(format!("{size} bytes, over the ustar limit of 8 GiB")));
    }
    let mut h = [0u8; TAR_BLOCK];
    put(&mut h, 0, entry.name.as_bytes());
    put(&mut h, 100, if entry.dir { b"0000755\0" } else { b"0000644\0" });
    put(&mut h, 108, b"0000000\0"); // uid
    put(&mut h, 116, b"0000000\0"); // gid
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, b"00000000000\0"); // mtime
    put(&mut h, 148, b"        "); // checksum, as spaces while summing
    put(&mut h, 156, if entry.dir { b"5" } else { b"0" });
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    put(&mut h, 329, b"0000000\0"); // devmajor
    put(&mut h, 337, b"0000000\0"); // devminor
    let checksum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{checksum:06o}\0 ").as_bytes());
    Ok(h)
}

/// Copies `bytes` into `header` at `offset` (callers pass fields that fit).
fn put(header: &mut [u8; TAR_BLOCK], offset: usize, bytes: &[u8]) {
    for (dst, src) in header.iter_mut().skip(offset).zip(bytes) {
        *dst = *src;
    }
}
