//! `pods/{name}/log` as a real API server serves it to `kube::Api::logs`:
//! text, the container's lines only, `sinceSeconds`, `limitBytes` and
//! `timestamps`, and the refusals a real one makes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::Api;
use meshward_fake_apiserver::FakeApi;
use serde_json::json;

fn pod(name: &str, containers: &[&str], status: serde_json::Value) -> serde_json::Value {
    let containers: Vec<_> = containers.iter().map(|c| json!({"name": c, "image": "i"})).collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"containers": containers}, "status": status})
}

fn params(container: Option<&str>) -> LogParams {
    LogParams {
        container: container.map(String::from),
        ..LogParams::default()
    }
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message.clone()),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn logs_are_served_filtered_and_cut_as_a_real_api_server_does() {
    let fake = FakeApi::start().await;
    fake.put(pod("api-1", &["app", "istio-proxy"], json!({})));
    let now = SystemTime::now();
    fake.set_log_at(
        "shop",
        "api-1",
        "istio-proxy",
        vec![
            (now - Duration::from_secs(7200), "old".into()),
            (now - Duration::from_secs(60), "recent".into()),
            (now, "now".into()),
        ],
    );
    fake.set_log("shop", "api-1", "app", &["app line"]);
    let api: Api<Pod> = Api::namespaced(kube::Client::try_from(fake.config()).unwrap(), "shop");

    assert_eq!(
        api.logs("api-1", &params(Some("istio-proxy"))).await.unwrap(),
        "old\nrecent\nnow\n"
    );
    assert_eq!(api.logs("api-1", &params(Some("app"))).await.unwrap(), "app line\n");
    let since = LogParams {
        since_seconds: Some(3600),
        ..params(Some("istio-proxy"))
    };
    assert_eq!(api.logs("api-1", &since).await.unwrap(), "recent\nnow\n");
    let cut = LogParams {
        limit_bytes: Some(9),
        ..since.clone()
    };
    assert_eq!(api.logs("api-1", &cut).await.unwrap(), "recent\nno");
    let stamped = LogParams {
        timestamps: true,
        ..since
    };
    let text = api.logs("api-1", &stamped).await.unwrap();
    let first = text.lines().next().unwrap();
    let (time, line) = first.split_once(' ').unwrap();
    assert_eq!(line, "recent");
    assert!(time.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{time}");

    let reads = fake.log_reads();
    assert_eq!(reads.len(), 5);
    assert_eq!(reads[3].query["limitBytes"], "9");
    assert_eq!(reads[3].query["sinceSeconds"], "3600");
    assert_eq!(reads[3].query["container"], "istio-proxy");
}

#[tokio::test]
async fn a_missing_pod_a_foreign_container_and_one_waiting_to_start_are_refused() {
    let fake = FakeApi::start().await;
    fake.put(pod("api-1", &["app", "istio-proxy"], json!({})));
    fake.put(pod("solo", &["app"], json!({})));
    fake.put(pod(
        "starting",
        &["istio-proxy"],
        json!({"containerStatuses": [{"name": "istio-proxy", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    ));
    let api: Api<Pod> = Api::namespaced(kube::Client::try_from(fake.config()).unwrap(), "shop");

    let (code, message) = api_error(api.logs("ghost", &params(Some("istio-proxy"))).await.unwrap_err());
    assert_eq!((code, message.as_str()), (404, "pods \"ghost\" not found"));
    let (code, message) = api_error(api.logs("solo", &params(Some("istio-proxy"))).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (400, "container istio-proxy is not valid for pod solo")
    );
    let (code, message) = api_error(api.logs("api-1", &params(None)).await.unwrap_err());
    assert_eq!(code, 400);
    assert!(message.contains("choose one of: [app istio-proxy]"), "{message}");
    let (code, message) = api_error(api.logs("starting", &params(Some("istio-proxy"))).await.unwrap_err());
    assert_eq!(code, 400);
    assert_eq!(
        message,
        "container \"istio-proxy\" in pod \"starting\" is waiting to start: ContainerCreating"
    );
    // One container: it need not be named; no lines set is an empty log.
    assert_eq!(api.logs("solo", &params(None)).await.unwrap(), "");
}

#[tokio::test]
async fn subject_access_reviews_grant_subresources_in_their_group() {
    use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
    use kube::api::PostParams;
    let fake = FakeApi::start().await;
    fake.grant("alice", "get", "pods/log", "shop", "");
    let api: Api<SubjectAccessReview> = Api::all(kube::Client::try_from(fake.config()).unwrap());
    let ask = |group: &str, resource: &str, sub: Option<&str>, ns: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("alice".into()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("get".into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: sub.map(String::from),
                namespace: Some(ns.into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    for (review, allowed) in [
        (ask("", "pods", Some("log"), "shop"), true),
        (ask("", "pods", Some("log"), "blog"), false),
        (ask("", "pods", None, "shop"), false),
        (ask("meshward.io", "pods", Some("log"), "shop"), false),
    ] {
        let answer = api.create(&PostParams::default(), &review).await.unwrap();
        assert_eq!(
            answer.status.unwrap().allowed,
            allowed,
            "{:?}",
            review.spec.resource_attributes
        );
    }
}
