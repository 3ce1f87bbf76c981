//! Parsed patterns: string matches, host matches and path matches.
//!
//! Naming follows the rule/result split: a `Match*` value is what a rule says
//! (`MatchStr`, `MatchHost`, `MatchPath`); what a request matched is reported
//! by the engine as indices.
//!
//! Identity and header patterns are compared as strings, never compiled into
//! regular expressions, so no escaping mistake can widen them.

use crate::canonical::{
    canonicalize_authority, canonicalize_path, decode_unreserved, is_tchar, is_unreserved, parse_port, split_host_port,
    RequestError,
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
/// | template | `/api/{*}/items/{**}` | as Istio's path templates (Envoy's `uri_template`) |
/// | regex | `regex:/v[0-9]+/users/[^/]+` | the whole path matches the regular expression |
///
/// A template is parsed as Istio validates it and matched as Envoy matches
/// the `uri_template` Istio translates it to: `{*}` stands for one non-empty
/// segment, `{**}` for zero or more characters, `/` included (so for one or
/// more segments, the last of them possibly empty); neither matches `[` or
/// `]`. `{**}` may be followed by literal segments and a trailing `/`, but
/// not by another operator.
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
    /// A literal segment; empty for a trailing `/`.
    Literal(&'a str),
    /// `{*}`: exactly one non-empty segment.
    One,
    /// `{**}`: zero or more characters, `/` included; only literal segments
    /// follow it.
    Rest,
}

/// The marker of the regular-expression path form.
pub const REGEX_PREFIX: &str = "regex:";

/// The characters a path template's literal segments may hold: RFC 3986's
/// `pchar` without `*` (Envoy's operator), as Istio's validator takes it
/// (`A-Z a-z 0-9 - . _ ~ % ! $ & ' ( ) + , ; : @ =`).
pub(crate) const fn is_template_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'+'
                | b','
                | b';'
                | b':'
                | b'@'
                | b'='
        )
}

/// Where a path pattern's literal piece stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// Starts the path: an exact pattern or a prefix.
    Anchored,
    /// Anywhere: a suffix, or a template segment.
    Floating,
}

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
        if pattern.contains(['{', '}']) {
            return parse_template(pattern);
        }
        if let Some(prefix) = pattern.strip_suffix('*') {
            check_path_literal(prefix, Piece::Anchored).map_err(|r| r.or_else(|| prefix_suggestion(prefix)))?;
            return Ok(Self::Prefix(prefix));
        }
        if let Some(suffix) = pattern.strip_prefix('*') {
            check_path_literal(suffix, Piece::Floating).map_err(|r| r.or_else(|| suffix_suggestion(suffix)))?;
            return Ok(Self::Suffix(suffix));
        }
        check_path_literal(pattern, Piece::Anchored).map_err(|r| r.or_else(|| path_suggestion(pattern)))?;
        // An exact pattern must be a whole canonical path (its last segment
        // must not be a dot segment either).
        let canonical = canonicalize_path(pattern).map_err(PatternError::RejectedInRequests)?;
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
    let mut after_rest = false;
    // A segment no canonical path holds (a dot segment, an escape to
    // rewrite): refused with the canonical form once every segment passed
    // Istio's rules.
    let mut not_canonical = false;
    for (i, seg) in raw.iter().enumerate() {
        let last = i + 1 == raw.len();
        let s = match *seg {
            "{*}" | "{**}" if after_rest => return Err(PatternError::OperatorAfterRest),
            "{*}" => TemplateSegment::One,
            "{**}" => {
                after_rest = true;
                TemplateSegment::Rest
            }
            s if s.contains(['{', '}']) => return Err(PatternError::BadTemplate),
            // A trailing `/`.
            "" if last => TemplateSegment::Literal(""),
            s => {
                if s.is_empty() || !s.bytes().all(is_template_char) {
                    return Err(PatternError::InvalidTemplateLiteral { segment: s.to_string() });
                }
                match check_path_literal(s, Piece::Floating) {
                    Ok(()) => not_canonical |= s == "." || s == "..",
                    Err(Refusal::NotCanonical) => not_canonical = true,
                    Err(Refusal::Final(e)) => return Err(e),
                }
                TemplateSegment::Literal(s)
            }
        };
        segments.push(s);
    }
    if not_canonical {
        return Err(template_suggestion(pattern));
    }
    Ok(MatchPath::Template(segments))
}

