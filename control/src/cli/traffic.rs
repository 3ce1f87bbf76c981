//! `learn` and `replay`: Allowlists proposed from sidecar request logs, and
//! logged requests judged against candidate Allowlists, from files or from a
//! namespace of the cluster the kubeconfig names.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::commands::{json_error, offline_settings, print_data, yaml_error};
use super::{CliError, Format};
use crate::incluster::{self, podlogs};
use crate::learn::logs::{read_logs, LogStats};
use crate::{learn, manifests, replay};

/// Prints the lines with the marker that could not be read, on stderr.
fn report_bad_lines(stats: &LogStats) {
    for b in &stats.bad {
        eprintln!("{}: bad request log line: {}", stats.place(&b.at), b.message);
    }
}

/// `learn`: the proposal on stdout as a YAML stream, the summary on stderr.
pub(super) fn learn(
    inputs: &[PathBuf],
    logs: &[PathBuf],
    trust_domain: &str,
    options: learn::Options,
) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(inputs, trust_domain)?;
    let state = loaded.snapshot.to_state();
    let apis = learn::described::Apis::of(&state, None);
    let mut learner = learn::Learner::with_apis(options, apis);
    let stats = read_logs(logs, |record, at| learner.observe(record, at))?;
    let (learned, not_learned) = (learner.learned, learner.not_learned.clone());
    let proposal = learner.finish(&state);
    print_learned(&proposal, &stats, learned, &not_learned, options.min_count)?;
    for (w, lines) in &proposal.unknown_workloads {
        eprintln!("learn: not in the manifests, no Allowlist proposed: {w} ({lines} lines)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a proposal on stdout and its summary on stderr.
fn print_learned(
    proposal: &learn::Proposal,
    stats: &LogStats,
    learned: u64,
    not_learned: &learn::NotLearned,
    min_count: u64,
) -> Result<(), CliError> {
    for a in &proposal.allowlists {
        print!("---\n{}", manifests::to_yaml(a).map_err(yaml_error)?);
    }
    report_bad_lines(stats);
    eprintln!(
        "learn: {} lines read: {} request lines, {} without the marker, {} bad",
        stats.lines,
        stats.records,
        stats.skipped,
        stats.bad.len()
    );
    eprintln!(
        "learn: learned from {learned}; not learned: {} denied or rejected, {} without workload, {} without a path",
        not_learned.refused, not_learned.unattributed, not_learned.not_a_path
    );
    eprintln!(
        "learn: proposed {} Allowlists: {} callers, {} rules, {} path templates, {} paths",
        proposal.allowlists.len(),
        proposal.callers,
        proposal.rules,
        proposal.templates,
        proposal.paths
    );
    if proposal.operations > 0 {
        eprintln!(
            "learn: {} operations of API descriptions proposed by name",
            proposal.operations
        );
    }
    for w in &proposal.api_warnings {
        eprintln!("learn: API description not used, learned by path: {w}");
    }
    for u in &proposal.undocumented {
        eprintln!(
            "learn: no operation of the API descriptions, proposed by path: {} {} {} {} seen {}",
            u.workload, u.caller, u.method, u.path, u.count
        );
    }
    for rule in &proposal.anonymous_rules {
        eprintln!("learn: anonymous callers (no peer certificate), review: {rule}");
    }
    for d in &proposal.dropped {
        eprintln!(
            "learn: dropped (--min-count {min_count}): {} {} {} {} seen {}",
            d.workload, d.caller, d.method, d.path, d.count
        );
    }
    Ok(())
}

/// Runs `work` with a client for the kubeconfig's cluster (or the pod's
/// service account in one), as `kubectl` and `serve` find it.
fn with_cluster<T>(work: impl AsyncFnOnce(kube::Client) -> Result<T, CliError>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Cluster(format!("starting the runtime: {e}")))?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| CliError::Cluster(format!("Kubernetes client (kubeconfig): {e}")))?;
        work(client).await
    })
}

