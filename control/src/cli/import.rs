//! `import`: AuthorizationPolicies in, Allowlists on stdout, what cannot be
//! expressed on stderr; with `--manifests`, the result linted with the
//! cluster's objects.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use super::commands::{offline_settings, yaml_error};
use super::CliError;
use crate::derive::{Enforcement, ENFORCEMENT_LABEL};
use crate::import::{self, Options};
use crate::manifests::{self, ManifestError};

/// Runs `import`: 0 if every policy converted, 1 if one could not.
pub(super) fn run(
    inputs: &[PathBuf],
    manifest_inputs: &[PathBuf],
    root_namespace: &str,
    trust_domain: &str,
) -> Result<ExitCode, CliError> {
    let sources = manifests::read_inputs(inputs)?;
    let read = import::read(&sources).map_err(ManifestError::Problems)?;
    if read.is_empty() {
        return Err(CliError::Import(
            "no AuthorizationPolicy (security.istio.io/v1 or v1beta1) in the inputs".into(),
        ));
    }
    let imported = import::import(
        &read,
        &Options {
            root_namespace: root_namespace.to_string(),
        },
    );
    // Read before anything is printed: unreadable manifests are bad input.
    let loaded = match manifest_inputs.is_empty() {
        true => None,
        false => Some(manifests::load(manifest_inputs, trust_domain)?),
    };
    for a in &imported.allowlists {
        print!("---\n{}", manifests::to_yaml(a).map_err(yaml_error)?);
    }
    for r in &imported.reports {
        eprintln!("{r}");
    }
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    let not = imported.read - imported.allowlists.len();
    eprintln!(
        "import: {} AuthorizationPolicies read, {} imported, {not} not imported{}",
        imported.read,
        imported.allowlists.len(),
        if not > 0 { " (above: why)" } else { "" }
    );
    if let Some(mut loaded) = loaded {
        check_with_cluster(&mut loaded, &imported.allowlists);
    }
    Ok(if imported.reports.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Warns about what the imported Allowlists would do in the cluster of the
/// manifests: lint's findings on them, and namespaces not enabled.
fn check_with_cluster(loaded: &mut manifests::Loaded, imported: &[crate::crd::Allowlist]) {
    let snapshot = &mut loaded.snapshot;
    let key = |a: &crate::crd::Allowlist| (a.metadata.namespace.clone(), a.metadata.name.clone());
    let names: BTreeSet<_> = imported.iter().map(key).collect();
    for a in snapshot.allowlists.iter().filter(|a| names.contains(&key(a))) {
        eprintln!(
            "warning: Allowlist {}/{} of the manifests is replaced by the imported one",
            a.metadata.namespace.as_deref().unwrap_or_default(),
            a.metadata.name.as_deref().unwrap_or_default()
        );
    }
    snapshot.allowlists.retain(|a| !names.contains(&key(a)));
    snapshot.allowlists.extend(imported.iter().cloned());
    let namespaces: BTreeSet<&str> = imported
        .iter()
        .filter_map(|a| a.metadata.namespace.as_deref())
        .collect();
    for ns in namespaces {
        let enabled = snapshot.namespaces.iter().any(|n| {
            n.metadata.name.as_deref() == Some(ns)
                && n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(ENFORCEMENT_LABEL))
                    .and_then(|v| Enforcement::from_label(v))
                    .is_some()
        });
        if !enabled {
            eprintln!(
                "warning: namespace {ns} is not enabled (label {ENFORCEMENT_LABEL}): its imported Allowlists take \
                 effect once it is"
            );
        }
    }
    for finding in crate::lint::lint(&snapshot.to_state(), &offline_settings()) {
        eprintln!("warning: {finding}");
    }
}
