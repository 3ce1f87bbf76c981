//! Request authentication: the claims of a verified JWT, and the patterns
//! rules match them with.
//!
//! The filter never reads a token. Envoy's `jwt_authn` filter, configured as
//! istiod configures it for a `RequestAuthentication`, verifies the token
//! (signature, issuer, audiences, expiry) and leaves its payload in the
//! stream's dynamic metadata: namespace `envoy.filters.http.jwt_authn`, key
//! `payload` (`payload_in_metadata`), a `google.protobuf.Struct` of the
//! claims. That is also what Istio's own RBAC matches `requestPrincipals` and
//! `request.auth.*` against. A request without a token, or whose token
//! `jwt_authn` did not verify (Istio's `allow_missing` requirement lets it
//! through without payload when it has no token and refuses it with 401 when
//! its token is invalid), has no [`Claims`].
//!
//! The proxy hands the filter the stream's whole metadata
//! (`get_property(["metadata"])`) as a serialized
//! `envoy.config.core.v3.Metadata` protobuf; deeper paths come back in an
//! untyped encoding where a string, a number and a list cannot be told apart
//! (verified in Envoy 1.40), so [`Claims::from_metadata`] decodes the
//! protobuf itself: a bounded, allocation-light reader of the few message
//! types involved, which skips every other filter's metadata unread.
//!
//! Matching follows Istio's RBAC generator:
//!
//! * a request principal `<iss>/<sub>` is split at its **last** `/` and
//!   matched as two separate matches on the `iss` and `sub` claims
//!   ([`MatchRequestPrincipal`]), so `*` means both claims present and
//!   non-empty;
//! * audiences (`aud`), presenter (`azp`) and other claims match if the claim
//!   is a string that matches, or a list with a string element that matches;
//!   numbers, booleans, objects and null never match a value;
//! * `*` as a claim value means a non-empty string (Istio's `.+`).

use crate::error::PatternError;
use crate::pattern::MatchStr;

/// The dynamic-metadata namespace `jwt_authn` writes to.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
/// The key istiod configures as `payload_in_metadata`.
pub const PAYLOAD_KEY: &str = "payload";
/// Deepest nesting of structs and lists the decoder follows; deeper values
/// are refused (JWT payloads are shallow; the bound keeps the recursion's
/// stack small).
pub const MAX_DEPTH: usize = 32;

/// One claim value, as `google.protobuf.Value` holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// `null`.
    Null,
    /// A number (JSON numbers are doubles in a `Struct`).
    Number(f64),
    /// A string.
    Str(Box<str>),
    /// A boolean.
    Bool(bool),
    /// An object.
    Struct(Claims),
    /// An array.
    List(Vec<Claim>),
}

impl Claim {
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the value matches `m` as Istio's RBAC matches a claim: a
    /// string that matches, or a list with a string element that matches.
    pub(crate) fn matches(&self, m: &MatchStr) -> bool {
        match self {
            Self::Str(s) => claim_str_matches(m, s),
            Self::List(items) => items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| claim_str_matches(m, s))),
            _ => false,
        }
    }
}

/// `m` against a string claim: as [`MatchStr`], but `*` requires a
/// non-empty value (Istio generates the regex `.+` for it).
fn claim_str_matches(m: &MatchStr, s: &str) -> bool {
    match m {
        MatchStr::Any => !s.is_empty(),
        m => m.matches(s),
    }
}

/// The claims of a verified token: the payload `jwt_authn` left.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    /// In the order received; a repeated name counts as its last value (as
    /// protobuf map fields do).
    fields: Vec<(Box<str>, Claim)>,
}

