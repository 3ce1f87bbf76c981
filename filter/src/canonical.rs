//! Canonical forms of the request attributes the engine judges.
//!
//! What the engine judges must be exactly what the upstream receives, so every
//! request attribute with more than one spelling is brought to one canonical
//! form first. For each ambiguous input the engine either **rewrites** it (and
//! the filter forwards the rewritten form) or **rejects** the request with a
//! [`RequestError`] (the filter answers 400). Nothing ambiguous is judged as is.
//!
//! # The canonical path
//!
//! | input | action | example | guards against |
//! |---|---|---|---|
//! | not starting with `/` (absolute or asterisk form) | reject | `http://x/a`, `*` | rules written for origin-form paths |
//! | fragment `#` | reject | `/public#/../admin` | CVE-2021-39156 |
//! | query `?...` | split off, not judged, forwarded unchanged | `/a?b=c` → `/a` | query confused with path |
//! | `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) | decode, exactly once | `/%61dmin` → `/admin` | CVE-2019-9901 class |
//! | `%2F`, `%5C` (encoded `/` and `\`) | reject | `/a%2F..%2Fadmin` | CVE-2021-31920, CVE-2021-29492 |
//! | `%25` followed by two hex digits (double encoding) | reject | `/%252e%252e/admin` | double-decoding upstreams |
//! | other `%XX` | kept encoded, hex upper-cased | `/caf%c3%a9` → `/caf%C3%A9` | case-variant escapes |
//! | malformed `%` escape | reject | `/a%zz`, `/a%4` | parser differentials |
//! | `%00`–`%1F`, `%7F`, raw control bytes, space, raw non-ASCII | reject | `/admin%00.png` | NUL truncation |
//! | raw `\` | reject | `/public\..\admin` | upstreams that treat `\` as `/` |
//! | `;` path parameters | reject | `/public/..;/admin` | Tomcat/Spring `..;/` normalization bypasses |
//! | repeated slashes | merged | `//admin` → `/admin` | CVE-2021-29492 class |
//! | `.` and `..` segments (also `%2E`) | removed as RFC 3986 §5.2.4, never above `/` | `/a/../admin` → `/admin` | CVE-2019-9901 |
//!
//! The result contains only ASCII, has no empty, `.` or `..` segment, no
//! escape of an unreserved character and only upper-case escapes: applying the
//! procedure again yields the same path.
//!
//! # Methods, hosts and identities
//!
//! * Methods are case-sensitive tokens (RFC 9110 §9.1): `get` is not `GET`.
//!   A method that is not a token is rejected.
//! * The authority is judged case-insensitively (CVE-2021-39155): it is
//!   lower-cased, a single
//!   trailing dot is removed (`Example.COM.:80` → `example.com`, port 80), the
//!   port is parsed as a decimal number in 1–65535. An IPv6 literal is
//!   written in its RFC 5952 form (`[0:0::1]` → `[::1]`). Userinfo, empty
//!   labels, invalid IPv6 literals, percent escapes, control characters and
//!   non-ASCII are rejected.
//! * A principal is the SPIFFE id without `spiffe://` (Istio's form); its
//!   namespace is taken only from the exact shape `<td>/ns/<ns>/sa/<sa>`.

use std::borrow::Cow;

use thiserror::Error;

