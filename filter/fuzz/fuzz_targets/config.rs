//! The plugin configuration's parser and compiler (`filter/src/config.rs`,
//! `Engine::compile`): arbitrary bytes never panic, and what is accepted
//! behaves.
//!
//! * Parsing then compiling gives the same result as `Engine::from_json`.
//! * An accepted configuration survives its writer's round trip: the JSON
//!   `to_json` writes parses back to the same configuration, which compiles.
//! * An accepted configuration selects and evaluates a few requests without
//!   panicking, and every decision names a rule of the configuration.
//! * A refused configuration's error message starts with a field path or a
//!   position, never empty.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use meshward_filter::{Engine, Evaluator, PluginConfig, Request};

fuzz_target!(|data: &[u8]| {
    let parsed = PluginConfig::from_json(data);
    let direct = Engine::from_json(data);
    let config = match parsed {
        Ok(config) => config,
        Err(e) => {
            assert!(direct.is_err(), "from_json accepted what the parser refused");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let compiled = Engine::compile(&config);
    assert_eq!(
        compiled.as_ref().map(|_| ()).map_err(ToString::to_string),
        direct.as_ref().map(|_| ()).map_err(ToString::to_string),
        "compile and from_json disagree"
    );
    let written = config.to_json();
    let reparsed = PluginConfig::from_json(written.as_bytes()).unwrap_or_else(|e| panic!("{written}: {e}"));
    assert_eq!(reparsed, config, "round trip changed the configuration: {written}");
    let engine = match compiled {
        Ok(engine) => engine,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    // Two label lookups: no labels, and a value for every key.
    let engine = Arc::new(engine);
    for labels in [false, true] {
        let selection = engine.select(|key| labels.then(|| format!("{key}-value")));
        let mut evaluator = Evaluator::new(Arc::clone(&engine), selection);
        let headers = [("x-h", "1, 2"), ("x-api-version", "v1")];
        for (method, path, authority) in [
            ("GET", "/", Some("svc:80")),
            ("POST", "/a/../b/%61?q", Some("Example.COM.")),
            ("get", "/reviews/1", None),
        ] {
            let decision = evaluator.evaluate(&Request {
                connection: Default::default(),
                method,
                path,
                authority,
                port: Some(80),
                principal: Some("cluster.local/ns/a/sa/b"),
                auth: None,
                headers: &headers[..],
            });
            if let Some(rule) = decision.rule() {
                assert!((rule.policy as usize) < engine.policy_count());
                let _ = engine.rule_name(rule);
            }
        }
    }
});