/// Why [`check_path_literal`] refused a piece.
#[derive(Debug)]
enum Refusal {
    /// Not in canonical form, but it has one: the caller names it.
    NotCanonical,
    /// Refused, whatever the rest of the pattern.
    Final(PatternError),
}

impl Refusal {
    /// The error to report, `suggest` naming the canonical form.
    fn or_else(self, suggest: impl FnOnce() -> PatternError) -> PatternError {
        match self {
            Self::NotCanonical => suggest(),
            Self::Final(e) => e,
        }
    }
}

/// Checks that a literal piece of a path pattern could occur in a canonical
/// path: only ASCII, no byte that canonicalization rejects, escapes in
/// canonical form; when anchored (the piece starts the path) it must also
/// start with `/`; no empty or dot segment between two of its slashes.
fn check_path_literal(lit: &str, piece: Piece) -> Result<(), Refusal> {
    if piece == Piece::Anchored && !lit.starts_with('/') {
        return Err(Refusal::Final(PatternError::NotAbsolute));
    }
    let rejected = |e| Err(Refusal::Final(PatternError::RejectedInRequests(e)));
    let bytes = lit.as_bytes();
    // One pass: escapes and bytes as they come, and each complete segment
    // (between two slashes) when its closing slash comes. The piece before
    // the first slash is either empty (anchored) or the tail of some segment
    // (a suffix), and the piece after the last one may be a partial segment
    // (a prefix such as "/api/v1."): neither is checked as a segment. What
    // has a canonical form is reported only if nothing is refused outright,
    // so that the canonical form suggested is a pattern that could be
    // written.
    let mut last_slash = None;
    let mut not_canonical = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                    return rejected(RequestError::BadPercentEncoding);
                };
                let decoded = hi.value << 4 | lo.value;
                match decoded {
                    b'/' | b'\\' => return rejected(RequestError::EncodedSlash),
                    0..=0x1f | 0x7f => return rejected(RequestError::ControlCharacter),
                    // Canonicalization decodes these, and writes escapes in
                    // upper-case hex.
                    d if is_unreserved(d) || !(hi.upper && lo.upper) => not_canonical = true,
                    // `%25` and two hex digits: a double encoding.
                    b'%' if hex(bytes.get(i + 3)).is_some() && hex(bytes.get(i + 4)).is_some() => {
                        return rejected(RequestError::DoubleEncoding)
                    }
                    _ => {}
                }
                i += 3;
                continue;
            }
            b'/' => {
                if let Some(seg) = last_slash.and_then(|s: usize| bytes.get(s + 1..i)) {
                    not_canonical |= matches!(seg, b"" | b"." | b"..");
                }
                last_slash = Some(i);
            }
            b'?' | b'#' | b'\\' | b';' | b' ' | 0x80..=0xff => {
                return Err(Refusal::Final(PatternError::NotInCanonicalPath(char::from(b))));
            }
            b'*' => return Err(Refusal::Final(PatternError::MisplacedWildcard)),
            _ => {}
        }
        i += 1;
    }
    if not_canonical {
        return Err(Refusal::NotCanonical);
    }
    Ok(())
}

/// A hexadecimal digit: its value, and whether it is in canonical
/// (upper-case) form.
struct HexDigit {
    value: u8,
    upper: bool,
}

fn hex(b: Option<&u8>) -> Option<HexDigit> {
    let b = *b?;
    let (value, upper) = match b {
        b'0'..=b'9' => (b - b'0', true),
        b'A'..=b'F' => (b - b'A' + 10, true),
        b'a'..=b'f' => (b - b'a' + 10, false),
        _ => return None,
    };
    Some(HexDigit { value, upper })
}

/// The refusal of an exact path pattern (or a template, whose operators
/// canonicalization takes as plain segments) that is not in canonical form:
/// its canonical form, computed as for a request.
fn path_suggestion(path: &str) -> PatternError {
    match canonicalize_path(path) {
        Ok(canonical) => PatternError::NotCanonical {
            canonical: canonical.path().to_string(),
        },
        Err(e) => PatternError::RejectedInRequests(e),
    }
}

/// [`path_suggestion`] for a template: dot segments are resolved as in a
/// request, `{*}` standing for one segment; a `..` that would remove `{**}`
/// (any number of segments) has no canonical form.
fn template_suggestion(template: &str) -> PatternError {
    match path_suggestion(template) {
        PatternError::NotCanonical { canonical }
            if canonical.matches("{**}").count() != template.matches("{**}").count() =>
        {
            PatternError::DotSegment
        }
        other => other,
    }
}