impl Claims {
    /// The claims of a JSON object (`None` if `value` is not an object).
    /// For tests and offline tools; the filter reads
    /// [`Claims::from_metadata`].
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        fn claim(v: &serde_json::Value) -> Claim {
            match v {
                serde_json::Value::Null => Claim::Null,
                serde_json::Value::Bool(b) => Claim::Bool(*b),
                serde_json::Value::Number(n) => Claim::Number(n.as_f64().unwrap_or(0.0)),
                serde_json::Value::String(s) => Claim::Str(s.as_str().into()),
                serde_json::Value::Array(a) => Claim::List(a.iter().map(claim).collect()),
                serde_json::Value::Object(o) => Claim::Struct(Claims {
                    fields: o.iter().map(|(k, v)| (k.as_str().into(), claim(v))).collect(),
                }),
            }
        }
        match claim(value) {
            Claim::Struct(c) => Some(c),
            _ => None,
        }
    }

    /// Decodes the serialized `envoy.config.core.v3.Metadata` the proxy
    /// returns for the property `["metadata"]` and returns the claims
    /// `jwt_authn` left under [`JWT_AUTHN_NAMESPACE`] / [`PAYLOAD_KEY`];
    /// `Ok(None)` when there are none (no token). Other namespaces are
    /// skipped without being decoded. Work is linear in `bytes`; nesting
    /// deeper than [`MAX_DEPTH`] is an error.
    pub fn from_metadata(bytes: &[u8]) -> Result<Option<Self>, MetadataError> {
        // Metadata: 1 = map<string, Struct> filter_metadata. A map is a
        // repeated entry message {1: key, 2: value}; the last entry of a key
        // wins.
        let mut jwt_struct = None;
        for field in Fields(bytes) {
            if let (1, Wire::Len(entry)) = field? {
                let (key, value) = map_entry(entry)?;
                if key == JWT_AUTHN_NAMESPACE.as_bytes() {
                    jwt_struct = Some(value);
                }
            }
        }
        let Some(jwt_struct) = jwt_struct else {
            return Ok(None);
        };
        // Struct: 1 = map<string, Value> fields.
        let mut payload = None;
        for field in Fields(jwt_struct) {
            if let (1, Wire::Len(entry)) = field? {
                let (key, value) = map_entry(entry)?;
                if key == PAYLOAD_KEY.as_bytes() {
                    payload = Some(value);
                }
            }
        }
        match payload.map(|p| decode_value(p, 0)).transpose()? {
            Some(Claim::Struct(claims)) => Ok(Some(claims)),
            _ => Ok(None),
        }
    }

    /// The value of claim `name`.
    pub fn get(&self, name: &str) -> Option<&Claim> {
        self.fields.iter().rev().find(|(k, _)| &**k == name).map(|(_, v)| v)
    }

    /// The value at a path of nested claim names (`["a", "b"]` is claim `b`
    /// of the object in claim `a`).
    pub fn path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Claim> {
        let (first, rest) = path.split_first()?;
        let mut value = self.get(first.as_ref())?;
        for name in rest {
            match value {
                Claim::Struct(c) => value = c.get(name.as_ref())?,
                _ => return None,
            }
        }
        Some(value)
    }

    /// Claim `name` if it is a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Claim::as_str)
    }
}

/// The proxy's metadata could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A field or length runs past the end of its message.
    #[error("truncated protobuf message")]
    Truncated,
    /// A wire type protobuf does not use here (groups, or an unknown one).
    #[error("unsupported protobuf wire type {0}")]
    WireType(u8),
    /// A field has an unexpected wire type or value.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Structs and lists nested deeper than [`MAX_DEPTH`].
    #[error("claims nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A field's payload by wire type.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Len(&'a [u8]),
    Fixed32,
}

/// The fields of one protobuf message, in order: `(number, payload)`.
struct Fields<'a>(&'a [u8]);

fn varint(bytes: &mut &[u8]) -> Result<u64, MetadataError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or(MetadataError::Truncated)?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(MetadataError::Malformed("varint"))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], MetadataError> {
    if bytes.len() < n {
        return Err(MetadataError::Truncated);
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), MetadataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let tag = varint(&mut self.0)?;
            let wire = match tag & 7 {
                0 => Wire::Varint(varint(&mut self.0)?),
                1 => {
                    let b = take(&mut self.0, 8)?;
                    Wire::Fixed64(<[u8; 8]>::try_from(b).map_err(|_| MetadataError::Truncated)?)
                }
                2 => {
                    let len = usize::try_from(varint(&mut self.0)?).map_err(|_| MetadataError::Truncated)?;
                    Wire::Len(take(&mut self.0, len)?)
                }
                5 => {
                    take(&mut self.0, 4)?;
                    Wire::Fixed32
                }
                t => return Err(MetadataError::WireType(t as u8)),
            };
            Ok((tag >> 3, wire))
        })();
        if field.is_err() {
            // Stop after the first error.
            self.0 = &[];
        }
        Some(field)
    }
}

/// A map entry message: its key (field 1) and value (field 2) bytes.
fn map_entry(entry: &[u8]) -> Result<(&[u8], &[u8]), MetadataError> {
    let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
    for field in Fields(entry) {
        match field? {
            (1, Wire::Len(k)) => key = k,
            (2, Wire::Len(v)) => value = v,
            (1 | 2, _) => return Err(MetadataError::Malformed("map entry")),
            _ => {}
        }
    }
    Ok((key, value))
}

