//! The canonical forms of `filter/src/canonical.rs`: no input panics, and
//! every accepted input has the shape the module documentation (and
//! docs/security.md#canonicalization) promises.
//!
//! Each input is tried as a request target, an authority, a method and a
//! principal. For a target that is accepted, the canonical path:
//!
//! * starts with `/`, is ASCII, holds no control byte, space, `\`, `;`, `#`
//!   or `?`;
//! * has no empty segment but a trailing one, no `.` or `..` segment;
//! * has only escapes of two upper-case hex digits, none of an unreserved
//!   character, `/`, `\` or a control character, and no `%25XX`;
//! * is a fixed point: canonicalizing it again gives it back, unrewritten;
//! * names what the input names: an upstream that decodes every escape once,
//!   merges slashes and resolves dot segments sees the same path in both;
//!
//! and the query is the input's, after the first `?`, unchanged. A target
//! holding what the table says is rejected (`%2F`, raw `\`, `#`, ...) is
//! rejected. An accepted authority is lower-case, without trailing dot, names
//! the input's host (an IPv6 literal: the same address, in RFC 5952 form)
//! and is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_filter::canonical::{
    canonicalize_authority, canonicalize_path, namespace_of, principal_from_uri_san, validate_method,
};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    check_path(&input);
    check_authority(&input);
    check_method(&input);
    check_principal(&input);
});

const UNRESERVED: &[u8] = b"-._~";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || UNRESERVED.contains(&b)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The path an upstream sees that decodes every escape once, merges
/// slashes and resolves dot segments: its segments, and whether it ends in
/// `/`.
fn upstream_view(path: &str) -> (Vec<Vec<u8>>, bool) {
    let mut decoded = Vec::new();
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                decoded.push(h << 4 | l);
                i += 3;
            }
            (c, _, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut trailing = false;
    let raw: Vec<&[u8]> = decoded.split(|&c| c == b'/').skip(1).collect();
    for (n, seg) in raw.iter().enumerate() {
        let last = n + 1 == raw.len();
        match *seg {
            b"" | b"." => trailing = last,
            b".." => {
                stack.pop();
                trailing = last;
            }
            s => {
                stack.push(s.to_vec());
                trailing = false;
            }
        }
    }
    (stack, trailing || raw.is_empty())
}

/// Whether the path part (before `?`) holds something the documented table
/// rejects outright.
fn must_reject(target: &str) -> bool {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let bytes = path.as_bytes();
    let raw_bad = bytes
        .iter()
        .any(|&b| matches!(b, b'\\' | b';' | b'#' | 0..=0x20 | 0x7f | 0x80..=0xff));
    let escaped_bad = bytes.windows(3).any(|w| {
        w[0] == b'%'
            && match (hex(w[1]), hex(w[2])) {
                (Some(h), Some(l)) => matches!(h << 4 | l, b'/' | b'\\' | 0..=0x1f | 0x7f),
                _ => false,
            }
    });
    let query_bad = query.is_some_and(|q| q.bytes().any(|b| matches!(b, b'#' | 0..=0x1f | 0x7f)));
    !target.starts_with('/') || raw_bad || escaped_bad || query_bad
}

