//! gRPC through the filter in a real Envoy: a Python `grpcio` client calls a
//! Python `grpcio` server over HTTP/2 and mTLS, and a `grpc` to-entry decides.
//! What the client sees is what matters: an admitted method's reply, a denied
//! one's `PERMISSION_DENIED` with the filter's reply as message, a plain
//! HTTP POST to a gRPC method's path not admitted, server reflection denied
//! unless named, audit mode passing the denied method to the server.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use meshward_e2e::{call, AccessLog, EnvoyOptions, GrpcReply, GrpcServer, Scenario, Scratch};
use serde_json::{json, Value};

const FRONTEND: &str = "cluster.local/ns/shop/sa/frontend";
const SERVICE: &str = "shop.inventory.v1.Inventory";

/// Reads of the Inventory for the frontend, as control derives an Allowlist
/// `grpc` entry; `extra` is appended to the rules.
fn policy(mode: &str, extra: &str) -> String {
    format!(
        r#"{{"mode":"{mode}","log":{{"requests":"all"}},"policies":[{{"name":"shop/inventory","rules":[
          {{"name":"frontend-reads","from":[{{"principals":["{FRONTEND}"]}}],
            "to":[{{"grpc":{{"service":"{SERVICE}","methods":["GetItem","ListItems"]}}}}]}}{extra}]}}]}}"#
    )
}

/// A gRPC server, and Envoy with `config` in front of it.
fn start(config: &str) -> (Scenario, GrpcServer, Scratch) {
    let stubs = Scratch::new();
    let server = GrpcServer::start(stubs.path());
    let opts = EnvoyOptions::new(config)
        .grpc_upstream(server.port)
        .access_log(AccessLog {
            file: "grpc.log".into(),
            format: "%REQ(:PATH)% %RESPONSE_CODE% %GRPC_STATUS(NUMBER)% %RESPONSE_CODE_DETAILS% %FILTER_STATE(wasm.meshward.verdict:PLAIN)%\n".into(),
            filter: None,
        });
    (Scenario::start(opts), server, stubs)
}

fn reply<'a>(replies: &'a [GrpcReply], name: &str) -> &'a GrpcReply {
    replies.iter().find(|r| r.call == name).unwrap()
}

#[test]
fn grpc_methods_are_admitted_and_denied_as_grpc() {
    let (s, server, stubs) = start(&policy("enforce", ""));
    let frontend = s.pki.caller(FRONTEND);
    let replies = s.envoy.grpc(
        stubs.path(),
        &frontend,
        &[
            "GetItem",
            "ListItems",
            "DeleteItem",
            "reflection-v1alpha",
            "reflection-v1",
        ],
    );
    assert_eq!(replies.len(), 5, "{replies:?}");
    // Admitted methods get their replies.
    let get = reply(&replies, "GetItem");
    assert_eq!((get.code.as_str(), &get.reply), ("OK", &json!("widget 7")), "{get:?}");
    assert_eq!(reply(&replies, "ListItems").reply, json!(["widget 1"]));
    // A method the rule does not name: PERMISSION_DENIED, the filter's reply
    // (request id and decision, no rule) as the message.
    let denied = reply(&replies, "DeleteItem");
    assert_eq!(denied.code, "PERMISSION_DENIED", "{denied:?}");
    let message: Value = serde_json::from_str(denied.details.as_deref().unwrap()).unwrap();
    assert_eq!(message["decision"], "denied");
    assert!(
        message["requestId"].as_str().is_some_and(|id| !id.is_empty()),
        "{message}"
    );
    assert_eq!(message.as_object().unwrap().len(), 2, "no rule or policy: {message}");
    // Server reflection is a gRPC service like any other: not named, denied.
    for version in ["reflection-v1alpha", "reflection-v1"] {
        assert_eq!(reply(&replies, version).code, "PERMISSION_DENIED", "{version}");
    }
    // Only the admitted calls reached the server.
    assert_eq!(
        server.calls(),
        [format!("/{SERVICE}/GetItem"), format!("/{SERVICE}/ListItems")]
    );
    // The log line names the method by its path and says gRPC.
    let log = s.envoy.request_log();
    let line = log
        .iter()
        .find(|l| l["path"] == format!("/{SERVICE}/DeleteItem"))
        .unwrap();
    assert_eq!(
        (&line["verdict"], &line["grpc"], &line["method"]),
        (&json!("deny"), &json!(true), &json!("POST"))
    );
    let line = log.iter().find(|l| l["path"] == format!("/{SERVICE}/GetItem")).unwrap();
    assert_eq!(
        (&line["verdict"], &line["rule"]),
        (&json!("allow"), &json!("frontend-reads"))
    );
    // A caller the rule does not name is denied every method.
    let other = s.pki.caller("cluster.local/ns/shop/sa/other");
    let replies = s.envoy.grpc(stubs.path(), &other, &["GetItem"]);
    assert_eq!(replies[0].code, "PERMISSION_DENIED");
    // What Envoy recorded for a denied gRPC call: a trailers-only 200 with
    // grpc-status 7, the filter's local reply.
    let access = s.envoy.eventually(|e| {
        let lines = e.access_log_named("grpc.log");
        lines
            .iter()
            .find(|l| l.starts_with(&format!("/{SERVICE}/DeleteItem ")))
            .cloned()
    });
    let access = access.expect("an access-log line for DeleteItem");
    assert!(access.contains(" 200 7 "), "{access}");
    println!("access log of a denied gRPC call: {access}");
}