/// The namespace's state as `serve` would hold it; says on stderr which
/// kinds could be listed in the namespace only.
async fn cluster_state(
    client: &kube::Client,
    trust_domain: &str,
    ns: &str,
    command: &str,
) -> Result<crate::state::ClusterState, CliError> {
    let listed = incluster::cluster::list(client, trust_domain, ns)
        .await
        .map_err(|e| CliError::Cluster(e.to_string()))?;
    for kind in &listed.namespace_only {
        eprintln!("{command}: warning: listing {kind}s cluster-wide is forbidden; those of namespace {ns} only");
    }
    Ok(listed.state)
}

/// The namespace's sidecar logs of the last `since`; says on stderr what
/// was read and which pods failed; an error when pods have sidecars but
/// none could be read.
async fn sidecar_logs(
    client: &kube::Client,
    ns: &str,
    since: Duration,
    command: &str,
) -> Result<podlogs::SidecarLogs, CliError> {
    let limits = podlogs::Limits {
        since_seconds: since.as_secs(),
        ..podlogs::Limits::default()
    };
    let logs = podlogs::fetch(client, ns, &limits)
        .await
        .map_err(|e| CliError::Cluster(format!("listing the pods of namespace {ns}: {e}")))?;
    let bytes: u64 = logs.pods.iter().map(|p| p.bytes).sum();
    eprintln!(
        "{command}: read the {} logs of {} pods of namespace {ns} ({bytes} bytes, the last {}s); {} without {}, {} failed",
        podlogs::SIDECAR,
        logs.pods.len(),
        limits.since_seconds,
        logs.without_sidecar.len(),
        podlogs::SIDECAR,
        logs.failed.len()
    );
    for p in logs.pods.iter().filter(|p| p.truncated) {
        eprintln!(
            "{command}: pod {}: log cut at {} bytes, later lines not read",
            p.pod, limits.limit_bytes
        );
    }
    for f in &logs.failed {
        eprintln!("{command}: pod {}: log not read: {}", f.pod, f.error);
    }
    if logs.pods.is_empty() && !logs.failed.is_empty() {
        return Err(CliError::NoLogs(ns.to_string()));
    }
    Ok(logs)
}