fn check_path(target: &str) {
    let Ok(c) = canonicalize_path(target) else {
        return;
    };
    assert!(!must_reject(target), "{target:?} was accepted");
    let p = c.path();
    let bytes = p.as_bytes();
    assert!(p.starts_with('/'), "{target:?} → {p:?}");
    for &b in bytes {
        assert!(
            b.is_ascii() && !matches!(b, 0..=0x20 | 0x7f | b'\\' | b';' | b'#' | b'?'),
            "{target:?} → {p:?}: byte {b:#x}"
        );
    }
    assert!(!p.contains("//"), "{target:?} → {p:?}");
    let segments: Vec<&str> = p.split('/').skip(1).collect();
    assert!(
        segments.iter().all(|s| *s != "." && *s != ".."),
        "{target:?} → {p:?}: dot segment"
    );
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (h, l) = (bytes.get(i + 1).copied(), bytes.get(i + 2).copied());
            let digits = [h, l].map(|d| d.filter(|d| d.is_ascii_digit() || (b'A'..=b'F').contains(d)));
            let [Some(h), Some(l)] = digits else {
                panic!("{target:?} → {p:?}: escape at {i} is not two upper-case hex digits");
            };
            let v = hex(h).unwrap_or(0) << 4 | hex(l).unwrap_or(0);
            assert!(
                !is_unreserved(v) && !matches!(v, b'/' | b'\\' | 0..=0x1f | 0x7f),
                "{target:?} → {p:?}: escape %{v:02X} must not survive"
            );
            let double = v == b'%'
                && bytes.get(i + 3).copied().and_then(hex).is_some()
                && bytes.get(i + 4).copied().and_then(hex).is_some();
            assert!(!double, "{target:?} → {p:?}: double encoding");
            i += 3;
        } else {
            i += 1;
        }
    }
    // A fixed point.
    let again = canonicalize_path(p).unwrap_or_else(|e| panic!("{target:?} → {p:?} → {e}"));
    assert_eq!(again.path(), p, "{target:?}: not idempotent");
    assert!(!again.is_rewritten(), "{target:?} → {p:?}: rewritten again");
    assert_eq!(again.query(), None);
    // The query, unchanged.
    assert_eq!(c.query(), target.split_once('?').map(|(_, q)| q), "{target:?}");
    let path_part = target.split_once('?').map_or(target, |(p, _)| p);
    if !c.is_rewritten() {
        assert_eq!(p, path_part, "{target:?}: not rewritten, yet changed");
    }
    // What is forwarded is what was judged.
    let forwarded = c.to_request_target();
    let f = canonicalize_path(&forwarded).unwrap_or_else(|e| panic!("{target:?}: forwarded {forwarded:?} → {e}"));
    assert_eq!(
        (f.path(), f.query(), f.is_rewritten()),
        (p, c.query(), false),
        "{target:?}"
    );
    // The same resource.
    assert_eq!(upstream_view(path_part), upstream_view(p), "{target:?} → {p:?}");
}

fn check_authority(authority: &str) {
    let Ok(a) = canonicalize_authority(authority) else {
        return;
    };
    let host = a.host();
    assert!(!host.is_empty(), "{authority:?}");
    assert!(
        !host.bytes().any(|b| b.is_ascii_uppercase()),
        "{authority:?} → {host:?}"
    );
    assert!(
        !host.ends_with('.') && !host.starts_with('.') && !host.contains(".."),
        "{authority:?} → {host:?}"
    );
    if !host.starts_with('[') {
        assert!(
            host.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')),
            "{authority:?} → {host:?}"
        );
    }
    assert!(a.port() != Some(0), "{authority:?}");
    // The same host, case and one trailing dot aside.
    let lower = authority.to_ascii_lowercase();
    let named = match a.port() {
        Some(_) => lower.rsplit_once(':').map_or(lower.as_str(), |(h, _)| h),
        None => lower.as_str(),
    };
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // The same address, in its one spelling.
        let address: std::net::Ipv6Addr = inner
            .parse()
            .unwrap_or_else(|e| panic!("{authority:?} → {host:?}: {e}"));
        assert_eq!(host, format!("[{address}]"), "{authority:?}");
        let given = named
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::Ipv6Addr>();
        assert_eq!(given, Ok(address), "{authority:?}");
    } else {
        assert_eq!(named.strip_suffix('.').unwrap_or(named), host, "{authority:?}");
    }
    // A fixed point.
    let written = match a.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let again = canonicalize_authority(&written).unwrap_or_else(|e| panic!("{authority:?} → {written:?} → {e}"));
    assert_eq!((again.host(), again.port()), (host, a.port()), "{authority:?}");
}

fn check_method(method: &str) {
    if let Ok(m) = validate_method(method) {
        assert_eq!(m, method);
        assert!(!m.is_empty());
        assert!(
            m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "{method:?}"
        );
    }
}

fn check_principal(uri: &str) {
    if let Some(p) = principal_from_uri_san(uri) {
        assert_eq!(format!("spiffe://{p}"), uri);
        assert!(!p.is_empty());
    }
    if let Some(ns) = namespace_of(uri) {
        let parts: Vec<&str> = uri.split('/').collect();
        assert_eq!(parts.len(), 5, "{uri:?}");
        assert_eq!((parts[1], parts[2], parts[3]), ("ns", ns, "sa"), "{uri:?}");
        assert!(parts.iter().all(|p| !p.is_empty()), "{uri:?}");
    }
}
