//! Evaluation: one request against the compiled engine.
//!
//! An [`Evaluator`] first canonicalizes the request (a malformed one is
//! decided without looking at any rule), then gathers the candidate clauses
//! from the indexes in one pass each — the path index, the identity maps, the
//! unindexed list — and verifies every candidate against all fields of its
//! clause and its rule, in configuration order. An enforce deny rule that
//! matches refuses the request at once. Otherwise the first enforce allow
//! rule that matches admits it; with only audit allow policies applying, the
//! first audit allow rule that matches does; an audit deny rule that matches
//! a request so admitted makes it `audit_deny`.
//!
//! Matching a field follows one shape everywhere: a positive list (absent:
//! any value; present: one entry must match) and a negative list (no entry may
//! match), see `passes`. Header values are matched element by element, the
//! elements being the comma-separated parts of every field line.

use std::sync::Arc;

use std::net::IpAddr;

use super::{
    is_grpc, path_refs, Clause, CompiledCondition, CompiledRule, CompiledSource, ConditionKey, ConditionValues,
    ConnectionInfo, Decision, Engine, Headers, Reason, Request, RuleRef, Selection, Values, Verdict,
};
use crate::address::Cidr;
use crate::auth::{Claim, Claims};
use crate::canonical::{
    canonicalize_authority, canonicalize_path, namespace_of, validate_method, Authority, CanonicalPath, RequestError,
};
use crate::config::{Action, Mode};
use crate::paths::{PathId, PathScratch};
use crate::pattern::MatchStr;

/// Per-evaluator buffers, reused across requests.
#[derive(Debug, Default)]
struct Scratch {
    matched_paths: Vec<PathId>,
    candidates: Vec<u32>,
    paths: PathScratch,
}

/// Evaluates requests for one workload. Owns the mutable search state, so
/// keep one per thread (one per wasm VM).
#[derive(Debug)]
pub struct Evaluator {
    engine: Arc<Engine>,
    selection: Selection,
    scratch: Scratch,
}

/// A request's canonical attributes.
struct Canonical<'r> {
    method: &'r str,
    path: CanonicalPath<'r>,
    authority: Option<Authority<'r>>,
}

impl Evaluator {
    /// An evaluator for the workload `selection` was made for.
    pub fn new(engine: Arc<Engine>, selection: Selection) -> Self {
        Self {
            engine,
            selection,
            scratch: Scratch::default(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The applicable policies.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The decision for a request that cannot be evaluated as received, the
    /// one [`Evaluator::evaluate`] gives when canonicalization fails: reject
    /// (audit_deny if only audit policies apply); allow if no policy applies.
    pub fn malformed(&self, error: RequestError) -> Decision<'static> {
        let sel = &self.selection;
        let (verdict, mode, reason) = match (sel.enforce_count(), sel.audit_count()) {
            (0, 0) => (Verdict::Allow, self.engine.mode, Reason::NoPolicy),
            (0, _) => (Verdict::AuditDeny, Mode::Audit, Reason::Malformed(error)),
            _ => (Verdict::Reject, Mode::Enforce, Reason::Malformed(error)),
        };
        Decision {
            verdict,
            mode,
            reason,
            path: None,
            enforced: sel.enforce_count() > 0,
        }
    }

    /// Decides one request.
    pub fn evaluate<'r, H: Headers + ?Sized>(&mut self, req: &Request<'r, H>) -> Decision<'r> {
        let sel = &self.selection;
        if sel.enforce_count() == 0 && sel.audit_count() == 0 {
            return Decision {
                verdict: Verdict::Allow,
                mode: self.engine.mode,
                reason: Reason::NoPolicy,
                path: None,
                enforced: false,
            };
        }
        let canonical = match canonicalize(req) {
            Ok(c) => c,
            Err(e) => return self.malformed(e),
        };
        let (verdict, mode, reason) = match self.decide(req, &canonical) {
            Ok(v) => v,
            Err(_) if self.selection.enforce_count() > 0 => (Verdict::Deny, Mode::Enforce, Reason::Internal),
            Err(_) => (Verdict::AuditDeny, Mode::Audit, Reason::Internal),
        };
        Decision {
            verdict,
            mode,
            reason,
            path: Some(canonical.path),
            enforced: self.selection.enforce_count() > 0,
        }
    }