fn utf8(bytes: &[u8]) -> Result<Box<str>, MetadataError> {
    std::str::from_utf8(bytes)
        .map(Into::into)
        .map_err(|_| MetadataError::Malformed("string"))
}

/// Decodes a `google.protobuf.Value` at nesting `depth`. An empty value
/// (no field set) is `null`, as protobuf's JSON mapping reads it.
fn decode_value(bytes: &[u8], depth: usize) -> Result<Claim, MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    let mut value = Claim::Null;
    for field in Fields(bytes) {
        value = match field? {
            (1, Wire::Varint(_)) => Claim::Null,
            (2, Wire::Fixed64(b)) => Claim::Number(f64::from_le_bytes(b)),
            (3, Wire::Len(s)) => Claim::Str(utf8(s)?),
            (4, Wire::Varint(b)) => Claim::Bool(b != 0),
            (5, Wire::Len(s)) => {
                let mut fields = Vec::new();
                for f in Fields(s) {
                    if let (1, Wire::Len(entry)) = f? {
                        let (k, v) = map_entry(entry)?;
                        fields.push((utf8(k)?, decode_value(v, depth + 1)?));
                    }
                }
                Claim::Struct(Claims { fields })
            }
            (6, Wire::Len(l)) => {
                let mut items = Vec::new();
                for f in Fields(l) {
                    if let (1, Wire::Len(item)) = f? {
                        items.push(decode_value(item, depth + 1)?);
                    }
                }
                Claim::List(items)
            }
            (1..=6, _) => return Err(MetadataError::Malformed("google.protobuf.Value")),
            _ => continue,
        };
    }
    Ok(value)
}

/// One side of a request principal pattern, as Istio's generator builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MatchPart {
    /// Any non-empty value (`.+`).
    NonEmpty,
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
}

impl MatchPart {
    fn matches(&self, value: Option<&str>) -> bool {
        let Some(v) = value else { return false };
        match self {
            Self::NonEmpty => !v.is_empty(),
            Self::Exact(e) => v == &**e,
            Self::Prefix(p) => v.starts_with(&**p),
            Self::Suffix(s) => v.ends_with(&**s),
        }
    }
}

/// A request principal pattern (`requestPrincipals`, `notRequestPrincipals`,
/// `when` on `request.auth.principal`): `<iss>/<sub>` split at the last `/`
/// into a match on the `iss` claim and one on the `sub` claim, exactly as
/// Istio's RBAC generator splits it:
///
/// | pattern | `iss` | `sub` |
/// |---|---|---|
/// | `*` | non-empty | non-empty |
/// | `iss/sub` | exactly `iss` | exactly `sub` |
/// | `iss/prefix*` | exactly `iss` | starts with `prefix` (`iss/*`: non-empty) |
/// | `*suffix/sub` | ends with `suffix` (`*/sub`: non-empty) | exactly `sub` |
/// | `prefix*` (no `/`) | starts with `prefix` | non-empty |
/// | `*suffix` (no `/`) | non-empty | ends with `suffix` |
/// | `iss` (no `/`) | exactly `iss` | exactly empty |
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchRequestPrincipal {
    iss: MatchPart,
    sub: MatchPart,
}

impl MatchRequestPrincipal {
    /// Parses a pattern; validated as every string pattern is
    /// ([`MatchStr::parse`]: not empty, `*` only at either end).
    pub(crate) fn parse(pattern: &str) -> Result<Self, PatternError> {
        MatchStr::parse(pattern)?;
        let split = pattern.rsplit_once('/');
        let (iss, sub) = split.unwrap_or((pattern, ""));
        let exact = |s: &str| MatchPart::Exact(s.into());
        let (iss, sub) = if pattern == "*" {
            (MatchPart::NonEmpty, MatchPart::NonEmpty)
        } else if let Some(rest) = pattern.strip_prefix('*') {
            match (split, iss.strip_prefix('*')) {
                (Some(_), Some("")) => (MatchPart::NonEmpty, exact(sub)),
                (Some(_), Some(suffix)) => (MatchPart::Suffix(suffix.into()), exact(sub)),
                _ => (MatchPart::NonEmpty, MatchPart::Suffix(rest.into())),
            }
        } else if let Some(rest) = pattern.strip_suffix('*') {
            match (split, sub.strip_suffix('*')) {
                (Some(_), Some("")) => (exact(iss), MatchPart::NonEmpty),
                (Some(_), Some(prefix)) => (exact(iss), MatchPart::Prefix(prefix.into())),
                _ => (MatchPart::Prefix(rest.into()), MatchPart::NonEmpty),
            }
        } else {
            (exact(iss), exact(sub))
        };
        Ok(Self { iss, sub })
    }

