//! The configuration lifecycle: parse, compile, select, then swap.
//!
//! [`Plugin::configure`] parses the plugin configuration, compiles it into an
//! [`Engine`], resolves which policies apply to this proxy's workload from its
//! node metadata, and only then replaces the configuration in force, as one
//! `Rc`. Any error leaves the previous configuration in force (the last good
//! one); with none ever accepted, requests are denied. Request contexts
//! created before a swap keep the configuration they started with.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::host::{text_property, Host, Level};
use super::request::RequestContext;
use super::telemetry::{mib, Counters, MemoryWatch, METRIC_CONFIG_ACCEPTED, METRIC_CONFIG_REJECTED};
use crate::config::{Action, LogConfig, Mode, PluginConfig};
use crate::engine::{Engine, Evaluator, Selection, Verdict};
use crate::error::ConfigError;

/// The workload this proxy serves, from Istio's node metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// `NAMESPACE`.
    pub namespace: Option<String>,
    /// `WORKLOAD_NAME`.
    pub name: Option<String>,
}

impl Workload {
    /// The workload named in the proxy's node metadata.
    fn of(host: &dyn Host) -> Self {
        Self {
            namespace: text_property(host, &["xds", "node", "metadata", "NAMESPACE"]),
            name: text_property(host, &["xds", "node", "metadata", "WORKLOAD_NAME"]),
        }
    }
}

/// A configuration in force, shared by the request contexts.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) evaluator: RefCell<Evaluator>,
    /// (verdict, mode, rule index or `u32::MAX`) → counter id, filled on
    /// first use.
    pub(super) counters: RefCell<FxHashMap<(Verdict, Mode, u32), u32>>,
    /// The `policy` label of decisions no single rule made: the applicable
    /// allow (or, with none, deny) policy, enforce (or, with none, audit),
    /// if there is exactly one, `*` if several, `-` if none.
    pub(super) decided_by: String,
    pub(super) workload: Workload,
    pub(super) log: LogConfig,
}

/// The root context's state: the active configuration, if any.
#[derive(Debug, Default)]
pub struct Plugin {
    active: Option<Rc<Active>>,
    counters: Rc<RefCell<Counters>>,
    memory: Rc<MemoryWatch>,
}

impl Plugin {
    /// Compiles `json` and resolves which policies apply to this proxy's
    /// workload (labels from node metadata). On error the previous
    /// configuration stays in force and the error is returned, for the glue
    /// to log and report to Envoy. Either way a config counter is incremented.
    pub fn configure(&mut self, host: &dyn Host, json: Vec<u8>) -> Result<(), ConfigError> {
        let result = self.compile(host, json);
        let metric = if result.is_ok() {
            METRIC_CONFIG_ACCEPTED
        } else {
            METRIC_CONFIG_REJECTED
        };
        let mut counters = self.counters.borrow_mut();
        // Both exist from the first configuration on: a series that appears
        // with its first increment hides that increment from `increase()`.
        counters.define(host, METRIC_CONFIG_ACCEPTED);
        counters.define(host, METRIC_CONFIG_REJECTED);
        counters.increment(host, metric);
        drop(counters);
        self.memory.reported(host.vm_memory());
        result
    }

    /// Parses, compiles and selects; replaces the active configuration only
    /// if all of that succeeds.
    fn compile(&mut self, host: &dyn Host, json: Vec<u8>) -> Result<(), ConfigError> {
        let started = host.now_nanos();
        let size = json.len();
        let config = PluginConfig::from_json(&json)?;
        // The text is not needed past parsing, and the VM's memory never
        // shrinks below its peak: at 10,000 rules it is 0.7 MB of that peak.
        drop(json);
        let engine = Engine::from_config(config)?;
        let selection = engine.select(|key| text_property(host, &["xds", "node", "metadata", "LABELS", key]));
        let workload = Workload::of(host);
        log_accepted(host, &engine, &selection, &workload, size, started);
        let decided_by = decided_by(&engine, &selection);
        let log = engine.log_config();
        self.active = Some(Rc::new(Active {
            evaluator: RefCell::new(Evaluator::new(Arc::new(engine), selection)),
            counters: RefCell::new(FxHashMap::default()),
            decided_by,
            workload,
            log,
        }));
        Ok(())
    }

    /// Whether a configuration is in force.
    pub fn is_configured(&self) -> bool {
        self.active.is_some()
    }

    /// A context for one request, sharing the active configuration.
    pub fn request(&self) -> RequestContext {
        RequestContext::new(self.active.clone(), self.counters.clone(), self.memory.clone())
    }
}

/// Logs an accepted configuration: for which workload, which policies apply,
/// its size, how long it took (since `started`) and the VM's memory.
fn log_accepted(
    host: &dyn Host,
    engine: &Engine,
    selection: &Selection,
    workload: &Workload,
    size: usize,
    started: u64,
) {
    let applied: Vec<&str> = engine.selected_policies(selection).collect();
    host.log(
        Level::Info,
        &format!(
            "meshward: configuration accepted for {}/{}: {} of {} policies apply ({}), mode {}, {} bytes compiled in {:.1} ms{}",
            workload.namespace.as_deref().unwrap_or("-"),
            workload.name.as_deref().unwrap_or("-"),
            applied.len(),
            engine.policy_count(),
            applied.join(", "),
            engine.mode().as_str(),
            size,
            host.now_nanos().saturating_sub(started) as f64 / 1e6,
            host.vm_memory().map_or(String::new(), |b| format!(", VM memory {:.1} MiB", mib(b))),
        ),
    );
}

/// The `policy` label of decisions no single rule made (see
/// [`Active::decided_by`]).
fn decided_by(engine: &Engine, selection: &Selection) -> String {
    // The allow policies decide what no rule decided (deny policies only
    // when no allow policy applies); enforce ones before audit ones.
    let action = if selection.count(Action::Allow, Mode::Enforce) + selection.count(Action::Allow, Mode::Audit) > 0 {
        Action::Allow
    } else {
        Action::Deny
    };
    let mode = if selection.count(action, Mode::Enforce) > 0 {
        Mode::Enforce
    } else {
        Mode::Audit
    };
    let deciding: Vec<&str> = (0..engine.policy_count() as u32)
        .filter(|&i| selection.applies(i))
        .filter(|&i| engine.policy_action(i) == action && engine.policy_mode(i) == mode)
        .map(|i| engine.policy_name(i))
        .collect();
    match deciding.as_slice() {
        [] => "-".to_string(),
        [one] => one.to_string(),
        _ => "*".to_string(),
    }
}
