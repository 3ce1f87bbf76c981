//! What the engine is asked and what it answers: a [`Request`] in, a
//! [`Decision`] out.
//!
//! A request carries its attributes raw, as received; the engine
//! canonicalizes them itself, so that what is judged and what is forwarded
//! cannot differ. A decision says what to do ([`Verdict`]), in which mode,
//! why ([`Reason`], naming the admitting rule as a [`RuleRef`]), and which
//! canonical path was judged.

use std::net::IpAddr;

use crate::auth::Claims;
use crate::canonical::{CanonicalPath, RequestError};
use crate::config::Mode;

/// Access to a request's headers.
///
/// Implementations return every value of a header, one per field line, in
/// order, without joining repeated headers.
pub trait Headers {
    /// Every value of header `name` (compared case-insensitively).
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a;
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

/// Whether a `content-type` value is gRPC's, exactly as Envoy decides it
/// (`Grpc::Common::hasGrpcContentType`, which also decides whether Envoy
/// answers a local reply in gRPC form): `application/grpc`, or
/// `application/grpc+` followed by anything (`application/grpc+proto`,
/// `application/grpc+json`). Case-sensitive, as Envoy compares it;
/// `application/grpc-web...` is not gRPC.
pub fn is_grpc_content_type(value: &str) -> bool {
    const GRPC: &str = "application/grpc";
    value
        .strip_prefix(GRPC)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
}

/// Whether a request is gRPC: it has exactly one `content-type` field line
/// and that value is gRPC's ([`is_grpc_content_type`]). Envoy joins repeated
/// `content-type` lines with commas, which is not gRPC's content type either.
pub fn is_grpc<H: Headers + ?Sized>(headers: &H) -> bool {
    let mut values = headers.values("content-type");
    values.next().is_some_and(is_grpc_content_type) && values.next().is_none()
}

/// One HTTP request as the engine sees it. All fields are raw, as received;
/// the engine canonicalizes them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r, H: ?Sized = [(&'r str, &'r str)]> {
    /// `:method`.
    pub method: &'r str,
    /// `:path`, with query string.
    pub path: &'r str,
    /// `:authority` (or `Host`); `None` when absent.
    pub authority: Option<&'r str>,
    /// The destination port the proxy received the request on.
    pub port: Option<u16>,
    /// The caller's principal in Istio form (SPIFFE id without `spiffe://`);
    /// `None` for an anonymous (plaintext) caller.
    pub principal: Option<&'r str>,
    /// The claims of the JWT Envoy's `jwt_authn` filter verified; `None`
    /// when the request carried no token (see [`crate::auth`]).
    pub auth: Option<&'r Claims>,
    /// The request headers.
    pub headers: &'r H,
    /// The connection's addresses and server name, as far as the
    /// configuration reads them ([`Needs`](super::Needs)); absent = unknown.
    pub connection: ConnectionInfo<'r>,
}

/// What the engine knows of the connection a request came on. Every field
/// is `None` when unknown: a rule that reads an unknown address never admits
/// the request, and a deny rule that reads it refuses it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionInfo<'r> {
    /// The direct peer: the other end of the TCP connection, which no
    /// header changes (`ipBlocks`, `source.ip`). Unknown when the proxy
    /// replaced the connection's address with one derived from
    /// `x-forwarded-for`.
    pub direct_peer: Option<IpAddr>,
    /// The original client as the proxy derives it from `x-forwarded-for`
    /// and its trusted hops, else the direct peer (`remoteIpBlocks`,
    /// `remote.ip`).
    pub remote: Option<IpAddr>,
    /// The address the request was received on (`destination.ip`).
    pub destination: Option<IpAddr>,
    /// The TLS server name the client sent (`connection.sni`); absent on
    /// plaintext and when the client sent none.
    pub sni: Option<&'r str>,
}

/// Identifies a rule of an [`Engine`](super::Engine): what admitted or
/// refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Index of the policy in the configuration.
    pub policy: u32,
    /// Index of the rule among all rules of the configuration.
    pub rule: u32,
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Forward the request.
    Allow,
    /// Answer with the deny status; never forward.
    Deny,
    /// Would be denied, but the policy that would deny it is in audit mode:
    /// forward, log and count. Either only audit allow policies apply and no
    /// rule admits the request, or an audit deny rule matches a request that
    /// would otherwise be forwarded.
    AuditDeny,
    /// Malformed or ambiguous request: answer 400.
    Reject,
}

impl Verdict {
    /// The lower-case name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::AuditDeny => "audit_deny",
            Verdict::Reject => "reject",
        }
    }
}

/// Why the verdict was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This rule of an allow policy admitted the request.
    Matched(RuleRef),
    /// This rule of a deny policy matched the request: the verdict is
    /// `deny` (enforce) or `audit_deny` (audit).
    Denied(RuleRef),
    /// No policy applies to the workload: the request passes.
    NoPolicy,
    /// Allow policies apply and no rule of them matched.
    NoMatch,
    /// Only deny policies apply and no rule of them matched: the request
    /// passes.
    NotDenied,
    /// The request is malformed or ambiguous.
    Malformed(RequestError),
    /// The path automaton failed (never expected; fails closed).
    Internal,
}

/// The engine's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'r> {
    /// What to do with the request.
    pub verdict: Verdict,
    /// The mode the verdict was given in: enforce if any applicable policy
    /// enforces, audit otherwise.
    pub mode: Mode,
    /// Why.
    pub reason: Reason,
    /// The canonical path that was judged; `None` when no policy applies or
    /// the request was malformed.
    pub path: Option<CanonicalPath<'r>>,
    /// Some applicable policy enforces. A request forwarded under an
    /// enforcing policy must carry the path that policy judged, even when an
    /// audit deny rule turned the verdict into `audit_deny`.
    pub enforced: bool,
}

impl Decision<'_> {
    /// The rule that admitted the request, if one did.
    pub fn matched(&self) -> Option<RuleRef> {
        match self.reason {
            Reason::Matched(r) => Some(r),
            _ => None,
        }
    }

    /// The deny rule that refused the request, if one did.
    pub fn denied_by(&self) -> Option<RuleRef> {
        match self.reason {
            Reason::Denied(r) => Some(r),
            _ => None,
        }
    }

    /// The rule the decision names: the allow rule that admitted the
    /// request or the deny rule that refused it.
    pub fn rule(&self) -> Option<RuleRef> {
        match self.reason {
            Reason::Matched(r) | Reason::Denied(r) => Some(r),
            _ => None,
        }
    }
}