    /// Whether a token with these `iss` and `sub` claims (absent or not
    /// strings: `None`) matches.
    pub(crate) fn matches(&self, iss: Option<&str>, sub: Option<&str>) -> bool {
        self.iss.matches(iss) && self.sub.matches(sub)
    }
}

/// Test support: the serialized `envoy.config.core.v3.Metadata` Envoy
/// returns for `["metadata"]` when `jwt_authn` verified a token with payload
/// `claims` (a JSON object).
#[cfg(test)]
pub(crate) fn encode_metadata(claims: &serde_json::Value) -> Vec<u8> {
    fn len(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let mut n = body.len();
        while n >= 0x80 {
            out.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend(body);
        out
    }
    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        len(0x0a, &[len(0x0a, key.as_bytes()), len(0x12, value)].concat())
    }
    fn value(v: &serde_json::Value) -> Vec<u8> {
        match v {
            serde_json::Value::Null => vec![0x08, 0],
            serde_json::Value::Bool(b) => vec![0x20, u8::from(*b)],
            serde_json::Value::Number(n) => [&[0x11][..], &n.as_f64().unwrap_or(0.0).to_le_bytes()].concat(),
            serde_json::Value::String(s) => len(0x1a, s.as_bytes()),
            serde_json::Value::Array(a) => len(
                0x32,
                &a.iter().map(|i| len(0x0a, &value(i))).collect::<Vec<_>>().concat(),
            ),
            serde_json::Value::Object(o) => len(
                0x2a,
                &o.iter().map(|(k, v)| entry(k, &value(v))).collect::<Vec<_>>().concat(),
            ),
        }
    }
    let jwt_struct = entry(PAYLOAD_KEY, &value(claims));
    entry(JWT_AUTHN_NAMESPACE, &jwt_struct)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Envoy 1.40's `get_property(["metadata"])` for a token with payload
    /// `{"iss": "https://issuer.example", "sub": "alice", "aud": ["a1","a2"],
    /// "nested": {"role": "admin", "n": 3}, "scope": "read write" (split by
    /// `normalize_payload_in_metadata`), "flag": true, "list_mixed": ["x", 1,
    /// true], "exp": ...}`, captured with a probe module.
    const ENVOY_METADATA: &str = "0a8c020a1c656e766f792e66696c746572732e687474702e6a77745f617574686e12eb010ae8010a077061796c6f616412dc012ad9010a150a03617564120e320c0a041a0261310a041a0261320a0e0a0373756212071a05616c6963650a2d0a066e657374656412232a210a0e0a016e12091100000000000008400a0f0a04726f6c6512071a0561646d696e0a1f0a0369737312181a1668747470733a2f2f6973737565722e6578616d706c650a100a0365787012091100004005b1c5da410a0a0a04666c6167120220010a1c0a0573636f7065121332110a061a04726561640a071a0577726974650a240a0a6c6973745f6d69786564121632140a031a01780a0911000000000000f03f0a022001";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_what_envoy_returns() {
        let claims = Claims::from_metadata(&unhex(ENVOY_METADATA)).unwrap().unwrap();
        assert_eq!(claims.str("iss"), Some("https://issuer.example"));
        assert_eq!(claims.str("sub"), Some("alice"));
        fn strs(c: &Claim) -> Vec<&str> {
            match c {
                Claim::List(l) => l.iter().map(|i| i.as_str().unwrap_or("?")).collect(),
                _ => vec![],
            }
        }
        assert_eq!(strs(claims.get("aud").unwrap()), ["a1", "a2"]);
        assert_eq!(strs(claims.get("scope").unwrap()), ["read", "write"]);
        assert_eq!(claims.path(&["nested", "role"]).and_then(Claim::as_str), Some("admin"));
        assert_eq!(claims.path(&["nested", "n"]), Some(&Claim::Number(3.0)));
        assert_eq!(claims.get("flag"), Some(&Claim::Bool(true)));
        assert!(matches!(claims.get("exp"), Some(Claim::Number(n)) if *n > 1.7e9));
        assert_eq!(
            claims.get("list_mixed"),
            Some(&Claim::List(vec![
                Claim::Str("x".into()),
                Claim::Number(1.0),
                Claim::Bool(true)
            ]))
        );
        assert_eq!(claims.path(&["nested", "role", "x"]), None);
        assert_eq!(claims.path(&["missing"]), None);
    }

    #[test]
    fn decodes_what_the_test_encoder_writes() {
        let claims = serde_json::json!({"iss": "i", "sub": "s", "n": null, "deep": {"a": [{"b": "c"}]}, "long": "x".repeat(300)});
        let decoded = Claims::from_metadata(&encode_metadata(&claims)).unwrap();
        assert_eq!(decoded, Claims::from_json(&claims));
    }

    #[test]
    fn no_jwt_namespace_or_no_payload_is_no_claims() {
        assert_eq!(Claims::from_metadata(&[]), Ok(None));
        // filter_metadata {"other": {"payload": "x"}}: another filter's namespace.
        let other = unhex("0a140a056f74686572120b0a090a077061796c6f6164");
        assert_eq!(Claims::from_metadata(&other), Ok(None));
    }

    #[test]
    fn every_truncation_of_envoys_metadata_is_an_error_or_no_claims_never_a_panic() {
        let bytes = unhex(ENVOY_METADATA);
        for n in 0..bytes.len() {
            let r = Claims::from_metadata(&bytes[..n]);
            assert!(
                !matches!(r, Ok(Some(_))) || n == bytes.len(),
                "prefix of {n} bytes: {r:?}"
            );
        }
        assert_eq!(Claims::from_metadata(&[0x0b]), Err(MetadataError::WireType(3)));
    }

    /// A length-delimited field `tag` holding `body`.
    fn len_field(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let mut n = body.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend(body);
        out
    }

    #[test]
    fn nesting_is_bounded() {
        // Value{list_value{values: Value{list_value{...}}}}.
        let nest = |levels: usize| (0..levels).fold(Vec::new(), |inner, _| len_field(0x32, &len_field(0x0a, &inner)));
        assert!(decode_value(&nest(MAX_DEPTH), 0).is_ok());
        assert_eq!(decode_value(&nest(MAX_DEPTH + 2), 0), Err(MetadataError::TooDeep));
    }

    #[test]
    fn request_principal_patterns_split_as_istio() {
        let m =
            |p: &str, iss: Option<&str>, sub: Option<&str>| MatchRequestPrincipal::parse(p).unwrap().matches(iss, sub);
        let iss = Some("https://accounts.example.com");
        // Split at the last '/': an issuer URL keeps its slashes.
        assert!(m("https://accounts.example.com/alice", iss, Some("alice")));
        assert!(!m("https://accounts.example.com/alice", iss, Some("bob")));
        assert!(m("*", iss, Some("bob")));
        assert!(!m("*", iss, None));
        assert!(!m("*", None, Some("bob")));
        assert!(!m("*", iss, Some("")));
        assert!(m("https://accounts.example.com/*", iss, Some("x")));
        assert!(m("https://accounts.example.com/al*", iss, Some("alice")));
        assert!(!m(
            "https://accounts.example.com/al*",
            Some("https://other"),
            Some("alice")
        ));
        assert!(m("*/alice", Some("anything"), Some("alice")));
        assert!(m("*.example.com/alice", iss, Some("alice")));
        assert!(!m("*.example.com/alice", Some("https://example.org"), Some("alice")));
        // Without '/': a prefix of the issuer, a suffix of the subject.
        assert!(m("accounts*", Some("accounts.example.com"), Some("x")));
        // A '/' anywhere splits, as in Istio: this is iss "https:/" and a
        // subject starting with "accounts".
        assert!(!m("https://accounts*", iss, Some("x")));
        assert!(m("https://accounts*", Some("https:/"), Some("accounts-1")));
        assert!(m("*ice", iss, Some("alice")));
        // Not a string match on "iss/sub": a subject with '/' is not split.
        assert!(!m("*.com/x/alice", Some("a.com"), Some("x/alice")));
        assert!(MatchRequestPrincipal::parse("a*b/c").is_err());
        assert!(MatchRequestPrincipal::parse("").is_err());
    }

    #[test]
    fn claims_match_strings_and_lists_of_strings_only() {
        let c = Claims::from_json(&serde_json::json!({
            "s": "admin", "l": ["x", 1, "admin"], "n": 3, "b": true, "o": {"s": "admin"}, "e": ""
        }))
        .unwrap();
        let m = |name: &str, p: &str| c.get(name).is_some_and(|v| v.matches(&MatchStr::parse(p).unwrap()));
        assert!(m("s", "admin") && m("s", "adm*") && m("s", "*min") && m("s", "*"));
        assert!(m("l", "admin") && !m("l", "1"));
        assert!(!m("n", "3") && !m("n", "*") && !m("b", "true") && !m("o", "*"));
        assert!(!m("e", "*"));
    }
}
