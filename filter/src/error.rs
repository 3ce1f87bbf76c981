//! Errors at the configuration boundary.
//!
//! A configuration is either accepted whole or rejected with one
//! [`ConfigError`] whose message starts with the path of the offending field
//! (`policies[2].rules[0].to[0].paths[3]: ...`), so the filter can log it and
//! keep the last good configuration, and the control service can put it in an
//! Allowlist's status.

use thiserror::Error;

use crate::canonical::RequestError;

/// Why a plugin configuration was rejected.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The JSON is malformed or does not fit the schema (unknown or missing
    /// field, wrong type, duplicate key).
    #[error("{field}: {source}")]
    Syntax {
        /// Path of the field where parsing stopped (`.` for the document).
        field: String,
        /// What the JSON parser reported.
        source: serde_json::Error,
    },
    /// A pattern (path, host, principal, header value, ...) is not valid.
    #[error("{field}: {value:?}: {reason}")]
    InvalidPattern {
        /// Path of the field.
        field: String,
        /// The pattern as written.
        value: String,
        /// What is wrong with it.
        #[source]
        reason: PatternError,
    },
    /// A policy or rule name is empty, too long or uses other characters than
    /// `A-Z a-z 0-9 . _ - / :`.
    #[error("{field}: {value:?}: names must be 1-253 characters of A-Z a-z 0-9 . _ - / :")]
    InvalidName {
        /// Path of the field.
        field: String,
        /// The name as written.
        value: String,
    },
    /// Two policies, or two rules of one policy, have the same name.
    #[error("{field}: duplicate name {name:?}")]
    DuplicateName {
        /// Path of the second occurrence.
        field: String,
        /// The repeated name.
        name: String,
    },
    /// `denyStatus` is outside 400–599.
    #[error("denyStatus: {value} is not a 4xx or 5xx status")]
    InvalidDenyStatus {
        /// The value given.
        value: u16,
    },
    /// A method is not `*` nor an upper-case token.
    #[error("{field}: {value:?}: methods are upper-case tokens (GET, POST, ...) or \"*\"")]
    InvalidMethod {
        /// Path of the field.
        field: String,
        /// The method as written.
        value: String,
    },
    /// A header name is not a lower- or upper-case token, or is a pseudo-header.
    #[error(
        "{field}: {value:?}: not a header name (pseudo-headers such as :path are matched by paths, hosts and methods)"
    )]
    InvalidHeaderName {
        /// Path of the field.
        field: String,
        /// The name as written.
        value: String,
    },
    /// A `when` key is not a supported condition key, or a claim path is
    /// malformed.
    #[error("{field}: {value:?}: {expected}")]
    InvalidKey {
        /// Path of the field.
        field: String,
        /// The key as written.
        value: String,
        /// What the field takes.
        expected: String,
    },
    /// Port 0 in `ports`, `notPorts` or a `destination.port` condition.
    #[error("{field}: port 0 is not a destination port")]
    InvalidPort {
        /// Path of the field.
        field: String,
    },
    /// A gRPC service or method name is not a protobuf name.
    #[error("{field}: {value:?}: {expected}")]
    InvalidGrpcName {
        /// Path of the field.
        field: String,
        /// The name as written.
        value: String,
        /// What the field takes.
        expected: &'static str,
    },
    /// An entry sets fields that exclude each other (a `to` entry's `grpc`
    /// with `methods`, `paths` or `notPaths`; a `when` condition's `header`
    /// with `key`, or neither).
    #[error("{field}: {what}")]
    ConflictingFields {
        /// Path of the entry.
        field: String,
        /// Which fields exclude each other.
        what: &'static str,
    },
    /// A `from` or `to` entry sets no field, a `when` condition has neither
    /// `values` nor `notValues` (it would match every request by accident),
    /// or a `grpc` entry names no method.
    #[error("{field}: {what}")]
    EmptyEntry {
        /// Path of the entry.
        field: String,
        /// Which fields it must set.
        what: &'static str,
    },
    /// A `when` condition's `key` is not one the engine supports.
    #[error("{field}: unknown key {value:?}; supported keys: {supported}")]
    UnknownConditionKey {
        /// Path of the field.
        field: String,
        /// The key as written.
        value: String,
        /// The keys the engine supports.
        supported: &'static str,
    },
    /// The configuration is larger than the engine accepts.
    #[error("{field}: more than {limit} {what}")]
    TooLarge {
        /// Path of the field (or `.`).
        field: String,
        /// The limit.
        limit: usize,
        /// What is counted.
        what: &'static str,
    },
    /// The path patterns of all policies together do not compile into an
    /// automaton within the size limit.
    #[error("policies: path patterns exceed the compiled size limit of {limit} bytes: {source}")]
    AutomatonTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// What the automaton builder reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigError {
    /// The path of the offending field, as the message starts with it
    /// (`policies[2].rules[0].to[0].paths[3]`; `.` for the whole document,
    /// `policies` when the path patterns of all policies together are too
    /// large, `denyStatus` for the deny status).
    pub fn field(&self) -> &str {
        match self {
            Self::Syntax { field, .. }
            | Self::InvalidPattern { field, .. }
            | Self::InvalidName { field, .. }
            | Self::DuplicateName { field, .. }
            | Self::InvalidMethod { field, .. }
            | Self::InvalidHeaderName { field, .. }
            | Self::InvalidKey { field, .. }
            | Self::InvalidPort { field }
            | Self::EmptyEntry { field, .. }
            | Self::InvalidGrpcName { field, .. }
            | Self::ConflictingFields { field, .. }
            | Self::UnknownConditionKey { field, .. }
            | Self::TooLarge { field, .. } => field,
            Self::InvalidDenyStatus { .. } => "denyStatus",
            Self::AutomatonTooLarge { .. } => "policies",
        }
    }

    /// The message without the field path in front of it: what is wrong
    /// with the field, for callers that name the field their own way.
    pub fn detail(&self) -> String {
        let message = self.to_string();
        match message
            .strip_prefix(self.field())
            .and_then(|rest| rest.strip_prefix(": "))
        {
            Some(detail) => detail.to_string(),
            None => message,
        }
    }
}

