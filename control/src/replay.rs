//! `meshward-control replay`: logged requests judged again by the policies
//! derived from a set of manifests (a candidate), with the filter's engine.
//!
//! Each request log line gives the caller, the workload and its namespace,
//! the method, the authority, the path and (when logged) the port. The
//! request is judged as `check` judges one: every WasmPlugin derived for the
//! namespace and delivered to the workload decides it, and it is admitted
//! only if none denies it (a denial in audit mode counts as a denial). The
//! log carries no header, so header conditions are judged as for a request
//! without those headers; a line without a port is judged on the workload's
//! first container port.
//!
//! The report groups what the candidate would deny by workload, caller,
//! method and path template (paths generalized as `learn` does), compares
//! with the recorded verdict (newly denied, newly allowed), and counts the
//! hits of every rule of the namespaces the logs cover, listing those nothing
//! used. What would *break* is a denial of a request that reached the
//! workload when recorded (`allow`, `audit_deny`); a request refused then
//! (`deny`, `reject`) and still refused is reported apart (attack traffic,
//! malformed requests), so the same logs replayed against what `learn`
//! proposed from them break nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use meshward_filter::{Engine, Evaluator, Request, RuleRef, Verdict};
use serde::Serialize;

use crate::derive::{derive_namespace, Settings, LEARN_POLICY};
use crate::learn::generalize::Generalizer;
use crate::learn::logs::{At, LogStats, Record};
use crate::state::ClusterState;

/// The compiled WasmPlugins of one namespace.
struct Namespace {
    plugins: Vec<Plugin>,
    /// Per workload name: its evaluators and first port; `None` when the
    /// manifests do not have it.
    workloads: HashMap<String, Option<Workload>>,
}

struct Plugin {
    selector: Option<std::collections::BTreeMap<String, String>>,
    engine: Arc<Engine>,
}

struct Workload {
    evaluators: Vec<Evaluator>,
    first_port: Option<u16>,
}

/// The key of a group of requests: workload, caller, method, path shape,
/// verdict.
type GroupKey = (String, String, String, String, &'static str);

/// Requests grouped by workload, caller, method and path template.
#[derive(Default)]
struct Groups {
    paths: HashMap<String, Generalizer>,
    seen: BTreeMap<GroupKey, (u64, At)>,
}

impl Groups {
    fn add(&mut self, workload: &str, record: &Record, verdict: &'static str, at: &At) {
        let path = record.path_only();
        let g = self.paths.entry(workload.to_string()).or_default();
        let shape = if record.grpc == Some(true) || !g.add(path) {
            path.to_string()
        } else {
            g.template_of(path).unwrap_or_else(|| path.to_string())
        };
        let caller = record.principal.clone().unwrap_or_else(|| "anonymous".into());
        let key = (workload.to_string(), caller, record.method.clone(), shape, verdict);
        let e = self.seen.entry(key).or_insert((0, at.clone()));
        e.0 += 1;
    }

    fn finish(self, stats: &LogStats) -> Vec<Group> {
        let mut merged: BTreeMap<GroupKey, (u64, At)> = BTreeMap::new();
        for ((workload, caller, method, shape, verdict), (count, at)) in self.seen {
            let path = self
                .paths
                .get(&workload)
                .and_then(|g| g.template_of(&shape))
                .unwrap_or(shape);
            let e = merged
                .entry((workload, caller, method, path, verdict))
                .or_insert((0, at.clone()));
            e.0 += count;
            if at < e.1 {
                e.1 = at;
            }
        }
        let mut groups: Vec<Group> = merged
            .into_iter()
            .map(|((workload, caller, method, path, verdict), (count, at))| Group {
                workload,
                caller,
                method,
                path,
                verdict,
                count,
                example: stats.place(&at).to_string(),
            })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key().cmp(&b.key())));
        groups
    }
}

/// Requests of one workload, caller, method and path template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// `namespace/workload`.
    pub workload: String,
    /// The caller's principal, or `anonymous`.
    pub caller: String,
    /// The method.
    pub method: String,
    /// The path template.
    pub path: String,
    /// The candidate's verdict (for newly allowed ones: the recorded one).
    pub verdict: &'static str,
    /// How many requests.
    pub count: u64,
    /// Where the first of them was read (`file:line`).
    pub example: String,
}

