//! Kubernetes Events on Allowlists, as controllers report what they find:
//! one when a condition of an Allowlist's status changes (`kubectl describe
//! allowlist` and `kubectl get events` show them), a Warning when it turns
//! False (invalid, selector matching nothing, namespace configuration
//! rejected, namespace not enabled), Normal when it turns True. Repeats are
//! folded into an event series by kube's recorder. Best effort: an Event that
//! cannot be written is logged, and the status stays the record.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType};

use super::Shared;
use crate::crd::AllowlistStatus;

/// The most an Event's note may hold (the API's limit is 1 kB).
const NOTE_BYTES: usize = 1_000;

/// The conditions of `after` whose status or reason differs from `before`.
pub fn changed<'a>(before: Option<&AllowlistStatus>, after: &'a AllowlistStatus) -> Vec<&'a Condition> {
    after
        .conditions
        .iter()
        .filter(|c| {
            !before
                .into_iter()
                .flat_map(|b| b.conditions.iter())
                .any(|old| old.type_ == c.type_ && old.status == c.status && old.reason == c.reason)
        })
        .collect()
}

/// `text`, cut at a character boundary to at most `max` bytes.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

/// Publishes an Event for each condition that changed between `before` and
/// the status just written.
pub(super) async fn status_changed(
    shared: &Shared,
    ns: &str,
    name: &str,
    uid: Option<String>,
    before: Option<&AllowlistStatus>,
    after: &AllowlistStatus,
) {
    let reference = ObjectReference {
        api_version: Some("meshward.io/v1alpha1".into()),
        kind: Some("Allowlist".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        uid,
        ..ObjectReference::default()
    };
    for c in changed(before, after) {
        let event = Event {
            type_: if c.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: c.reason.clone(),
            note: Some(cut(&format!("{}={}: {}", c.type_, c.status, c.message), NOTE_BYTES)),
            action: "Derive".into(),
            secondary: None,
        };
        if let Err(e) = shared.events.publish(&event, &reference).await {
            tracing::warn!(namespace = ns, name, error = %e, "event not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn status(conditions: &[(&str, &str, &str)]) -> AllowlistStatus {
        AllowlistStatus {
            observed_generation: Some(1),
            conditions: conditions
                .iter()
                .map(|(t, s, r)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    reason: (*r).into(),
                    message: "m".into(),
                    observed_generation: Some(1),
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                })
                .collect(),
            resolved: None,
        }
    }

    #[test]
    fn only_conditions_that_flip_or_change_reason_are_reported() {
        let before = status(&[("Ready", "True", "Derived"), ("WithinBudget", "True", "WithinBudget")]);
        let after = status(&[
            ("Ready", "False", "InvalidPath"),
            ("WithinBudget", "True", "WithinBudget"),
        ]);
        let c = changed(Some(&before), &after);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].type_.as_str(), c[0].reason.as_str()), ("Ready", "InvalidPath"));
        assert!(changed(Some(&after), &after).is_empty());
        assert_eq!(changed(None, &after).len(), 2, "a first status reports every condition");
        let other_reason = status(&[
            ("Ready", "False", "InvalidHost"),
            ("WithinBudget", "True", "WithinBudget"),
        ]);
        assert_eq!(changed(Some(&after), &other_reason).len(), 1);
    }

    #[test]
    fn notes_are_cut_to_the_api_limit_on_a_character_boundary() {
        let long = "é".repeat(800);
        let note = cut(&long, NOTE_BYTES);
        assert!(note.len() <= NOTE_BYTES + '…'.len_utf8());
        assert!(note.ends_with('…'));
        assert_eq!(cut("short", NOTE_BYTES), "short");
    }
}