/// Why a request cannot be judged: it is malformed or ambiguous.
///
/// Each variant names the request attribute it is about; the filter answers
/// such requests with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The `:path` header is missing or empty.
    #[error("path: missing")]
    MissingPath,
    /// The path does not start with `/` (absolute-form or asterisk-form target).
    #[error("path: must start with '/'")]
    NotOriginForm,
    /// The path carries a fragment (`#`), which clients must never send.
    #[error("path: fragment ('#') is not allowed")]
    Fragment,
    /// A `%` is not followed by two hexadecimal digits.
    #[error("path: malformed percent-encoding")]
    BadPercentEncoding,
    /// `%2F` or `%5C`: an encoded slash or backslash.
    #[error("path: encoded '/' or '\\' (%2F, %5C) is not allowed")]
    EncodedSlash,
    /// `%25` followed by two hex digits: a double-encoded escape.
    #[error("path: double percent-encoding (%25XX) is not allowed")]
    DoubleEncoding,
    /// A raw backslash, which some upstreams treat as `/`.
    #[error("path: '\\' is not allowed")]
    Backslash,
    /// A `;` path parameter, which some upstreams strip before routing.
    #[error("path: ';' path parameters are not allowed")]
    PathParameter,
    /// A NUL or other control character, raw or encoded, or a raw space.
    #[error("path: control character or space")]
    ControlCharacter,
    /// A raw byte outside ASCII (it must be percent-encoded).
    #[error("path: raw non-ASCII byte (must be percent-encoded)")]
    NonAscii,
    /// The method is empty or not an RFC 9110 token.
    #[error("method: not a valid token")]
    InvalidMethod,
    /// The authority is not a valid `host[:port]`.
    #[error("authority: invalid host")]
    InvalidHost,
    /// The authority's port is not a decimal number in 1–65535.
    #[error("authority: invalid port")]
    InvalidPort,
    /// A header the configuration's conditions could read is not UTF-8
    /// (obs-text bytes): it can be compared with no pattern soundly.
    #[error("header: value is not UTF-8")]
    HeaderNotUtf8,
    /// The configuration reads the verified JWT's claims and the proxy's
    /// metadata holding them could not be decoded: no rule can be judged
    /// soundly ([`crate::auth::Claims::from_metadata`]).
    #[error("auth: jwt_authn metadata could not be decoded")]
    AuthMetadata,
}

/// A request path in canonical form, split from its query string.
///
/// Borrows the received path when it was already canonical, so the common case
/// allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath<'a> {
    path: Cow<'a, str>,
    query: Option<&'a str>,
}

impl<'a> CanonicalPath<'a> {
    /// The canonical path, without the query string. This is what rules match.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query string after `?`, unchanged; `None` when the target had no `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// Whether canonicalization changed the path, i.e. the filter must forward
    /// [`CanonicalPath::to_request_target`] instead of the received `:path`.
    pub fn is_rewritten(&self) -> bool {
        matches!(self.path, Cow::Owned(_))
    }

    /// The `:path` to forward upstream: the canonical path and the query.
    pub fn to_request_target(&self) -> String {
        match self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.to_string(),
        }
    }
}

/// Canonicalizes a request target (`:path`) as described in the
/// [module documentation](self).
pub fn canonicalize_path(target: &str) -> Result<CanonicalPath<'_>, RequestError> {
    let bytes = target.as_bytes();
    match bytes.first() {
        None => return Err(RequestError::MissingPath),
        Some(b'/') => {}
        Some(_) => return Err(RequestError::NotOriginForm),
    }
    // One pass over the path: reject what is never allowed, find the query,
    // and note whether anything needs rewriting.
    let mut canonical = true;
    let mut segment_start = 1;
    let mut path_end = bytes.len();
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        match b {
            b'/' => {
                canonical &= is_plain_segment(bytes.get(segment_start..i).unwrap_or_default());
                segment_start = i + 1;
            }
            b'?' => {
                path_end = i;
                break;
            }
            b'%' => canonical = false,
            b'#' => return Err(RequestError::Fragment),
            b'\\' => return Err(RequestError::Backslash),
            b';' => return Err(RequestError::PathParameter),
            0..=0x20 | 0x7f => return Err(RequestError::ControlCharacter),
            0x80..=0xff => return Err(RequestError::NonAscii),
            _ => {}
        }
    }
    // The last segment may be empty (a trailing slash), but not a dot segment.
    let last = bytes.get(segment_start..path_end).unwrap_or_default();
    canonical &= last != b"." && last != b"..";
    let (path, query) = match target.get(path_end..) {
        Some(q) if !q.is_empty() => {
            let q = q.get(1..).unwrap_or_default();
            for &b in q.as_bytes() {
                match b {
                    b'#' => return Err(RequestError::Fragment),
                    // The query is not judged, but control characters never pass.
                    0..=0x1f | 0x7f => return Err(RequestError::ControlCharacter),
                    _ => {}
                }
            }
            (target.get(..path_end).unwrap_or_default(), Some(q))
        }
        _ => (target, None),
    };
    if canonical {
        return Ok(CanonicalPath {
            path: Cow::Borrowed(path),
            query,
        });
    }
    let canonical = remove_dot_segments(&decode_unreserved(path)?);
    // Escapes that stay as they were ("/100%25") are not a rewrite.
    let path = if canonical == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(canonical)
    };
    Ok(CanonicalPath { path, query })
}

