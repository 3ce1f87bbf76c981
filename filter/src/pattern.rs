//! Parsed patterns: string matches, host matches and path matches.
//!
//! Naming follows the rule/result split: a `Match*` value is what a rule says
//! (`MatchStr`, `MatchHost`, `MatchPath`); what a request matched is reported
//! by the engine as indices.
//!
//! Identity and header patterns are compared as strings, never compiled into
//! regular expressions, so no escaping mistake can widen them.

use crate::canonical::{
    canonicalize_authority, canonicalize_path, is_tchar, is_unreserved, parse_port, split_host_port,
};
use crate::error::PatternError;

/// Longest pattern the engine accepts, in bytes.
pub const MAX_PATTERN_LEN: usize = 2048;

/// Istio's string match: exact, `prefix*`, `*suffix` or `*` (present).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MatchStr {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Any,
}

impl MatchStr {
    /// Parses a pattern; `*` anywhere but at either end (or both) is refused.
    pub(crate) fn parse(pattern: &str) -> Result<Self, PatternError> {
        check_common(pattern)?;
        if pattern == "*" {
            return Ok(Self::Any);
        }
        let m = if let Some(p) = pattern.strip_suffix('*') {
            Self::Prefix(p.into())
        } else if let Some(s) = pattern.strip_prefix('*') {
            Self::Suffix(s.into())
        } else {
            Self::Exact(pattern.into())
        };
        match &m {
            Self::Exact(s) | Self::Prefix(s) | Self::Suffix(s) if s.contains('*') => {
                Err(PatternError::MisplacedWildcard)
            }
            _ => Ok(m),
        }
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => value == &**s,
            Self::Prefix(p) => value.starts_with(&**p),
            Self::Suffix(s) => value.ends_with(&**s),
            Self::Any => true,
        }
    }

    /// The exact value, if this is an exact match (used for indexing).
    pub(crate) fn as_exact(&self) -> Option<&str> {
        match self {
            Self::Exact(s) => Some(s),
            _ => None,
        }
    }
}

fn check_common(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong(MAX_PATTERN_LEN));
    }
    if pattern.bytes().any(|b| b.is_ascii_control()) {
        return Err(PatternError::ControlCharacter);
    }
    Ok(())
}

/// A header value pattern: a [`MatchStr`] that may not contain `,`.
pub(crate) fn parse_header_value(pattern: &str) -> Result<MatchStr, PatternError> {
    if pattern.contains(',') {
        return Err(PatternError::Comma);
    }
    MatchStr::parse(pattern)
}

/// A host pattern: a case-insensitive [`MatchStr`] on the host name, and an
/// optional port. `reviews` matches any port, `reviews:9080` only 9080.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchHost {
    pub(crate) name: MatchStr,
    pub(crate) port: Option<u16>,
}

impl MatchHost {
    pub(crate) fn parse(pattern: &str) -> Result<Self, PatternError> {
        check_common(pattern)?;
        let (host, port) = split_host_port(pattern).map_err(|_| PatternError::BadHost)?;
        let port = port.map(parse_port).transpose().map_err(|_| PatternError::BadHost)?;
        // A trailing dot names the same host (canonical hosts have none), but
        // "*." is not "*".
        let host = match host.strip_suffix('.') {
            Some(h) if !h.is_empty() && !h.ends_with('*') => h,
            _ => host,
        };
        let lower = host.to_ascii_lowercase();
        let name = MatchStr::parse(&lower).map_err(|e| match e {
            PatternError::Empty => PatternError::BadHost,
            e => e,
        })?;
        // The literal part must itself be a valid (canonical) host fragment.
        let literal_ok = match &name {
            MatchStr::Any => true,
            // Judged by the same function as request authorities, so an exact
            // pattern is accepted only if a request's host can equal it.
            MatchStr::Exact(h) => canonicalize_authority(h).is_ok_and(|a| a.host() == &**h && a.port().is_none()),
            // "*.example.com", "api.*", "api-*": labels and dots only.
            MatchStr::Prefix(s) | MatchStr::Suffix(s) => {
                !s.ends_with('.')
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
            }
        };
        if !literal_ok {
            return Err(PatternError::BadHost);
        }
        Ok(Self { name, port })
    }