/// The canonical form of a `prefix*` pattern: its complete segments as a
/// path, its last (partial) segment with canonical escapes only.
fn prefix_suggestion(prefix: &str) -> PatternError {
    let (head, tail) = prefix
        .split_at_checked(prefix.rfind('/').map_or(0, |at| at + 1))
        .unwrap_or((prefix, ""));
    let canonical =
        canonicalize_path(head).and_then(|head| Ok(format!("{}{}*", head.path(), decode_unreserved(tail)?)));
    match canonical {
        Ok(canonical) => PatternError::NotCanonical { canonical },
        Err(e) => PatternError::RejectedInRequests(e),
    }
}

/// The canonical form of a `*suffix` pattern: escapes in canonical form,
/// empty and `.` segments between two slashes removed; a `..` segment there
/// has none.
fn suffix_suggestion(suffix: &str) -> PatternError {
    let decoded = match decode_unreserved(suffix) {
        Ok(decoded) => decoded,
        Err(e) => return PatternError::RejectedInRequests(e),
    };
    let pieces: Vec<&str> = decoded.split('/').collect();
    let mut kept = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let inner = i > 0 && i + 1 < pieces.len();
        match *piece {
            "" | "." if inner => {}
            ".." if inner => return PatternError::DotSegment,
            p => kept.push(p),
        }
    }
    PatternError::NotCanonical {
        canonical: format!("*{}", kept.join("/")),
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
        assert!(matches!(MatchPath::parse("//**"), Err(PatternError::MisplacedWildcard)));
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
            "/api/{**}/{*}",
            "/api/{x}",
            "/api/a{*}",
            "/a%2",
            "/é",
            "regex:",
        ] {
            assert!(MatchPath::parse(bad).is_err(), "{bad}");
        }
    }

    /// Each refusal that has a canonical form names it, whatever made the
    /// pattern non-canonical: an escape, a repeated `/`, a dot segment, in
    /// any form of pattern.
    #[test]
    fn refusals_name_the_canonical_form() {
        for (pattern, canonical) in [
            ("/a/../b", "/b"),
            ("/%61dmin", "/admin"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a/%2E%2E/admin", "/admin"),
            ("/a/%2e./b/", "/b/"),
            ("/%61pi/*", "/api/*"),
            ("/api//v%31*", "/api/v1*"),
            ("/a/..*", "/a/..*"),
            ("*/%61.css", "*/a.css"),
            ("*a//b/./c", "*a/b/c"),
            ("/orders/{*}/../admin", "/orders/admin"),
            ("/orders/./{*}", "/orders/{*}"),
            ("/%61/{**}/cart", "/a/{**}/cart"),
            ("/a/{**}/b/../cart", "/a/{**}/cart"),
            ("/a/{*}/%7e", "/a/{*}/~"),
        ] {
            match MatchPath::parse(pattern) {
                Err(PatternError::NotCanonical { canonical: c }) => assert_eq!(c, canonical, "{pattern}"),
                // `/a/..*` is a prefix of `/a/..x`: nothing to refuse.
                Ok(_) if pattern == canonical => {}
                other => panic!("{pattern}: {other:?}"),
            }
        }
    }

    /// What has no canonical form is refused with the rule it breaks, never
    /// with an empty canonical form.
    #[test]
    fn refusals_without_a_canonical_form() {
        for (pattern, rejected) in [
            ("/a%2Fb", RequestError::EncodedSlash),
            ("/a/%5c", RequestError::EncodedSlash),
            ("/a%00", RequestError::ControlCharacter),
            ("/a%2", RequestError::BadPercentEncoding),
            ("/a%zz/*", RequestError::BadPercentEncoding),
            ("/a%2541", RequestError::DoubleEncoding),
            ("/a%25%34%31", RequestError::DoubleEncoding),
            ("*%2F", RequestError::EncodedSlash),
            ("/{*}/%2F", RequestError::EncodedSlash),
        ] {
            match MatchPath::parse(pattern) {
                Err(PatternError::RejectedInRequests(e)) => assert_eq!(e, rejected, "{pattern}"),
                other => panic!("{pattern}: {other:?}"),
            }
        }
        for pattern in ["/a/{**}/../b", "/{**}/..", "*/../x"] {
            assert!(
                matches!(MatchPath::parse(pattern), Err(PatternError::DotSegment)),
                "{pattern}"
            );
        }
    }
}