/// A segment between two slashes that canonicalization keeps as is: not
/// empty (a repeated slash), not `.` and not `..`.
fn is_plain_segment(seg: &[u8]) -> bool {
    !(seg.is_empty() || seg == b"." || seg == b"..")
}

/// RFC 3986 unreserved: decoded wherever it occurs escaped.
pub(crate) const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(at)?)?;
    let lo = hex_value(*bytes.get(at + 1)?)?;
    Some(hi << 4 | lo)
}

/// The upper-case hex digit of a nibble (`v` < 16).
fn hex_digit(v: u8) -> char {
    char::from(if v < 10 { b'0' + v } else { b'A' + (v - 10) })
}

/// Decodes escapes of unreserved characters, upper-cases the others and
/// rejects the forbidden ones. The caller has already rejected raw `\`, `;`,
/// control and non-ASCII bytes.
pub(crate) fn decode_unreserved(path: &str) -> Result<String, RequestError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let v = hex_pair(bytes, i + 1).ok_or(RequestError::BadPercentEncoding)?;
        match v {
            b'/' | b'\\' => return Err(RequestError::EncodedSlash),
            0..=0x1f | 0x7f => return Err(RequestError::ControlCharacter),
            v if is_unreserved(v) => out.push(char::from(v)),
            v => {
                out.push('%');
                out.push(hex_digit(v >> 4));
                out.push(hex_digit(v & 0xf));
            }
        }
        i += 3;
    }
    // Checked on the decoded result: "%25%32%65" decodes to "%252e", which a
    // double-decoding upstream would turn into ".".
    let decoded = out.as_bytes();
    let double = decoded
        .windows(3)
        .enumerate()
        .any(|(at, w)| w == b"%25" && hex_pair(decoded, at + 3).is_some());
    if double {
        return Err(RequestError::DoubleEncoding);
    }
    Ok(out)
}

/// Merges repeated slashes and removes `.` and `..` segments; `..` never
/// climbs above the root. A trailing slash (or trailing dot segment) leaves
/// the path ending in `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match seg {
            "" | "." => trailing_slash = last,
            ".." => {
                stack.pop();
                trailing_slash = last;
            }
            s => {
                stack.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &stack {
        out.push('/');
        out.push_str(seg);
    }
    if stack.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// Checks that a method is an RFC 9110 token. Methods are case-sensitive and
/// are not rewritten.
pub fn validate_method(method: &str) -> Result<&str, RequestError> {
    if !method.is_empty() && method.bytes().all(is_tchar) {
        Ok(method)
    } else {
        Err(RequestError::InvalidMethod)
    }
}

/// RFC 9110 `tchar`.
pub(crate) const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// A request authority in canonical form: lower-case host without a trailing
/// dot, and the port if the authority named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority<'a> {
    host: Cow<'a, str>,
    port: Option<u16>,
}

impl Authority<'_> {
    /// The lower-case host name (or bracketed IPv6 literal) without trailing dot.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port the authority named, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// Canonicalizes an `:authority` / `Host` value as described in the