/// `learn --namespace`: the cluster's state, the sidecar logs (or `--logs`).
pub(super) fn learn_in_cluster(
    ns: &str,
    logs: &[PathBuf],
    since: Duration,
    trust_domain: &str,
    options: learn::Options,
) -> Result<ExitCode, CliError> {
    let (state, observed) = with_cluster(async |client| {
        let state = cluster_state(&client, trust_domain, ns, "learn").await?;
        let apis = learn::described::Apis::of(&state, Some(ns));
        let observed = if logs.is_empty() {
            let sidecars = sidecar_logs(&client, ns, since, "learn").await?;
            incluster::observe(ns, options, apis, |each| Ok::<_, CliError>(sidecars.read(each)))?
        } else {
            incluster::observe(ns, options, apis, |each| Ok::<_, CliError>(read_logs(logs, each)?))?
        };
        Ok((state, observed))
    })?;
    let l = observed.finish(&state);
    print_learned(&l.proposal, &l.stats, l.learned, &l.not_learned, options.min_count)?;
    if l.other_namespace > 0 {
        eprintln!(
            "learn: not learned: {} request lines of other namespaces than {ns}",
            l.other_namespace
        );
    }
    for (w, lines) in &l.proposal.unknown_workloads {
        eprintln!("learn: not in the cluster, no Allowlist proposed: {w} ({lines} lines)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `replay --namespace`: the cluster's state with the candidates of
/// `--manifests` in place, the sidecar logs (or `--logs`).
pub(super) fn replay_in_cluster(
    ns: &str,
    candidates: &[PathBuf],
    logs: &[PathBuf],
    since: Duration,
    trust_domain: &str,
    output: Format,
) -> Result<ExitCode, CliError> {
    let candidates = if candidates.is_empty() {
        Vec::new()
    } else {
        let loaded = manifests::load(candidates, trust_domain)?;
        let s = &loaded.snapshot;
        let others = s.namespaces.len()
            + s.pods.len()
            + s.deployments.len()
            + s.stateful_sets.len()
            + s.daemon_sets.len()
            + s.service_accounts.len()
            + s.services.len();
        if others > 0 {
            eprintln!(
                "replay: --manifests with --namespace: only Allowlists are candidates; {others} other objects ignored"
            );
        }
        s.allowlists
            .iter()
            .map(|a| serde_json::to_value(a).map_err(json_error))
            .collect::<Result<Vec<_>, _>>()?
    };
    let (mut state, sidecars) = with_cluster(async |client| {
        let state = cluster_state(&client, trust_domain, ns, "replay").await?;
        let sidecars = if logs.is_empty() {
            Some(sidecar_logs(&client, ns, since, "replay").await?)
        } else {
            None
        };
        Ok((state, sidecars))
    })?;
    let settings = offline_settings();
    let statuses = incluster::apply_candidates(&mut state, ns, &candidates, &settings)?;
    for c in statuses.iter().filter(|c| !c.ready) {
        eprintln!("replay: candidate {}: {}: {}", c.name, c.reason, c.message);
    }
    let replayed = incluster::replay(&state, ns, settings, |each| match &sidecars {
        Some(s) => Ok(s.read(each)),
        None => read_logs(logs, each),
    })?;
    let other = (replayed.other_namespace > 0).then(|| {
        format!(
            "replay: not replayed: {} request lines of other namespaces than {ns}",
            replayed.other_namespace
        )
    });
    print_replayed(&replayed.report, &replayed.stats, other, output)
}

/// `replay`: the report; 1 if any request that reached its workload when
/// recorded would be denied.
pub(super) fn replay(
    inputs: &[PathBuf],
    logs: &[PathBuf],
    trust_domain: &str,
    output: Format,
) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(inputs, trust_domain)?;
    let state = loaded.snapshot.to_state();
    let mut replayer = replay::Replayer::new(&state, offline_settings());
    let stats = read_logs(logs, |record, at| replayer.replay(record, at))?;
    let report = replayer.finish(&stats);
    print_replayed(&report, &stats, None, output)
}

/// Prints a replay report (`-o text`: unreadable lines and `note` on
/// stderr first); exit status 1 if it denies a request that reached its
/// workload when recorded.
fn print_replayed(
    report: &replay::Report,
    stats: &LogStats,
    note: Option<String>,
    output: Format,
) -> Result<ExitCode, CliError> {
    match output {
        Format::Text => {
            report_bad_lines(stats);
            if let Some(note) = note {
                eprintln!("{note}");
            }
            print!("{}", replay_text(report));
        }
        format => print_data(report, format)?,
    }
    Ok(if report.denied == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The text form of a replay report.
fn replay_text(r: &replay::Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let groups = |out: &mut String, title: &str, groups: &[replay::Group]| {
        let total: u64 = groups.iter().map(|g| g.count).sum();
        let _ = writeln!(out, "{title}: {total}");
        for g in groups {
            let _ = writeln!(
                out,
                "  {:>6}  {} {} {} {} {} (first at {})",
                g.count, g.verdict, g.workload, g.caller, g.method, g.path, g.example
            );
        }
    };
    let _ = writeln!(
        out,
        "replayed {} requests of {} lines ({} without the marker, {} bad)",
        r.replayed,
        r.lines,
        r.skipped,
        r.bad.len()
    );
    if r.unattributed > 0 {
        let _ = writeln!(
            out,
            "not replayed: {} lines without workload or namespace",
            r.unattributed
        );
    }
    for (w, n) in &r.unknown_workloads {
        let _ = writeln!(out, "not replayed: {n} lines of {w}, which is not in the manifests");
    }
    let _ = writeln!(
        out,
        "admitted {}, denied {}, still refused {}",
        r.admitted, r.denied, r.still_refused
    );
    groups(&mut out, "denied (reached the workload when recorded)", &r.denials);
    groups(&mut out, "still refused (refused when recorded too)", &r.refused);
    groups(&mut out, "newly denied (allowed when recorded)", &r.newly_denied);
    groups(&mut out, "newly allowed (denied when recorded)", &r.newly_allowed);
    let _ = writeln!(out, "hits per rule:");
    for h in &r.rules {
        let _ = writeln!(out, "  {:>6}  {}", h.hits, h.rule);
    }
    let unused: Vec<&str> = r.unused().collect();
    let _ = writeln!(out, "unused rules (candidates for removal): {}", unused.len());
    for u in unused {
        let _ = writeln!(out, "  {u}");
    }
    out
}
