//! Lists are paginated as a real API server paginates them: every object
//! once across the pages, `continue` until the last page, and a
//! `resourceVersion=0` list served whole whatever the limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::ListParams;
use kube::Api;
use meshward_fake_apiserver::FakeApi;
use serde_json::json;

#[tokio::test]
async fn pages_cover_every_object_once_and_rv0_lists_are_whole() {
    let fake = FakeApi::start().await;
    let objects = (0..1_234).map(|i| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": format!("sa-{i:04}"), "namespace": format!("ns-{}", i % 7)}})
    });
    fake.load(objects);
    let client = kube::Client::try_from(fake.config()).unwrap();
    let api: Api<ServiceAccount> = Api::all(client.clone());
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut params = ListParams::default().limit(100);
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 100);
        seen.extend(page.items.into_iter().map(|sa| sa.metadata.name.unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 13);
    assert_eq!(seen.len(), 1_234);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1_234, "no object twice");

    // kube never sends both (it drops resourceVersion=0 when a limit is set),
    // but other clients do: a raw request.
    let whole = raw_get(&fake, "/api/v1/serviceaccounts?limit=100&resourceVersion=0").await;
    let whole: serde_json::Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(
        whole["items"].as_array().unwrap().len(),
        1_234,
        "resourceVersion=0 ignores the limit"
    );
    assert!(whole["metadata"]["continue"].is_null());

    let one_ns: Api<ServiceAccount> = Api::namespaced(client, "ns-3");
    let page = one_ns.list(&ListParams::default().limit(1_000)).await.unwrap();
    assert_eq!(page.items.len(), (0..1_234).filter(|i| i % 7 == 3).count());
}

/// The body of a plain HTTP/1.1 GET.
async fn raw_get(fake: &FakeApi, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: fake\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    body.to_string()
}