/// [module documentation](self).
pub fn canonicalize_authority(authority: &str) -> Result<Authority<'_>, RequestError> {
    if authority.starts_with('[') {
        let (host, port) = split_host_port(authority)?;
        let port = port.map(parse_port).transpose()?;
        return Ok(Authority {
            host: canonical_ipv6(host)?,
            port,
        });
    }
    // A DNS name or IPv4 address, in one pass: labels of `A-Z a-z 0-9 - _`
    // separated by single dots, optionally one trailing dot, then `:port`.
    let bytes = authority.as_bytes();
    let mut label_len = 0usize;
    let mut upper = false;
    let mut host_end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        match host_byte(b) {
            HostByte::Label => label_len += 1,
            HostByte::Upper => {
                label_len += 1;
                upper = true;
            }
            HostByte::Dot if label_len > 0 => label_len = 0,
            HostByte::Colon => {
                host_end = i;
                break;
            }
            HostByte::Dot | HostByte::Invalid => return Err(RequestError::InvalidHost),
        }
    }
    let with_dot = authority.get(..host_end).unwrap_or_default();
    let host = with_dot.strip_suffix('.').unwrap_or(with_dot);
    // Empty host, or an empty last label ("a..", ".").
    if host.is_empty() || (label_len == 0 && host.len() == with_dot.len()) || host.ends_with('.') {
        return Err(RequestError::InvalidHost);
    }
    let port = match authority.get(host_end..) {
        Some(p) if !p.is_empty() => Some(parse_port(p.get(1..).unwrap_or_default())?),
        _ => None,
    };
    let host = if upper {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Ok(Authority { host, port })
}

/// What a byte is in a DNS name or IPv4 address of an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostByte {
    /// `a-z 0-9 - _`.
    Label,
    /// `A-Z`: allowed, lower-cased.
    Upper,
    Dot,
    /// Ends the host; the port follows.
    Colon,
    Invalid,
}

/// [`HostByte`] by byte value: one load per byte where a chain of range
/// comparisons took several (every request's authority goes through it).
// Evaluated at compile time: an index out of bounds would fail the build.
#[allow(clippy::indexing_slicing)]
const HOST_BYTES: [HostByte; 256] = {
    let mut table = [HostByte::Invalid; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => HostByte::Label,
            b'A'..=b'Z' => HostByte::Upper,
            b'.' => HostByte::Dot,
            b':' => HostByte::Colon,
            _ => HostByte::Invalid,
        };
        b += 1;
    }
    table
};

fn host_byte(b: u8) -> HostByte {
    // The table has an entry for every `u8`.
    HOST_BYTES.get(usize::from(b)).copied().unwrap_or(HostByte::Invalid)
}

/// Splits `host[:port]`, with IPv6 literals in brackets.
pub(crate) fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), RequestError> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(RequestError::InvalidHost)?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(RequestError::InvalidHost),
        };
    }
    match authority.split_once(':') {
        Some((_, port)) if port.contains(':') => Err(RequestError::InvalidHost),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

/// Parses a decimal port in 1–65535 (no sign, no leading `+`, at most 5 digits).
pub(crate) fn parse_port(port: &str) -> Result<u16, RequestError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::InvalidPort);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(RequestError::InvalidPort),
        Ok(p) => Ok(p),
    }
}

/// Checks a bracketed IPv6 literal (`[::1]`) and writes it in its one
/// canonical text form (RFC 5952: lower case, no leading zeros, the longest
/// run of zero groups compressed), so that `[0::1]` cannot pass a host
/// pattern `[::1]` refuses. DNS names and IPv4 addresses are checked by
/// [`canonicalize_authority`] itself.
fn canonical_ipv6(host: &str) -> Result<Cow<'_, str>, RequestError> {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .ok_or(RequestError::InvalidHost)?;
    // The parser also refuses zone ids (`%25eth0`), which no host pattern names.
    let address: std::net::Ipv6Addr = inner.parse().map_err(|_| RequestError::InvalidHost)?;
    let canonical = format!("[{address}]");
    if canonical == host {
        Ok(Cow::Borrowed(host))
    } else {
        Ok(Cow::Owned(canonical))
    }
}