impl Group {
    fn key(&self) -> (&str, &str, &str, &str, &str) {
        (&self.workload, &self.caller, &self.method, &self.path, self.verdict)
    }
}

/// The hits of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleHits {
    /// `policy/rule` (`namespace/allowlist/rule`).
    pub rule: String,
    /// Requests it admitted.
    pub hits: u64,
}

/// Everything `replay` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Lines read.
    pub lines: u64,
    /// Lines without the marker.
    pub skipped: u64,
    /// Lines with the marker that could not be read, as `file:line: message`.
    pub bad: Vec<String>,
    /// Requests judged.
    pub replayed: u64,
    /// Of them, admitted by the candidate.
    pub admitted: u64,
    /// Of them, requests that reached the workload when recorded (`allow`,
    /// `audit_deny`) and that the candidate denies (also in audit mode) or
    /// rejects: what would break. `replay` exits 1 when this is not 0.
    pub denied: u64,
    /// Of them, requests refused when recorded (`deny`, `reject`) and by the
    /// candidate too: traffic that never reached the workload.
    pub still_refused: u64,
    /// Lines not judged: without workload or namespace.
    pub unattributed: u64,
    /// Lines not judged: their workload is not in the manifests
    /// (`namespace/name`, lines).
    pub unknown_workloads: Vec<(String, u64)>,
    /// What the candidate denies of the traffic that reached the workload,
    /// grouped, most frequent first.
    pub denials: Vec<Group>,
    /// What stays refused, grouped.
    pub refused: Vec<Group>,
    /// Requests admitted when recorded (`allow`) that the candidate denies.
    pub newly_denied: Vec<Group>,
    /// Requests denied when recorded (`deny`, `audit_deny`, `reject`) that
    /// the candidate admits; `verdict` is the recorded one.
    pub newly_allowed: Vec<Group>,
    /// Every rule of the namespaces replayed, with its hits, by name.
    pub rules: Vec<RuleHits>,
}

impl Report {
    /// Rules nothing used.
    pub fn unused(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter(|r| r.hits == 0).map(|r| r.rule.as_str())
    }
}

/// Judges requests against the policies derived from a state.
pub struct Replayer<'s> {
    state: &'s ClusterState,
    settings: Settings,
    namespaces: HashMap<String, Namespace>,
    hits: HashMap<String, u64>,
    report: Report,
    denials: Groups,
    refused: Groups,
    newly_denied: Groups,
    newly_allowed: Groups,
    unknown: BTreeMap<String, u64>,
}

impl<'s> Replayer<'s> {
    /// A replayer of the policies derived from `state`.
    pub fn new(state: &'s ClusterState, settings: Settings) -> Self {
        Self {
            state,
            settings,
            namespaces: HashMap::new(),
            hits: HashMap::new(),
            report: Report::default(),
            denials: Groups::default(),
            refused: Groups::default(),
            newly_denied: Groups::default(),
            newly_allowed: Groups::default(),
            unknown: BTreeMap::new(),
        }
    }

