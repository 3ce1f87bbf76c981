//! Addresses, negations and condition keys in a real Envoy: `ipBlocks` are
//! judged on the direct peer and a spoofed `x-forwarded-for` never changes
//! that, `remoteIpBlocks` follow `x-forwarded-for` as far as the listener
//! trusts it, IPv6 peers match IPv6 blocks, `notMethods` and `notPorts`
//! exclude, and `when` keys read the peer, the destination and the TLS server
//! name.
//!
//! What the filter reads (docs/configuration.md, "Addresses"): Envoy's
//! `source.address` is the downstream address its connection manager settled
//! on. With `use_remote_address: false` (Envoy's default, Istio's sidecar
//! inbound) a request carrying `x-forwarded-for` makes it the last entry of
//! that header, with port 0; with `use_remote_address: true` and trusted hops
//! it is the entry those hops vouch for, port 0 again. Only an address with a
//! nonzero port is the connection's peer, so these tests send spoofed headers
//! through both kinds of listener.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use meshward_e2e::{call, Call, Caller, EnvoyOptions, Scenario};

const PRODUCTPAGE: &str = "cluster.local/ns/shop/sa/productpage";

/// Loopback callers are admitted; `/spoof/*` only for 10.9.9.9, the address
/// the spoofed header claims; a deny rule refuses `/guarded/*` to any caller
/// that is not loopback.
const PEER_POLICY: &str = r#"{"policies":[
  {"name":"shop/loopback","rules":[
    {"name":"loopback","from":[{"ipBlocks":["127.0.0.0/8"]}],"to":[{"notPaths":["/spoof/*"]}]},
    {"name":"spoofed","from":[{"ipBlocks":["10.9.9.9"]}],"to":[{"paths":["/spoof/*"]}]}]},
  {"name":"shop/guard","action":"deny","rules":[
    {"name":"not-loopback","from":[{"notIpBlocks":["127.0.0.0/8"]}],"to":[{"paths":["/guarded/*"]}]}]}
]}"#;

fn status(s: &Scenario, caller: &Caller, c: &Call) -> u16 {
    s.envoy.send(caller, c).status
}

/// Waits for `n` access-log lines.
fn access_log(s: &Scenario, n: usize) -> Vec<String> {
    s.envoy
        .eventually(|e| Some(e.access_log()).filter(|l| l.len() >= n))
        .unwrap_or_else(|| s.envoy.access_log())
}

/// Envoy's default connection manager (`use_remote_address: false`): a
/// request with `x-forwarded-for` has its downstream address replaced by
/// the header's last entry, so the direct peer is unknown to the filter. A
/// rule on the peer then admits nothing, and a deny rule on it refuses.
#[test]
fn a_spoofed_forwarded_for_never_stands_in_for_the_peer() {
    let s = Scenario::start(EnvoyOptions::new(PEER_POLICY));
    let spoof = |path: &str| call("GET", path).header("x-forwarded-for", "10.9.9.9");
    for (c, want) in [
        (call("GET", "/reviews/1"), 200),
        (call("GET", "/guarded/x"), 200),
        // Envoy's source.address is now 10.9.9.9:0: not the peer.
        (spoof("/reviews/1"), 403),
        (spoof("/spoof/x"), 403),
        (spoof("/guarded/x"), 403),
        // Even the truth is not taken from the header.
        (call("GET", "/reviews/1").header("x-forwarded-for", "127.0.0.1"), 403),
    ] {
        assert_eq!(status(&s, &Caller::Anonymous, &c), want, "{c:?}");
    }
    let paths = s.upstream.paths();
    assert!(!paths.iter().any(|p| p.starts_with("/spoof")), "{paths:?}");
    assert_eq!(
        access_log(&s, 6)[4],
        "GET /guarded/x 403 verdict=deny policy=shop/guard rule=not-loopback"
    );
}

/// With `use_remote_address: true` and no trusted hop, Envoy keeps the
/// connection's address and appends it to `x-forwarded-for`: the peer stays
/// 127.0.0.1 whatever the client writes.
#[test]
fn ip_blocks_judge_the_direct_peer_behind_use_remote_address() {
    let s = Scenario::start(EnvoyOptions::new(PEER_POLICY).trusted_hops(0));
    let spoof = |path: &str| call("GET", path).header("x-forwarded-for", "10.9.9.9");
    for (c, want) in [
        (call("GET", "/reviews/1"), 200),
        (spoof("/reviews/1"), 200),
        (spoof("/spoof/x"), 403),
        (spoof("/guarded/x"), 200),
    ] {
        assert_eq!(status(&s, &Caller::Anonymous, &c), want, "{c:?}");
    }
    assert_eq!(
        access_log(&s, 4)[1],
        "GET /reviews/1 200 verdict=allow policy=shop/loopback rule=loopback"
    );
}

