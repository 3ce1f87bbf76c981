//! Leader election on a `coordination.k8s.io/v1` Lease: several replicas
//! watch, derive and serve the API; only the one holding the Lease writes.
//!
//! The algorithm is client-go's: the holder renews the Lease every `retry`
//! period; another replica takes it over only after it has seen the same
//! holder and renew time for a whole lease duration on its own clock. Every
//! update is a replace conditional on the resource version read, so two
//! replicas never both win.
//!
//! The safety margin is the holder's: it counts itself leader only until
//! `renew_deadline` after the *start* of its last successful renewal, a
//! deadline shorter than the lease duration. A holder cut off from the API
//! server therefore stops writing (`renew_deadline` after its last renewal)
//! before any other replica may take the Lease (a full lease duration after
//! it last saw that renewal), and each write is bounded by that deadline.
//!
//! Why not a crate: `kube-lease-manager` (0.13) keeps reporting leadership
//! while its renewals fail, so a partitioned holder would go on writing; the
//! property above is the point of electing a leader, and it takes a hundred
//! lines on kube's `Api<Lease>`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

/// How a replica takes part in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace (the service's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease holds without renewal; written into the Lease.
    pub duration: Duration,
    /// How long after the start of its last successful renewal the holder
    /// still counts itself leader (shorter than `duration`).
    pub renew_deadline: Duration,
    /// How often the holder renews and the others check.
    pub retry: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: a 15 s lease, a 10 s renew deadline, a try every 2 s.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: "meshward-control".into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// Whether this replica may write, and until when.
#[derive(Debug, Default)]
pub struct Leadership {
    /// `None`: not the holder. `Some(t)`: the holder until `t` unless renewed.
    until: Mutex<Option<Instant>>,
    /// Set when leader election is off: always the writer.
    always: bool,
}

impl Leadership {
    /// A replica that takes part in an election and starts as follower.
    pub fn elected() -> Self {
        Self::default()
    }

    /// A replica that writes without election (a single replica).
    pub fn alone() -> Self {
        Self {
            until: Mutex::new(None),
            always: true,
        }
    }

    /// How long this replica may still write; `None` if it may not.
    pub fn remaining(&self) -> Option<Duration> {
        if self.always {
            return Some(Duration::MAX);
        }
        let until = (*self.until.lock().ok()?)?;
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Whether this replica may write now.
    pub fn is_leader(&self) -> bool {
        self.remaining().is_some()
    }

    fn hold_until(&self, until: Option<Instant>) {
        if let Ok(mut u) = self.until.lock() {
            *u = until;
        }
    }
}

/// What a replica last saw of the Lease when another held it.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(Option<String>, Option<Timestamp>)>,
    at: Option<Instant>,
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

/// Takes part in the election until dropped. After every try it calls
/// `after_try(leader, changed)`: whether this replica leads now, and whether
/// that changed since the last try.
pub async fn run(client: Client, config: LeaseConfig, leadership: &Leadership, after_try: impl Fn(bool, bool)) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = Observed::default();
    let mut was_leader = false;
    loop {
        let started = Instant::now();
        // A try that hangs (an API server out of reach) is a failed try.
        let attempt = tokio::time::timeout(config.renew_deadline / 2, step(&api, &config, &mut observed)).await;
        match attempt {
            Ok(Ok(true)) => leadership.hold_until(Some(started + config.renew_deadline)),
            Ok(Ok(false)) => leadership.hold_until(None),
            Ok(Err(e)) => tracing::warn!(error = %e, lease = %config.name, "lease update failed"),
            Err(_) => tracing::warn!(lease = %config.name, "lease update timed out"),
        }
        let leader = leadership.is_leader();
        let changed = leader != was_leader;
        if changed {
            if leader {
                tracing::info!(identity = %config.identity, "became the leader: writing");
            } else {
                tracing::warn!(identity = %config.identity, "no longer the leader: not writing");
            }
            was_leader = leader;
        }
        after_try(leader, changed);
        // Wake in time to notice a lapsed leadership even while the API is
        // unreachable.
        tokio::time::sleep(config.retry).await;
    }
}

/// One try: read the Lease, then renew, acquire or wait. `Ok(true)` when this
/// replica holds it after the try.
async fn step(api: &Api<Lease>, config: &LeaseConfig, observed: &mut Observed) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let duration_s = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(current) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_s),
                acquire_time: Some(micro(now)),
                renew_time: Some(micro(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Another replica created it first.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let mine = holder.as_deref() == Some(config.identity.as_str());
    if !mine {
        let record = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0));
        if observed.record.as_ref() != Some(&record) {
            observed.record = Some(record);
            observed.at = Some(Instant::now());
        }
        let held_for = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(config.duration, Duration::from_secs);
        let expired = holder.is_none() || observed.at.is_some_and(|at| at.elapsed() >= held_for);
        if !expired {
            return Ok(false);
        }
    }
    let mut lease = current.clone();
    let next = LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(duration_s),
        renew_time: Some(micro(now)),
        acquire_time: if mine {
            spec.acquire_time.clone()
        } else {
            Some(micro(now))
        },
        lease_transitions: if mine {
            spec.lease_transitions
        } else {
            Some(spec.lease_transitions.unwrap_or(0).saturating_add(1))
        },
        ..spec
    };
    lease.spec = Some(next);
    // Conditional on the resource version read: if another replica renewed
    // or took it meanwhile, the API server answers 409 and this try loses.
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up, so another replica takes over at once instead of
/// after a lease duration (on a graceful stop).
pub async fn release(client: Client, config: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(micro(Timestamp::now()));
    if let Err(e) = api.replace(&config.name, &PostParams::default(), &lease).await {
        tracing::warn!(error = %e, "releasing the lease failed; another replica takes over when it expires");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_lapses_at_its_deadline() {
        let l = Leadership::elected();
        assert!(!l.is_leader());
        l.hold_until(Some(Instant::now() + Duration::from_secs(60)));
        assert!(l.is_leader());
        assert!(l.remaining().unwrap() <= Duration::from_secs(60));
        l.hold_until(Some(Instant::now()));
        assert!(!l.is_leader(), "a deadline reached is leadership lost");
        assert!(Leadership::alone().is_leader());
    }
}