    /// Matches a canonical (lower-case) host and the authority's port.
    pub(crate) fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.name.matches(host) && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// A method pattern: an upper-case token or `*`.
pub(crate) fn valid_method_pattern(m: &str) -> bool {
    m == "*"
        || (!m.is_empty() && m.len() <= 64 && m.bytes().all(|b| is_tchar(b) && b != b'*' && !b.is_ascii_lowercase()))
}

/// A path pattern, matched against the whole canonical path (never the query).
///
/// | form | example | matches |
/// |---|---|---|
/// | exact | `/health` | exactly `/health` |
/// | prefix | `/reviews/*` | paths starting with `/reviews/` (plain string prefix, as Istio) |
/// | suffix | `*.css` | paths ending with `.css` |
/// | any | `*` | every path |
/// | template | `/api/{*}/items/{**}` | `{*}` one non-empty segment, `{**}` one or more segments (last only) |
/// | regex | `regex:/v[0-9]+/users/[^/]+` | the whole path matches the regular expression |
///
/// A parsed pattern borrows from the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatchPath<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Suffix(&'a str),
    Any,
    /// Segments after the leading `/`.
    Template(Vec<TemplateSegment<'a>>),
    /// The regular expression, without the `regex:` marker.
    Regex(&'a str),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateSegment<'a> {
    Literal(&'a str),
    /// `{*}`: exactly one non-empty segment.
    One,
    /// `{**}`: one or more characters, `/` included (last segment only).
    Rest,
}

/// The marker of the regular-expression path form.
pub const REGEX_PREFIX: &str = "regex:";

impl<'a> MatchPath<'a> {
    pub(crate) fn parse(pattern: &'a str) -> Result<Self, PatternError> {
        check_common(pattern)?;
        if let Some(re) = pattern.strip_prefix(REGEX_PREFIX) {
            if re.is_empty() {
                return Err(PatternError::Empty);
            }
            return Ok(Self::Regex(re));
        }
        if pattern == "*" {
            return Ok(Self::Any);
        }
        if pattern.contains('{') || pattern.contains('}') {
            return parse_template(pattern);
        }
        if let Some(prefix) = pattern.strip_suffix('*') {
            check_path_literal(prefix, true)?;
            return Ok(Self::Prefix(prefix));
        }
        if let Some(suffix) = pattern.strip_prefix('*') {
            check_path_literal(suffix, false)?;
            return Ok(Self::Suffix(suffix));
        }
        check_path_literal(pattern, true)?;
        // An exact pattern must be a whole canonical path.
        let canonical = canonicalize_path(pattern).map_err(|_| PatternError::NotCanonical {
            canonical: String::new(),
        })?;
        if canonical.path() != pattern || canonical.query().is_some() {
            return Err(PatternError::NotCanonical {
                canonical: canonical.path().to_string(),
            });
        }
        Ok(Self::Exact(pattern))
    }
}

fn parse_template(pattern: &str) -> Result<MatchPath<'_>, PatternError> {
    let rest = pattern.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
    let raw: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::with_capacity(raw.len());
    for (i, seg) in raw.iter().enumerate() {
        let last = i + 1 == raw.len();
        let s = match *seg {
            "{*}" => TemplateSegment::One,
            "{**}" if last => TemplateSegment::Rest,
            "{**}" => return Err(PatternError::DoubleStarNotLast),
            s if s.contains(['{', '}']) => return Err(PatternError::BadTemplate),
            s => {
                if s.is_empty() && !last || s == "." || s == ".." {
                    return Err(PatternError::NotCanonical {
                        canonical: String::new(),
                    });
                }
                check_path_literal(s, false)?;
                TemplateSegment::Literal(s)
            }
        };
        segments.push(s);
    }
    Ok(MatchPath::Template(segments))
}

/// Checks that a literal piece of a path pattern could occur in a canonical
/// path: only ASCII, no byte that canonicalization rejects, escapes in
/// canonical form; when `anchored` (the piece starts the path) it must also
/// start with `/` and contain no empty or dot segment.
fn check_path_literal(lit: &str, anchored: bool) -> Result<(), PatternError> {
    if anchored && !lit.starts_with('/') {
        return Err(PatternError::NotAbsolute);
    }
    let bytes = lit.as_bytes();
    // One pass: escapes and bytes as they come, and each complete segment
    // (between two slashes) when its closing slash comes. The piece before
    // the first slash is either empty (anchored) or the tail of some segment
    // (a suffix), and the piece after the last one may be a partial segment
    // (a prefix such as "/api/v1."): neither is checked as a segment. A bad
    // segment is reported only if no byte is bad, so that the canonical form
    // it suggests is a pattern that could be written.
    let mut last_slash = None;
    let mut bad_segment = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let decoded = match (
                    bytes.get(i + 1).and_then(|&h| upper_hex(h)),
                    bytes.get(i + 2).and_then(|&h| upper_hex(h)),
                ) {
                    (Some(hi), Some(lo)) => hi << 4 | lo,
                    _ => {
                        return Err(PatternError::NotCanonical {
                            canonical: String::new(),
                        })
                    }
                };
                // No canonical path holds these escaped: canonicalization
                // decodes unreserved characters and rejects requests with an
                // encoded separator or control character.
                let decodes =
                    is_unreserved(decoded) || matches!(decoded, b'/' | b'\\') || decoded <= 0x1f || decoded == 0x7f;
                if decodes {
                    return Err(PatternError::NotCanonical {
                        canonical: String::new(),
                    });
                }
                i += 3;
                continue;
            }
            b'/' => {
                if let Some(seg) = last_slash.and_then(|s: usize| bytes.get(s + 1..i)) {
                    bad_segment |= matches!(seg, b"" | b"." | b"..");
                }
                last_slash = Some(i);
            }
            b'?' | b'#' | b'\\' | b';' | b' ' | 0x80..=0xff => {
                return Err(PatternError::NotInCanonicalPath(char::from(b)));
            }
            b'*' => return Err(PatternError::MisplacedWildcard),
            _ => {}
        }
        i += 1;
    }
    if bad_segment {
        return Err(PatternError::NotCanonical {
            canonical: canonicalize_path(lit).map(|c| c.path().to_string()).unwrap_or_default(),
        });
    }
    Ok(())
}