/// Returns the principal (Istio form) of a URI SAN: the SPIFFE id without its
/// `spiffe://` scheme. Any other URI is not an identity.
pub fn principal_from_uri_san(uri: &str) -> Option<&str> {
    let p = uri.strip_prefix("spiffe://")?;
    (!p.is_empty()).then_some(p)
}

/// The namespace of a principal of the exact shape `<td>/ns/<ns>/sa/<sa>`.
pub fn namespace_of(principal: &str) -> Option<&str> {
    // "<td>/ns/<ns>/sa/<sa>": exactly four slashes, no empty part.
    let b = principal.as_bytes();
    let mut slashes = [0usize; 4];
    let mut n = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'/' {
            *slashes.get_mut(n)? = i;
            n += 1;
        }
    }
    let [a, b2, c, d] = slashes;
    let well_formed = n == 4
        && a > 0
        && principal.get(a..b2 + 1) == Some("/ns/")
        && c > b2 + 1
        && principal.get(c..d + 1) == Some("/sa/")
        && d + 1 < b.len();
    if well_formed {
        principal.get(b2 + 1..c)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn canon(p: &str) -> Result<String, RequestError> {
        canonicalize_path(p).map(|c| c.path().to_string())
    }

    #[test]
    fn already_canonical_paths_are_borrowed() {
        for p in ["/", "/a", "/a/", "/a/b.c", "/a/...", "/a.b/c~d_e-f"] {
            let c = canonicalize_path(p).unwrap();
            assert_eq!(c.path(), p);
            assert!(!c.is_rewritten(), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_slashes() {
        assert_eq!(canon("/a/../admin").unwrap(), "/admin");
        assert_eq!(canon("/../../admin").unwrap(), "/admin");
        assert_eq!(canon("/a/./b").unwrap(), "/a/b");
        assert_eq!(canon("/a/b/..").unwrap(), "/a/");
        assert_eq!(canon("/a/.").unwrap(), "/a/");
        assert_eq!(canon("//admin").unwrap(), "/admin");
        assert_eq!(canon("/a//b///").unwrap(), "/a/b/");
        assert_eq!(canon("/..").unwrap(), "/");
        assert_eq!(canon("/%2e%2E/admin").unwrap(), "/admin");
        assert_eq!(canon("/a/.%2e/admin").unwrap(), "/admin");
    }

    #[test]
    fn escapes() {
        assert_eq!(canon("/%61dmin").unwrap(), "/admin");
        assert_eq!(canon("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(canon("/a%20b").unwrap(), "/a%20b");
        assert_eq!(canon("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(canon("/100%25").unwrap(), "/100%25");
        assert_eq!(canon("/a%2F..%2Fadmin"), Err(RequestError::EncodedSlash));
        assert_eq!(canon("/a%5c"), Err(RequestError::EncodedSlash));
        assert_eq!(canon("/%252e%252e/admin"), Err(RequestError::DoubleEncoding));
        assert_eq!(canon("/a%zz"), Err(RequestError::BadPercentEncoding));
        assert_eq!(canon("/a%4"), Err(RequestError::BadPercentEncoding));
        assert_eq!(canon("/admin%00.png"), Err(RequestError::ControlCharacter));
    }

    #[test]
    fn rejected_raw_bytes() {
        assert_eq!(canon("/public\\..\\admin"), Err(RequestError::Backslash));
        assert_eq!(canon("/public/..;/admin"), Err(RequestError::PathParameter));
        assert_eq!(canon("/a\0"), Err(RequestError::ControlCharacter));
        assert_eq!(canon("/a b"), Err(RequestError::ControlCharacter));
        assert_eq!(canon("/caf\u{e9}"), Err(RequestError::NonAscii));
        assert_eq!(canon("/public#/../admin"), Err(RequestError::Fragment));
        assert_eq!(canon("/a?x#y"), Err(RequestError::Fragment));
        assert_eq!(canon("http://x/admin"), Err(RequestError::NotOriginForm));
        assert_eq!(canon("*"), Err(RequestError::NotOriginForm));
        assert_eq!(canon(""), Err(RequestError::MissingPath));
    }

    #[test]
    fn query_is_split_and_kept() {
        let c = canonicalize_path("/a/../b?x=/../admin&y=%2F").unwrap();
        assert_eq!(c.path(), "/b");
        assert_eq!(c.query(), Some("x=/../admin&y=%2F"));
        assert_eq!(c.to_request_target(), "/b?x=/../admin&y=%2F");
        assert!(canonicalize_path("/a?\x01").is_err());
    }

    #[test]
    fn authority() {
        let a = canonicalize_authority("Reviews.Bookinfo.:9080").unwrap();
        assert_eq!((a.host(), a.port()), ("reviews.bookinfo", Some(9080)));
        let a = canonicalize_authority("[::1]:8080").unwrap();
        assert_eq!((a.host(), a.port()), ("[::1]", Some(8080)));
        // One spelling per IPv6 address (found by the `canonical` fuzz target:
        // any run of hex digits, dots and colons passed as an address).
        let a = canonicalize_authority("[0:0::0001]").unwrap();
        assert_eq!(a.host(), "[::1]");
        let a = canonicalize_authority("[2001:DB8::A]:80").unwrap();
        assert_eq!((a.host(), a.port()), ("[2001:db8::a]", Some(80)));
        let a = canonicalize_authority("reviews").unwrap();
        assert_eq!((a.host(), a.port()), ("reviews", None));
        for bad in [
            "",
            "a..b",
            ".a",
            "a@b",
            "a b",
            "a%41",
            "a:b:c",
            "[::1",
            "[AAAAAAAAAAA...............AAAAAAAAAAAAAAAA:]:880",
            "[1:2:3:4:5:6:7:8:9]",
            "[::1%25eth0]",
            "[]",
            "\u{e9}.com",
            "a/b",
            ".",
        ] {
            assert!(canonicalize_authority(bad).is_err(), "{bad:?}");
        }
        for bad in ["a:", "a:0", "a:65536", "a:+1", "a:123456", "a:1x"] {
            assert_eq!(canonicalize_authority(bad), Err(RequestError::InvalidPort), "{bad:?}");
        }
    }

    #[test]
    fn principals_and_namespaces() {
        assert_eq!(
            principal_from_uri_san("spiffe://cluster.local/ns/a/sa/b"),
            Some("cluster.local/ns/a/sa/b")
        );
        assert_eq!(principal_from_uri_san("https://cluster.local/ns/a/sa/b"), None);
        assert_eq!(principal_from_uri_san("spiffe://"), None);
        assert_eq!(namespace_of("cluster.local/ns/a/sa/b"), Some("a"));
        assert_eq!(namespace_of("cluster.local/ns/a/sa/b/extra"), None);
        assert_eq!(namespace_of("cluster.local/ns//sa/b"), None);
        assert_eq!(namespace_of("cluster.local/nsx/a/sa/b"), None);
        assert_eq!(namespace_of("weird"), None);
    }

    #[test]
    fn methods() {
        assert!(validate_method("GET").is_ok());
        assert!(validate_method("get").is_ok());
        assert!(validate_method("M-SEARCH").is_ok());
        assert!(validate_method("").is_err());
        assert!(validate_method("GET /").is_err());
        assert!(validate_method("G\0T").is_err());
    }
}
