//! Evaluation: one request against the compiled engine.
//!
//! An [`Evaluator`] first canonicalizes the request (a malformed one is
//! decided without looking at any rule), then gathers the candidate clauses
//! from the indexes in one pass each — the path index, the identity maps, the
//! unindexed list — and verifies every candidate against all fields of its
//! clause and its rule, in configuration order. The first enforce rule that
//! matches admits the request; with only audit policies applying, the first
//! audit rule that matches does.
//!
//! Matching a field follows one shape everywhere: a positive list (absent:
//! any value; present: one entry must match) and a negative list (no entry may
//! match), see `passes`. Header values are matched element by element, the
//! elements being the comma-separated parts of every field line.

use std::sync::Arc;

use super::{
    is_grpc, path_refs, Clause, CompiledCondition, CompiledRule, CompiledSource, Decision, Engine, Headers, Reason,
    Request, RuleRef, Selection, Verdict,
};
use crate::canonical::{
    canonicalize_authority, canonicalize_path, namespace_of, validate_method, Authority, CanonicalPath, RequestError,
};
use crate::config::Mode;
use crate::paths::{PathId, PathScratch};

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
            };
        }
        let mode = if sel.enforce_count() > 0 {
            Mode::Enforce
        } else {
            Mode::Audit
        };
        let canonical = match canonicalize(req) {
            Ok(c) => c,
            Err(e) => return self.malformed(e),
        };
        let (verdict, reason) = match self.decide(req, &canonical) {
            Ok(v) => v,
            Err(_) => (
                if mode == Mode::Enforce {
                    Verdict::Deny
                } else {
                    Verdict::AuditDeny
                },
                Reason::Internal,
            ),
        };
        Decision {
            verdict,
            mode,
            reason,
            path: Some(canonical.path),
        }
    }

    fn decide<H: Headers + ?Sized>(
        &mut self,
        req: &Request<'_, H>,
        c: &Canonical<'_>,
    ) -> Result<(Verdict, Reason), regex_automata::MatchError> {
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
        };
        let mut first_audit = None;
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
            let policy_mode = engine.policy_mode(rule.policy);
            if policy_mode == Mode::Audit && first_audit.is_some() {
                continue;
            }
            if !(ctx.clause_matches(clause) && ctx.rule_matches(rule, req.headers)) {
                continue;
            }
            let r = RuleRef {
                policy: rule.policy,
                rule: clause.rule,
            };
            if policy_mode == Mode::Enforce {
                return Ok((Verdict::Allow, Reason::Matched(r)));
            }
            first_audit = Some(r);
        }
        Ok(if sel.enforce_count() > 0 {
            (Verdict::Deny, Reason::NoMatch)
        } else if let Some(r) = first_audit {
            (Verdict::Allow, Reason::Matched(r))
        } else {
            (Verdict::AuditDeny, Reason::NoMatch)
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
}

impl MatchContext<'_> {
    fn path_matched(&self, id: PathId) -> bool {
        self.path_ids.binary_search(&id).is_ok()
    }

    fn clause_matches(&self, cl: &Clause) -> bool {
        let method_ok = cl.methods.is_none_or(|m| m & self.method_bit != 0);
        let port_ok = cl.ports().is_none_or(|ps| self.port.is_some_and(|p| ps.contains(&p)));
        let paths = cl.paths.as_ref().map(|r| path_refs(self.path_refs, r));
        let paths_ok = passes(paths, path_refs(self.path_refs, &cl.not_paths), |&p| {
            self.path_matched(p)
        });
        // A request without authority fails every host field, negative ones included.
        let hosts_ok = (cl.hosts().is_none() && cl.not_hosts().is_empty())
            || self
                .authority
                .is_some_and(|a| passes(cl.hosts(), cl.not_hosts(), |h| h.matches(a.host(), a.port())));
        let grpc_ok = !cl.grpc || self.grpc;
        grpc_ok && method_ok && port_ok && paths_ok && hosts_ok
    }

    fn rule_matches<H: Headers + ?Sized>(&self, rule: &CompiledRule, headers: &H) -> bool {
        rule.from
            .as_ref()
            .is_none_or(|from| from.iter().any(|s| self.source_matches(s)))
            && rule.when.iter().all(|c| condition_holds(c, headers))
    }

    fn source_matches(&self, s: &CompiledSource) -> bool {
        // Every source entry sets some field, so an anonymous caller never
        // matches; a principal without a namespace fails namespace fields.
        let Some(principal) = self.principal else { return false };
        passes(s.principals.as_deref(), &s.not_principals, |m| m.matches(principal))
            && ((s.namespaces.is_none() && s.not_namespaces.is_empty())
                || self
                    .namespace
                    .is_some_and(|ns| passes(s.namespaces.as_deref(), &s.not_namespaces, |m| m.matches(ns))))
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

fn condition_holds<H: Headers + ?Sized>(c: &CompiledCondition, headers: &H) -> bool {
    let mut present = false;
    for value in headers.values(&c.header) {
        present = true;
        let all_pass =
            header_elements(value).all(|item| passes(c.values.as_deref(), &c.not_values, |m| m.matches(item)));
        if !all_pass {
            return false;
        }
    }
    // `values` requires the header; `notValues` alone admits its absence.
    present || c.values.is_none()
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