/// `remoteIpBlocks` judge the client Envoy derives from `x-forwarded-for`
/// with the hops it trusts (one here): the entry the trusted proxy appended,
/// not what the client wrote before it.
#[test]
fn remote_ip_blocks_follow_forwarded_for_with_trusted_hops() {
    let policy = r#"{"policies":[{"name":"shop/partners","rules":[
      {"name":"partners","from":[{"remoteIpBlocks":["203.0.113.0/24","2001:db8::/32"]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(policy).trusted_hops(1));
    let via = |xff: &str| call("GET", "/reviews/1").header("x-forwarded-for", xff);
    for (c, want) in [
        (via("203.0.113.7"), 200),
        (via("2001:db8::7"), 200),
        (via("198.51.100.1"), 403),
        // The client wrote 203.0.113.7; the trusted proxy saw 198.51.100.1.
        (via("203.0.113.7, 198.51.100.1"), 403),
        (via("198.51.100.1, 203.0.113.7"), 200),
        // No header: the client is the peer.
        (call("GET", "/reviews/1"), 403),
    ] {
        assert_eq!(status(&s, &Caller::Anonymous, &c), want, "{c:?}");
    }
}

/// An IPv6 listener: the peer is `::1`, which IPv6 blocks hold and IPv4
/// blocks (even `0.0.0.0/0`) do not.
#[test]
fn an_ipv6_peer_matches_ipv6_blocks() {
    let policy = r#"{"policies":[{"name":"shop/v6","rules":[
      {"name":"v6","from":[{"ipBlocks":["::1/128"]}],"to":[{"paths":["/v6/*"]}]},
      {"name":"v4","from":[{"ipBlocks":["0.0.0.0/0"]}],"to":[{"paths":["/v4/*"]}]},
      {"name":"key","to":[{"paths":["/key/*"]}],"when":[{"key":"source.ip","values":["::/0"]},
        {"key":"destination.ip","values":["::1"]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(policy).listen_on("::1"));
    let pp = s.pki.caller(PRODUCTPAGE);
    for (caller, path, want) in [
        (&Caller::Anonymous, "/v6/a", 200),
        (&Caller::Anonymous, "/v4/a", 403),
        (&Caller::Anonymous, "/key/a", 200),
        (&pp, "/v6/a", 200),
    ] {
        assert_eq!(status(&s, caller, &call("GET", path)), want, "{path} as {caller:?}");
    }
}

/// `notMethods` and `notPorts` exclude: DELETE nowhere, and nothing on the
/// plaintext listener's port.
#[test]
fn not_methods_and_not_ports_exclude() {
    let policy = r#"{"policies":[{"name":"shop/reviews","rules":[
      {"name":"no-delete-no-plaintext-port","to":[{"notMethods":["DELETE"],"notPorts":[{plain_port}]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(policy));
    let pp = s.pki.caller(PRODUCTPAGE);
    for (caller, method, want) in [
        (&pp, "GET", 200),
        (&pp, "POST", 200),
        (&pp, "DELETE", 403),
        (&Caller::Anonymous, "GET", 403),
    ] {
        assert_eq!(
            status(&s, caller, &call(method, "/reviews/1")),
            want,
            "{method} as {caller:?}"
        );
    }
    let paths = s.upstream.paths();
    assert_eq!(paths.len(), 2, "{paths:?}");
}

/// `when` on `connection.sni` (the server name of the client's TLS hello),
/// `destination.port`, `source.ip` and `destination.ip`.
#[test]
fn when_keys_read_the_server_name_the_port_and_the_addresses() {
    let policy = r#"{"policies":[{"name":"shop/keys","rules":[
      {"name":"sni","to":[{"paths":["/sni/*"]}],"when":[{"key":"connection.sni","values":["*.example.com"]}]},
      {"name":"port","to":[{"paths":["/port/*"]}],"when":[{"key":"destination.port","values":["{mtls_port}"]}]},
      {"name":"peer","to":[{"paths":["/peer/*"]}],"when":[{"key":"source.ip","values":["127.0.0.1"]},
        {"key":"destination.ip","values":["127.0.0.0/8"]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(policy));
    let pp = s.pki.caller(PRODUCTPAGE);
    let anon = &Caller::Anonymous;
    for (caller, c, want) in [
        (&pp, call("GET", "/sni/a").sni("api.example.com"), 200),
        (&pp, call("GET", "/sni/a").sni("api.example.org"), 403),
        // curl sends `localhost`.
        (&pp, call("GET", "/sni/a"), 403),
        // Plaintext: no server name.
        (anon, call("GET", "/sni/a"), 403),
        (&pp, call("GET", "/port/a"), 200),
        (anon, call("GET", "/port/a"), 403),
        (anon, call("GET", "/peer/a"), 200),
        (anon, call("GET", "/peer/a").header("x-forwarded-for", "127.0.0.1"), 403),
    ] {
        assert_eq!(status(&s, caller, &c), want, "{c:?} as {caller:?}");
    }
}