    /// The verdict, the mode of the policies that gave it, and why.
    ///
    /// Istio's order: an enforce deny rule that matches refuses the request
    /// whatever else applies. Otherwise the allow policies decide as they
    /// would alone (enforce ones if any apply, else audit ones; none: the
    /// request passes). An audit deny rule that matches a request they let
    /// through turns the verdict into `audit_deny`.
    fn decide<H: Headers + ?Sized>(
        &mut self,
        req: &Request<'_, H>,
        c: &Canonical<'_>,
    ) -> Result<(Verdict, Mode, Reason), regex_automata::MatchError> {
        let engine = &*self.engine;
        let sel = &self.selection;
        let s = &mut self.scratch;
        s.matched_paths.clear();
        engine.paths.find(c.path.path(), &mut s.paths, &mut s.matched_paths)?;
        s.matched_paths.sort_unstable();
        s.matched_paths.dedup();

        s.candidates.clear();
        for &p in &s.matched_paths {
            s.candidates.extend_from_slice(engine.path_postings.get(p));
        }
        let namespace = req.principal.and_then(namespace_of);
        if let Some(list) = req.principal.and_then(|p| engine.principal_index.get(p)) {
            s.candidates.extend_from_slice(list);
        }
        if let Some(list) = namespace.and_then(|n| engine.namespace_index.get(n)) {
            s.candidates.extend_from_slice(list);
        }
        s.candidates.extend_from_slice(&engine.unindexed);
        s.candidates.sort_unstable();
        s.candidates.dedup();

        let method_bit = engine
            .methods
            .iter()
            .position(|m| **m == *c.method)
            .map_or(0, |bit| 1u64 << bit);
        let ctx = MatchContext {
            method_bit,
            // Read only if a clause asks: one pass over the header list.
            grpc: engine.reads_grpc && is_grpc(req.headers),
            path_refs: &engine.path_refs,
            path_ids: &s.matched_paths,
            authority: c.authority.as_ref(),
            port: req.port,
            principal: req.principal,
            namespace,
            connection: req.connection,
            auth: req.auth,
        };
        let allow_enforce = sel.count(Action::Allow, Mode::Enforce) > 0;
        let allow_audit = sel.count(Action::Allow, Mode::Audit) > 0;
        let deny_enforce = sel.count(Action::Deny, Mode::Enforce) > 0;
        let deny_audit = sel.count(Action::Deny, Mode::Audit) > 0;
        let mut first_allow = None;
        let mut first_audit_allow = None;
        let mut first_audit_deny = None;
        for &ci in &s.candidates {
            let Some(clause) = engine.clauses.get(ci as usize) else {
                continue;
            };
            let Some(rule) = engine.rules.get(clause.rule as usize) else {
                continue;
            };
            if !sel.applies(rule.policy) {
                continue;
            }
            let action = engine.policy_action(rule.policy);
            let policy_mode = engine.policy_mode(rule.policy);
            // Skip what can no longer change the decision.
            let settled = match (action, policy_mode) {
                (Action::Deny, Mode::Enforce) => false,
                (Action::Deny, Mode::Audit) => first_audit_deny.is_some(),
                (Action::Allow, Mode::Enforce) => first_allow.is_some(),
                (Action::Allow, Mode::Audit) => allow_enforce || first_audit_allow.is_some(),
            };
            let deny = action == Action::Deny;
            if settled || !(ctx.clause_matches(clause, deny) && ctx.rule_matches(rule, deny, req.headers)) {
                continue;
            }
            let r = RuleRef {
                policy: rule.policy,
                rule: clause.rule,
            };
            match (action, policy_mode) {
                (Action::Deny, Mode::Enforce) => return Ok((Verdict::Deny, Mode::Enforce, Reason::Denied(r))),
                (Action::Deny, Mode::Audit) => first_audit_deny = Some(r),
                (Action::Allow, Mode::Enforce) => first_allow = Some(r),
                (Action::Allow, Mode::Audit) => first_audit_allow = Some(r),
            }
            if first_allow.is_some() && !deny_enforce && (!deny_audit || first_audit_deny.is_some()) {
                break;
            }
        }
        let allowed = if allow_enforce {
            match first_allow {
                Some(r) => (Verdict::Allow, Mode::Enforce, Reason::Matched(r)),
                None => (Verdict::Deny, Mode::Enforce, Reason::NoMatch),
            }
        } else if allow_audit {
            match first_audit_allow {
                Some(r) => (Verdict::Allow, Mode::Audit, Reason::Matched(r)),
                None => (Verdict::AuditDeny, Mode::Audit, Reason::NoMatch),
            }
        } else {
            let mode = if deny_enforce { Mode::Enforce } else { Mode::Audit };
            (Verdict::Allow, mode, Reason::NotDenied)
        };
        Ok(match (allowed.0, first_audit_deny) {
            (Verdict::Allow | Verdict::AuditDeny, Some(r)) => (Verdict::AuditDeny, Mode::Audit, Reason::Denied(r)),
            _ => allowed,
        })
    }
}

