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
    /// Hits per rule, by the rule's index in the engine ([`RuleRef::rule`]).
    hits: Vec<u64>,
    /// `policy/rule` per rule, by the same index; `None` for the rules of
    /// [`LEARN_POLICY`], which are not reported.
    names: Vec<Option<String>>,
}

struct Workload {
    /// The evaluators of the plugins delivered to it, with the plugin's
    /// index in [`Namespace::plugins`].
    evaluators: Vec<(usize, Evaluator)>,
    first_port: Option<u16>,
}

/// The key of a group of requests: workload, caller, method, path shape,
/// verdict.
type GroupKey = (String, String, String, String, &'static str);

/// Requests grouped by workload, caller, method and path template.
///
/// Called for most lines of a log (every request a learn namespace
/// recorded as `audit_deny` is "newly allowed"), so a line that falls in an
/// existing group allocates nothing: the key is written into a reused
/// buffer ([`encode`]) and looked up by `&str`.
#[derive(Default)]
struct Groups {
    paths: HashMap<String, Generalizer>,
    /// [`encode`]d (workload, caller, method, path shape, verdict) → count
    /// and first line.
    seen: HashMap<String, (u64, At)>,
    key: String,
    shape: String,
}

/// Appends `field` to `key` as `<length>:<field>`, so that no field's
/// content can be taken for a separator.
fn encode(key: &mut String, field: &str) {
    use std::fmt::Write as _;
    let _ = write!(key, "{}:{field}", field.len());
}

/// The fields [`encode`] wrote, in order.
fn decode(mut key: &str) -> Vec<&str> {
    let mut fields = Vec::with_capacity(5);
    while let Some((len, rest)) = key.split_once(':') {
        let Ok(len) = len.parse::<usize>() else { break };
        let Some(field) = rest.get(..len) else { break };
        fields.push(field);
        key = rest.get(len..).unwrap_or_default();
    }
    fields
}

impl Groups {
    fn add(&mut self, workload: &str, record: &Record, verdict: &'static str, at: &At) {
        let path = record.path_only();
        let g = match self.paths.get_mut(workload) {
            Some(g) => g,
            None => self.paths.entry(workload.to_string()).or_default(),
        };
        self.shape.clear();
        if record.grpc == Some(true) || !g.add(path) || !g.template_into(path, &mut self.shape) {
            self.shape.clear();
            self.shape.push_str(path);
        }
        self.key.clear();
        encode(&mut self.key, workload);
        encode(&mut self.key, record.principal.as_deref().unwrap_or("anonymous"));
        encode(&mut self.key, &record.method);
        encode(&mut self.key, &self.shape);
        encode(&mut self.key, verdict);
        match self.seen.get_mut(self.key.as_str()) {
            Some(e) => e.0 += 1,
            None => {
                self.seen.insert(self.key.clone(), (1, at.clone()));
            }
        }
    }

    fn finish(self, stats: &LogStats) -> Vec<Group> {
        let mut merged: BTreeMap<GroupKey, (u64, At)> = BTreeMap::new();
        for (key, (count, at)) in &self.seen {
            let [workload, caller, method, shape, verdict] = decode(key)[..] else {
                continue;
            };
            let verdict = match verdict {
                "allow" => "allow",
                "deny" => "deny",
                "audit_deny" => "audit_deny",
                "reject" => "reject",
                _ => "other",
            };
            let path = self
                .paths
                .get(workload)
                .and_then(|g| g.template_of(shape))
                .unwrap_or_else(|| shape.to_string());
            let e = merged
                .entry((workload.into(), caller.into(), method.into(), path, verdict))
                .or_insert((0, at.clone()));
            e.0 += count;
            if *at < e.1 {
                e.1 = at.clone();
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
    report: Report,
    denials: Groups,
    refused: Groups,
    newly_denied: Groups,
    newly_allowed: Groups,
    unknown: BTreeMap<String, u64>,
    /// `namespace/workload` of the line being judged (a reused buffer).
    workload_name: String,
    /// The (plugin, rule) that matched the line being judged (a reused
    /// buffer).
    matched: Vec<(usize, u32)>,
}

impl<'s> Replayer<'s> {
    /// A replayer of the policies derived from `state`.
    pub fn new(state: &'s ClusterState, settings: Settings) -> Self {
        Self {
            state,
            settings,
            namespaces: HashMap::new(),
            report: Report::default(),
            denials: Groups::default(),
            refused: Groups::default(),
            newly_denied: Groups::default(),
            newly_allowed: Groups::default(),
            unknown: BTreeMap::new(),
            workload_name: String::new(),
            matched: Vec::new(),
        }
    }

    /// The compiled policies of `ns`, derived on first use.
    fn compile(state: &ClusterState, settings: &Settings, ns: &str) -> Namespace {
        let desired = derive_namespace(state, ns, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let mut plugins = Vec::new();
        for p in desired.wasm_plugins {
            // Derivation compiles every configuration it emits.
            let Ok(engine) = Engine::compile(&p.spec.plugin_config) else {
                continue;
            };
            let mut names = Vec::new();
            for (pi, policy) in p.spec.plugin_config.policies.iter().enumerate() {
                let first = names.len() as u32;
                for ri in 0..policy.rules.len() as u32 {
                    let r = RuleRef {
                        policy: pi as u32,
                        rule: first + ri,
                    };
                    names.push(
                        (policy.name != LEARN_POLICY).then(|| format!("{}/{}", policy.name, engine.rule_name(r))),
                    );
                }
            }
            plugins.push(Plugin {
                selector: p.spec.selector.as_ref().map(|s| s.match_labels.clone()),
                engine: Arc::new(engine),
                hits: vec![0; names.len()],
                names,
            });
        }
        Namespace {
            plugins,
            workloads: HashMap::new(),
        }
    }

    /// The evaluators of workload `name` of `ns`; `None` when the manifests
    /// do not have it.
    fn workload(state: &ClusterState, ns: &str, name: &str, plugins: &[Plugin]) -> Option<Workload> {
        let w = state.namespace(ns).and_then(|n| {
            n.templates()
                .filter(|(_, n, _)| *n == name)
                .find_map(|(_, _, w)| w)
                .or_else(|| n.pod(name))
        })?;
        let evaluators = plugins
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.selector
                    .as_ref()
                    .is_none_or(|s| crate::derive::selects(s, Some(&w.labels)))
            })
            .map(|(i, p)| {
                let selection = p.engine.select(|k| w.labels.get(k).cloned());
                (i, Evaluator::new(p.engine.clone(), selection))
            })
            .collect();
        Some(Workload {
            evaluators,
            first_port: w.first_port,
        })
    }

    /// Judges one logged request.
    pub fn replay(&mut self, mut record: Record, at: At) {
        let (Some(name), Some(ns)) = (record.workload.take(), record.namespace.take()) else {
            self.report.unattributed += 1;
            return;
        };
        self.workload_name.clear();
        self.workload_name.push_str(&ns);
        self.workload_name.push('/');
        self.workload_name.push_str(&name);
        let (state, settings) = (self.state, &self.settings);
        // Looked up before inserting: a line of a known namespace and
        // workload allocates no key.
        if !self.namespaces.contains_key(&ns) {
            let compiled = Self::compile(state, settings, &ns);
            self.namespaces.insert(ns.clone(), compiled);
        }
        let Some(namespace) = self.namespaces.get_mut(&ns) else {
            return;
        };
        if !namespace.workloads.contains_key(&name) {
            let w = Self::workload(state, &ns, &name, &namespace.plugins);
            namespace.workloads.insert(name.clone(), w);
        }
        let Some(Some(workload)) = namespace.workloads.get_mut(&name) else {
            *self.unknown.entry(self.workload_name.clone()).or_default() += 1;
            return;
        };
        // The log line says whether the request was gRPC, not its headers:
        // a gRPC one is judged with gRPC's content type, so that `grpc`
        // entries admit it as the filter did.
        const GRPC: [(&str, &str); 1] = [("content-type", "application/grpc")];
        let headers: &[(&str, &str)] = if record.grpc == Some(true) { &GRPC } else { &[] };
        let request = Request {
            connection: Default::default(),
            method: &record.method,
            path: &record.path,
            authority: record.authority.as_deref(),
            port: record.port.or(workload.first_port),
            principal: record.principal.as_deref(),
            auth: None,
            headers,
        };
        // Any denial wins, then an audit denial; otherwise admitted, by the
        // rules that matched (at most one per plugin).
        let mut verdict = Verdict::Allow;
        let matched = &mut self.matched;
        matched.clear();
        for (plugin, ev) in &mut workload.evaluators {
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
                matched.push((*plugin, m.rule));
            }
        }
        self.report.replayed += 1;
        let recorded_admitted = record.verdict == "allow";
        let workload_name = self.workload_name.as_str();
        if verdict == Verdict::Allow {
            self.report.admitted += 1;
            for &(plugin, rule) in matched.iter() {
                if let Some(hits) = namespace
                    .plugins
                    .get_mut(plugin)
                    .and_then(|p| p.hits.get_mut(rule as usize))
                {
                    *hits += 1;
                }
            }
            if !recorded_admitted {
                let recorded = recorded_verdict(&record.verdict);
                self.newly_allowed.add(workload_name, &record, recorded, &at);
            }
        } else if record.reached() {
            self.report.denied += 1;
            self.denials.add(workload_name, &record, verdict.as_str(), &at);
            if recorded_admitted {
                self.newly_denied.add(workload_name, &record, verdict.as_str(), &at);
            }
        } else {
            self.report.still_refused += 1;
            self.refused.add(workload_name, &record, verdict.as_str(), &at);
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
        let mut hits: BTreeMap<String, u64> = BTreeMap::new();
        for plugin in self.namespaces.into_values().flat_map(|n| n.plugins) {
            for (name, count) in plugin.names.into_iter().zip(plugin.hits) {
                if let Some(name) = name {
                    *hits.entry(name).or_default() += count;
                }
            }
        }
        self.report.rules = hits.into_iter().map(|(rule, hits)| RuleHits { rule, hits }).collect();
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