/// What is wrong with a single pattern.
#[derive(Debug, Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("empty pattern")]
    Empty,
    /// The pattern is longer than the limit.
    #[error("longer than {0} bytes")]
    TooLong(usize),
    /// `*` appears elsewhere than as the whole pattern, first or last character.
    #[error("'*' is allowed only as the whole pattern, its first or its last character")]
    MisplacedWildcard,
    /// A path pattern does not start with `/` (or `*`, `{`, `regex:`).
    #[error("paths start with '/' (or are '*', '*suffix' or 'regex:...')")]
    NotAbsolute,
    /// A path pattern is not in canonical form, so no canonical path could
    /// match it as written; `canonical` is the form that matches what it
    /// means (escapes of unreserved characters decoded, other escapes in
    /// upper-case hex, repeated `/` merged, `.` and `..` segments resolved).
    #[error("not in canonical form, so no request path can match it (canonical: {canonical:?}); see the canonicalization rules")]
    NotCanonical {
        /// The pattern in canonical form.
        canonical: String,
    },
    /// A path pattern holds what requests may not hold: such requests are
    /// rejected (400) before any rule is consulted, so the pattern could
    /// never match (an encoded `/` or `\`, a double encoding, an encoded
    /// control character, a malformed escape).
    #[error("no request can match it: requests containing it are rejected (400) before any rule ({0})")]
    RejectedInRequests(#[source] RequestError),
    /// A `..` segment of a pattern has no canonical form: it follows `{**}`,
    /// or starts a `*suffix` pattern, so what it removes depends on the
    /// request.
    #[error("a '..' segment here depends on what '{{**}}' or '*' matched, so it has no canonical form; requests are matched after dot segments are resolved: write the path without it")]
    DotSegment,
    /// A path pattern contains a byte that no canonical path contains.
    #[error("contains {0:?}, which canonical paths never contain (percent-encode it, upper-case hex)")]
    NotInCanonicalPath(char),
    /// A `{` or `}` outside the operators `{*}` and `{**}`, or an operator
    /// that is not a whole path segment (Istio's path template rule).
    #[error("'{{' and '}}' may only appear in the operators '{{*}}' and '{{**}}', each a whole path segment (Istio: \"Contains '{{' or '}}' beyond a supported path template\")")]
    BadTemplate,
    /// An operator follows `{**}` (Istio's path template rule).
    #[error("no operator may follow '{{**}}', only literal segments (Istio: \"{{**}} is not the last operator\")")]
    OperatorAfterRest,
    /// A literal segment of a path template is empty or holds a character
    /// outside RFC 3986's `pchar` as Istio and Envoy take it (Istio's path
    /// template rule).
    #[error("template segment {segment:?} is not '{{*}}', '{{**}}' or a literal of A-Z a-z 0-9 - . _ ~ % ! $ & ' ( ) + , ; : @ = (Istio: \"Contains segment {segment} with invalid string literal\")")]
    InvalidTemplateLiteral {
        /// The segment as written.
        segment: String,
    },
    /// A `regex:` pattern does not parse.
    #[error("invalid regular expression: {0}")]
    Regex(Box<regex_syntax::Error>),
    /// A `regex:` pattern compiles to more than the per-pattern size limit.
    #[error("regular expression compiles to more than {0} bytes")]
    RegexTooLarge(usize),
    /// A host pattern is not a valid host, `host:port` or wildcard host.
    #[error("not a host, host:port, *.suffix, prefix* or *")]
    BadHost,
    /// A header value pattern contains `,`; values are matched per
    /// comma-separated element, so it could never match.
    #[error("values are matched per comma-separated element, so a pattern cannot contain ','")]
    Comma,
    /// A pattern contains a control character.
    #[error("contains a control character")]
    ControlCharacter,
    /// An address block is not an IPv4 or IPv6 address, alone or followed by
    /// `/` and a prefix length (zones such as `%eth0` are not accepted).
    #[error("not an IPv4 or IPv6 address or CIDR block (10.1.2.3, 10.1.0.0/16, 2001:db8::/32)")]
    BadAddress,
    /// The prefix length of a CIDR block is not a decimal number within the
    /// address's size.
    #[error("the prefix length must be a decimal number from 0 to {max}")]
    BadPrefixLength {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// A CIDR block has bits set beyond its prefix length (`10.0.0.1/8`).
    /// Istio accepts it and matches the network it lies in; meshward asks
    /// for that network to be written.
    #[error("bits are set beyond the prefix length; write the network it means: {network:?}")]
    HostBitsSet {
        /// The block with those bits cleared.
        network: String,
    },
    /// A `destination.port` condition value is not a port number.
    #[error("not a port: a decimal number from 1 to 65535")]
    NotAPort,
}