    fn namespace(&mut self, ns: &str) -> &mut Namespace {
        let (state, settings, hits) = (self.state, &self.settings, &mut self.hits);
        self.namespaces.entry(ns.to_string()).or_insert_with(|| {
            let desired = derive_namespace(state, ns, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            let mut plugins = Vec::new();
            for p in desired.wasm_plugins {
                // Derivation compiles every configuration it emits.
                let Ok(engine) = Engine::compile(&p.spec.plugin_config) else {
                    continue;
                };
                let mut first = 0u32;
                for (pi, policy) in p.spec.plugin_config.policies.iter().enumerate() {
                    for ri in 0..policy.rules.len() as u32 {
                        let r = RuleRef {
                            policy: pi as u32,
                            rule: first + ri,
                        };
                        if policy.name != LEARN_POLICY {
                            hits.entry(format!("{}/{}", policy.name, engine.rule_name(r)))
                                .or_insert(0);
                        }
                    }
                    first += policy.rules.len() as u32;
                }
                plugins.push(Plugin {
                    selector: p.spec.selector.as_ref().map(|s| s.match_labels.clone()),
                    engine: Arc::new(engine),
                });
            }
            Namespace {
                plugins,
                workloads: HashMap::new(),
            }
        })
    }

    /// Judges one logged request.
    pub fn replay(&mut self, record: Record, at: At) {
        let (Some(name), Some(ns)) = (record.workload.clone(), record.namespace.clone()) else {
            self.report.unattributed += 1;
            return;
        };
        let state = self.state;
        let namespace = self.namespace(&ns);
        let plugins = &namespace.plugins;
        let workload = namespace.workloads.entry(name.clone()).or_insert_with(|| {
            let w = state.namespace(&ns).and_then(|n| {
                n.templates()
                    .filter(|(_, n, _)| *n == name)
                    .find_map(|(_, _, w)| w)
                    .or_else(|| n.pod(&name))
            })?;
            let evaluators = plugins
                .iter()
                .filter(|p| {
                    p.selector
                        .as_ref()
                        .is_none_or(|s| crate::derive::selects(s, Some(&w.labels)))
                })
                .map(|p| {
                    let selection = p.engine.select(|k| w.labels.get(k).cloned());
                    Evaluator::new(p.engine.clone(), selection)
                })
                .collect();
            Some(Workload {
                evaluators,
                first_port: w.first_port,
            })
        });
        let workload_name = format!("{ns}/{name}");
        let Some(workload) = workload.as_mut() else {
            *self.unknown.entry(workload_name).or_default() += 1;
            return;
        };
        let headers: [(&str, &str); 0] = [];
        let request = Request {
            method: &record.method,
            path: &record.path,
            authority: record.authority.as_deref(),
            port: record.port.or(workload.first_port),
            principal: record.principal.as_deref(),
            headers: &headers[..],
        };
        // Any denial wins, then an audit denial; otherwise admitted, by the
        // rules that matched.
        let mut verdict = Verdict::Allow;
        let mut matched = Vec::new();
        for ev in &mut workload.evaluators {
            let d = ev.evaluate(&request);
            let rank = |v: Verdict| match v {
                Verdict::Deny | Verdict::Reject => 2,
                Verdict::AuditDeny => 1,
                Verdict::Allow => 0,
            };
            if rank(d.verdict) > rank(verdict) {
                verdict = d.verdict;
            }
            if let Some(m) = d.matched() {
                let engine = ev.engine();
                matched.push(format!("{}/{}", engine.policy_name(m.policy), engine.rule_name(m)));
            }
        }
        self.report.replayed += 1;
        let recorded_admitted = record.verdict == "allow";
        if verdict == Verdict::Allow {
            self.report.admitted += 1;
            for rule in matched {
                *self.hits.entry(rule).or_default() += 1;
            }
            if !recorded_admitted {
                let recorded = recorded_verdict(&record.verdict);
                self.newly_allowed.add(&workload_name, &record, recorded, &at);
            }
        } else if record.reached() {
            self.report.denied += 1;
            self.denials.add(&workload_name, &record, verdict.as_str(), &at);
            if recorded_admitted {
                self.newly_denied.add(&workload_name, &record, verdict.as_str(), &at);
            }
        } else {
            self.report.still_refused += 1;
            self.refused.add(&workload_name, &record, verdict.as_str(), &at);
        }
    }

    /// The report, with the line counts of `stats`.
    pub fn finish(mut self, stats: &LogStats) -> Report {
        self.report.lines = stats.lines;
        self.report.skipped = stats.skipped;
        self.report.bad = stats
            .bad
            .iter()
            .map(|b| format!("{}: {}", stats.place(&b.at), b.message))
            .collect();
        self.report.unknown_workloads = self.unknown.into_iter().collect();
        self.report.denials = self.denials.finish(stats);
        self.report.refused = self.refused.finish(stats);
        self.report.newly_denied = self.newly_denied.finish(stats);
        self.report.newly_allowed = self.newly_allowed.finish(stats);
        let mut rules: Vec<RuleHits> = self
            .hits
            .into_iter()
            .filter(|(rule, _)| !rule.starts_with(LEARN_POLICY))
            .map(|(rule, hits)| RuleHits { rule, hits })
            .collect();
        rules.sort_by(|a, b| a.rule.cmp(&b.rule));
        self.report.rules = rules;
        self.report
    }
}

fn recorded_verdict(v: &str) -> &'static str {
    match v {
        "deny" => "deny",
        "audit_deny" => "audit_deny",
        "reject" => "reject",
        _ => "other",
    }
}