fn canonicalize<'r, H: ?Sized>(req: &Request<'r, H>) -> Result<Canonical<'r>, RequestError> {
    let method = validate_method(req.method)?;
    let path = canonicalize_path(req.path)?;
    let authority = match req.authority {
        None | Some("") => None,
        Some(a) => Some(canonicalize_authority(a)?),
    };
    Ok(Canonical {
        method,
        path,
        authority,
    })
}

/// One request's attributes, in the form clauses are verified against.
struct MatchContext<'a> {
    /// The request method's bit in the engine's method table; 0 if no rule
    /// names it.
    method_bit: u64,
    /// The request is gRPC (read only when some clause is gRPC-only).
    grpc: bool,
    path_refs: &'a [PathId],
    /// Sorted.
    path_ids: &'a [PathId],
    authority: Option<&'a Authority<'a>>,
    port: Option<u16>,
    principal: Option<&'a str>,
    namespace: Option<&'a str>,
    connection: ConnectionInfo<'a>,
    /// The verified JWT's claims; `None` without one.
    auth: Option<&'a Claims>,
}

impl MatchContext<'_> {
    fn path_matched(&self, id: PathId) -> bool {
        self.path_ids.binary_search(&id).is_ok()
    }

    /// Whether a clause matches; `deny`: the clause is a deny policy's, whose
    /// negative host field passes a request without authority.
    fn clause_matches(&self, cl: &Clause, deny: bool) -> bool {
        let method_ok = cl.methods.is_none_or(|m| m & self.method_bit != 0) && cl.not_methods() & self.method_bit == 0;
        let port_ok = cl.ports().is_none_or(|ps| self.port.is_some_and(|p| ps.contains(&p)));
        // An unknown port fails `notPorts` in an allow rule, passes it in a
        // deny rule.
        let not_ports_ok = match self.port {
            Some(p) => !cl.not_ports().contains(&p),
            None => deny || cl.not_ports().is_empty(),
        };
        let paths = cl.paths.as_ref().map(|r| path_refs(self.path_refs, r));
        let paths_ok = passes(paths, path_refs(self.path_refs, &cl.not_paths), |&p| {
            self.path_matched(p)
        });
        // A request without authority fails every host field, negative ones
        // included, except a deny rule's `notHosts` (as in Istio).
        let hosts_ok = match self.authority {
            Some(a) => passes(cl.hosts(), cl.not_hosts(), |h| h.matches(a.host(), a.port())),
            None => cl.hosts().is_none() && (deny || cl.not_hosts().is_empty()),
        };
        let grpc_ok = !cl.grpc || self.grpc;
        grpc_ok && method_ok && port_ok && not_ports_ok && paths_ok && hosts_ok
    }

    fn rule_matches<H: Headers + ?Sized>(&self, rule: &CompiledRule, deny: bool, headers: &H) -> bool {
        rule.from
            .as_ref()
            .is_none_or(|from| from.iter().any(|s| self.source_matches(s, deny)))
            && rule.when.iter().all(|c| self.condition_holds(c, deny, headers))
    }

    /// Whether a `when` condition holds. Headers as always: `values` needs
    /// the header, `notValues` alone admits its absence. Another attribute
    /// the request lacks (no identity, no SNI) fails the condition in an
    /// allow rule; in a deny rule it fails `values` and passes `notValues`,
    /// as in Istio. An address or port the proxy could not establish fails
    /// the condition in an allow rule and satisfies it in a deny rule.
    fn condition_holds<H: Headers + ?Sized>(&self, c: &CompiledCondition, deny: bool, headers: &H) -> bool {
        let c_ = &self.connection;
        match (&c.key, &c.values) {
            (ConditionKey::Header(name), ConditionValues::Strings(v)) => header_holds(name, v, headers),
            (ConditionKey::SourcePrincipal, ConditionValues::Strings(v)) => string_holds(v, self.principal, deny),
            (ConditionKey::SourceNamespace, ConditionValues::Strings(v)) => string_holds(v, self.namespace, deny),
            (ConditionKey::ConnectionSni, ConditionValues::Strings(v)) => string_holds(v, c_.sni, deny),
            (ConditionKey::SourceIp, ConditionValues::Addresses(v)) => address_holds(v, c_.direct_peer, deny),
            (ConditionKey::RemoteIp, ConditionValues::Addresses(v)) => address_holds(v, c_.remote, deny),
            (ConditionKey::DestinationIp, ConditionValues::Addresses(v)) => address_holds(v, c_.destination, deny),
            (ConditionKey::DestinationPort, ConditionValues::Ports(v)) => match self.port {
                Some(p) => passes(v.positive.as_deref(), &v.negative, |&q| q == p),
                None => deny && !v.positive.as_ref().is_some_and(Vec::is_empty),
            },
            (ConditionKey::AuthPrincipal, ConditionValues::RequestPrincipals(v)) => match self.auth {
                Some(claims) => {
                    let (iss, sub) = (claims.str("iss"), claims.str("sub"));
                    passes(v.positive.as_deref(), &v.negative, |m| m.matches(iss, sub))
                }
                None => deny && v.positive.is_none(),
            },
            (ConditionKey::AuthAudiences, ConditionValues::Strings(v)) => self.claim_holds(v, deny, |c| c.get("aud")),
            (ConditionKey::AuthPresenter, ConditionValues::Strings(v)) => self.claim_holds(v, deny, |c| c.get("azp")),
            (ConditionKey::AuthClaim(path), ConditionValues::Strings(v)) => self.claim_holds(v, deny, |c| c.path(path)),
            // Compilation pairs every key with its kind of values.
            _ => false,
        }
    }

    /// Whether a claim of the verified token passes a condition's values.
    /// Without a verified token it fails in an allow rule, however it is
    /// written (as a `from` entry naming request principals does); in a deny
    /// rule, as in Istio, it fails `values` and passes `notValues`. With a
    /// token, an absent claim fails `values` and passes `notValues`, as in
    /// Istio.
    fn claim_holds<'c>(
        &'c self,
        v: &Values<MatchStr>,
        deny: bool,
        claim: impl FnOnce(&'c Claims) -> Option<&'c Claim>,
    ) -> bool {
        let Some(claims) = self.auth else {
            return deny && v.positive.is_none();
        };
        let claim = claim(claims);
        passes(v.positive.as_deref(), &v.negative, |m| {
            claim.is_some_and(|c| c.matches(m))
        })
    }

    /// Whether a caller matches a `from` entry. In an allow rule (`deny`
    /// false), an anonymous caller fails every identity field the entry sets
    /// (negative ones included), and a principal without a namespace fails
    /// namespace fields. In a deny rule, as in Istio, a missing principal or namespace
    /// fails the positive field and passes the negative one.
    ///
    /// Address fields: an address the proxy could not establish fails them
    /// in an allow rule and satisfies them in a deny rule.
    ///
    /// The fields read from the verified JWT follow the identity rule on
    /// their own: without a token, an allow rule's entry that sets one fails,
    /// and a deny rule's entry fails `requestPrincipals` and passes
    /// `notRequestPrincipals`. An entry that sets only JWT fields does not
    /// look at the mTLS identity.
    fn source_matches(&self, s: &CompiledSource, deny: bool) -> bool {
        let principal_ok = (s.principals.is_none() && s.not_principals.is_empty())
            || match self.principal {
                Some(p) => passes(s.principals.as_deref(), &s.not_principals, |m| m.matches(p)),
                None => deny && s.principals.is_none(),
            };
        let jwt_ok = s.jwt.as_deref().is_none_or(|j| match self.auth {
            Some(claims) => {
                let (iss, sub) = (claims.str("iss"), claims.str("sub"));
                passes(j.request_principals.as_deref(), &j.not_request_principals, |m| {
                    m.matches(iss, sub)
                })
            }
            None => deny && j.request_principals.is_none(),
        });
        let namespace_ok = (s.namespaces.is_none() && s.not_namespaces.is_empty())
            || match self.namespace {
                Some(ns) => passes(s.namespaces.as_deref(), &s.not_namespaces, |m| m.matches(ns)),
                None => deny && s.namespaces.is_none(),
            };
        principal_ok
            && namespace_ok
            && jwt_ok
            && address_holds(&s.ip_blocks, self.connection.direct_peer, deny)
            && address_holds(&s.remote_ip_blocks, self.connection.remote, deny)
    }
}