/// The value of an upper-case hexadecimal digit (the canonical form of an escape).
fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A bad byte is reported before a bad segment: the canonical form
    /// suggested for a bad segment must not quietly drop the rest.
    #[test]
    fn bad_bytes_before_bad_segments() {
        assert!(matches!(
            MatchPath::parse("/api//v1?x"),
            Err(PatternError::NotInCanonicalPath('?'))
        ));
        assert!(matches!(
            check_path_literal("//*", true),
            Err(PatternError::MisplacedWildcard)
        ));
        match MatchPath::parse("/api//v1") {
            Err(PatternError::NotCanonical { canonical }) => assert_eq!(canonical, "/api/v1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn str_match_forms() {
        assert_eq!(MatchStr::parse("*").unwrap(), MatchStr::Any);
        assert!(MatchStr::parse("a*").unwrap().matches("abc"));
        assert!(MatchStr::parse("*c").unwrap().matches("abc"));
        assert!(!MatchStr::parse("a").unwrap().matches("ab"));
        assert!(matches!(MatchStr::parse("a*b"), Err(PatternError::MisplacedWildcard)));
        assert!(matches!(MatchStr::parse("*a*"), Err(PatternError::MisplacedWildcard)));
        assert!(matches!(MatchStr::parse("**"), Err(PatternError::MisplacedWildcard)));
        assert!(matches!(MatchStr::parse(""), Err(PatternError::Empty)));
        assert!(matches!(MatchStr::parse("a\nb"), Err(PatternError::ControlCharacter)));
    }

    #[test]
    fn host_patterns() {
        let h = MatchHost::parse("Reviews.Bookinfo.svc.cluster.local.:9080").unwrap();
        assert!(h.matches("reviews.bookinfo.svc.cluster.local", Some(9080)));
        assert!(!h.matches("reviews.bookinfo.svc.cluster.local", Some(80)));
        assert!(!h.matches("reviews.bookinfo.svc.cluster.local", None));
        let h = MatchHost::parse("reviews").unwrap();
        assert!(h.matches("reviews", Some(1)) && h.matches("reviews", None));
        let h = MatchHost::parse("*.example.com").unwrap();
        assert!(h.matches("a.example.com", None) && h.matches("a.b.example.com", None));
        assert!(!h.matches("example.com", None) && !h.matches("aexample.com", None));
        assert!(MatchHost::parse("*:8080").unwrap().matches("x", Some(8080)));
        for bad in ["a b", "a:0", "a:x", "a@b", "x.*.com", "", "*.", "a..b"] {
            assert!(MatchHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn method_patterns() {
        for ok in ["GET", "*", "M-SEARCH"] {
            assert!(valid_method_pattern(ok), "{ok}");
        }
        for bad in ["get", "", "GE T", "G*"] {
            assert!(!valid_method_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn path_pattern_forms() {
        assert_eq!(MatchPath::parse("/health").unwrap(), MatchPath::Exact("/health"));
        assert_eq!(MatchPath::parse("/r/*").unwrap(), MatchPath::Prefix("/r/"));
        assert_eq!(MatchPath::parse("*.css").unwrap(), MatchPath::Suffix(".css"));
        assert_eq!(MatchPath::parse("*").unwrap(), MatchPath::Any);
        assert_eq!(
            MatchPath::parse("regex:/v[0-9]+").unwrap(),
            MatchPath::Regex("/v[0-9]+")
        );
        assert_eq!(
            MatchPath::parse("/api/{*}/items/{**}").unwrap(),
            MatchPath::Template(vec![
                TemplateSegment::Literal("api"),
                TemplateSegment::One,
                TemplateSegment::Literal("items"),
                TemplateSegment::Rest
            ])
        );
        assert_eq!(MatchPath::parse("/caf%C3%A9").unwrap(), MatchPath::Exact("/caf%C3%A9"));
    }

    #[test]
    fn path_patterns_that_could_never_match_are_refused() {
        for bad in [
            "health",
            "/a//b",
            "/a/../b",
            "/a/./b",
            "/%61dmin",
            "/caf%c3%a9",
            "/a%2Fb",
            "/a;b",
            "/a?b",
            "/a#b",
            "/a\\b",
            "/a/*/b",
            "/api/{**}/x",
            "/api/{x}",
            "/api/a{*}",
            "/a%2",
            "/é",
            "regex:",
        ] {
            assert!(MatchPath::parse(bad).is_err(), "{bad}");
        }
        match MatchPath::parse("/a/../b") {
            Err(PatternError::NotCanonical { canonical }) => assert_eq!(canonical, "/b"),
            other => panic!("{other:?}"),
        }
    }
}