/// The same path as a gRPC method, sent as plain HTTP: the `grpc` entry does
/// not admit it, and the reply is HTTP's (denyStatus and the JSON body).
/// gRPC-Web is not gRPC either (Envoy's own test); the reply to a gRPC call,
/// on the wire, is a trailers-only HTTP 200 with grpc-status 7, whatever
/// denyStatus is (Envoy would map a 404 to UNIMPLEMENTED), and 3 for a
/// malformed one (Envoy would map the 400 to INTERNAL).
#[test]
fn a_plain_post_to_a_grpc_path_is_not_admitted() {
    let config = policy("enforce", "").replacen('{', r#"{"denyStatus":404,"#, 1);
    let (s, server, _stubs) = start(&config);
    let frontend = s.pki.caller(FRONTEND);
    let path = format!("/{SERVICE}/GetItem");
    for content_type in ["application/json", "application/grpc-web+proto", "Application/grpc"] {
        let r = s.envoy.send(
            &frontend,
            &call("POST", &path).h2().header("content-type", content_type),
        );
        assert_eq!(r.status, 404, "{content_type}: {r:?}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["decision"], "denied", "{content_type}");
    }
    assert!(server.calls().is_empty(), "{:?}", server.calls());
    // A gRPC request from curl, headers printed: the deny is HTTP 200 with
    // content-type application/grpc, grpc-status 7 and grpc-message, no body.
    let headers = curl_grpc_headers(&s, &frontend, &format!("/{SERVICE}/DeleteItem"));
    let lower = headers.to_ascii_lowercase();
    assert!(lower.starts_with("http/2 200"), "{headers}");
    assert!(lower.contains("\ncontent-type: application/grpc\r"), "{headers}");
    assert!(lower.contains("\ngrpc-status: 7\r"), "{headers}");
    // Envoy percent-encodes only what is outside printable ASCII (and `%`).
    assert!(
        lower.contains("\ngrpc-message: {\"decision\":\"denied\",\"requestid\":"),
        "{headers}"
    );
    assert!(!lower.contains("application/json"), "{headers}");
    let headers = curl_grpc_headers(&s, &frontend, &format!("/{SERVICE}/..%2FGetItem"));
    let lower = headers.to_ascii_lowercase();
    assert!(lower.starts_with("http/2 200"), "{headers}");
    assert!(lower.contains("\ngrpc-status: 3\r"), "{headers}");
    assert!(lower.contains("\"decision\":\"rejected\""), "{headers}");
    assert!(server.calls().is_empty(), "{:?}", server.calls());
}

/// A gRPC POST with curl through the mTLS listener: the response headers.
fn curl_grpc_headers(s: &Scenario, caller: &meshward_e2e::Caller, path: &str) -> String {
    let meshward_e2e::Caller::Mtls { cert, key } = caller else {
        unreachable!()
    };
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-X",
            "POST",
        ])
        .args([
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--data-binary",
            "",
        ])
        .arg("--cacert")
        .arg(s.pki.ca())
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(format!("https://localhost:{}{path}", s.envoy.mtls))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reflection admitted by naming its service; the other version stays
/// denied.
#[test]
fn server_reflection_only_when_named() {
    let extra = r#",{"name":"reflection","to":[{"grpc":{"service":"grpc.reflection.v1alpha.ServerReflection","methods":["*"]}}]}"#;
    let (s, server, stubs) = start(&policy("enforce", extra));
    let frontend = s.pki.caller(FRONTEND);
    let replies = s
        .envoy
        .grpc(stubs.path(), &frontend, &["reflection-v1alpha", "reflection-v1"]);
    let v1alpha = reply(&replies, "reflection-v1alpha");
    assert_eq!(v1alpha.code, "OK", "{v1alpha:?}");
    assert!(
        v1alpha.reply.as_array().unwrap().contains(&json!(SERVICE)),
        "{v1alpha:?}"
    );
    assert_eq!(reply(&replies, "reflection-v1").code, "PERMISSION_DENIED");
    assert_eq!(
        server.calls(),
        ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]
    );
}

/// Audit mode: the method the rule does not name reaches the server, and
/// the log says it would have been denied.
#[test]
fn audit_mode_passes_denied_methods_to_the_server() {
    let (s, server, stubs) = start(&policy("audit", ""));
    let frontend = s.pki.caller(FRONTEND);
    let replies = s.envoy.grpc(stubs.path(), &frontend, &["GetItem", "DeleteItem"]);
    assert_eq!(reply(&replies, "DeleteItem").code, "OK", "{replies:?}");
    assert_eq!(reply(&replies, "DeleteItem").reply, json!("deleted"));
    assert_eq!(
        server.calls(),
        [format!("/{SERVICE}/GetItem"), format!("/{SERVICE}/DeleteItem")]
    );
    let log = s.envoy.request_log();
    let line = log
        .iter()
        .find(|l| l["path"] == format!("/{SERVICE}/DeleteItem"))
        .unwrap();
    assert_eq!(
        (&line["verdict"], &line["mode"]),
        (&json!("audit_deny"), &json!("audit"))
    );
}