/// Whether an address passes a pair of block lists; see
/// [`MatchContext::source_matches`] for an unknown address (an empty
/// positive list holds nothing, known or not).
fn address_holds(v: &Values<Cidr>, ip: Option<IpAddr>, deny: bool) -> bool {
    v.is_unset()
        || match ip {
            Some(ip) => passes(v.positive.as_deref(), &v.negative, |c| c.contains(ip)),
            None => deny && !v.positive.as_ref().is_some_and(Vec::is_empty),
        }
}

/// Whether a string attribute passes a condition's values; an absent one
/// fails in an allow rule and, in a deny rule, passes `notValues` only.
fn string_holds(v: &Values<MatchStr>, value: Option<&str>, deny: bool) -> bool {
    match value {
        Some(s) => passes(v.positive.as_deref(), &v.negative, |m| m.matches(s)),
        None => deny && v.positive.is_none(),
    }
}

/// Whether a value passes a positive list (absent = any value; present = one
/// must match) and a negative list (none may match).
fn passes<T>(positive: Option<&[T]>, negative: &[T], matches: impl Fn(&T) -> bool) -> bool {
    positive.is_none_or(|p| p.iter().any(&matches)) && !negative.iter().any(matches)
}

/// Splits a header value into its comma-separated elements, trimmed of
/// optional whitespace; empty elements are skipped, but a value with no
/// non-empty element counts as one empty element.
fn header_elements(value: &str) -> impl Iterator<Item = &str> {
    let mut any = false;
    let mut parts = value.split(',');
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        for part in parts.by_ref() {
            let t = part.trim_matches([' ', '\t']);
            if !t.is_empty() {
                any = true;
                return Some(t);
            }
        }
        done = true;
        (!any).then_some("")
    })
}

/// Whether a condition on header `name` holds.
fn header_holds<H: Headers + ?Sized>(name: &str, v: &Values<MatchStr>, headers: &H) -> bool {
    let mut present = false;
    for value in headers.values(name) {
        present = true;
        let all_pass =
            header_elements(value).all(|item| passes(v.positive.as_deref(), &v.negative, |m| m.matches(item)));
        if !all_pass {
            return false;
        }
    }
    // `values` requires the header; `notValues` alone admits its absence.
    present || v.positive.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn header_elements_split() {
        fn e(v: &str) -> Vec<&str> {
            header_elements(v).collect()
        }
        assert_eq!(e("a"), vec!["a"]);
        assert_eq!(e("a, b,c"), vec!["a", "b", "c"]);
        assert_eq!(e("a,,b, "), vec!["a", "b"]);
        assert_eq!(e(""), vec![""]);
        assert_eq!(e(" , "), vec![""]);
    }
}
