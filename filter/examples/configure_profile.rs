//! Compiles the 10,000-rule benchmark configuration once, for instruction
//! counts that do not depend on machine noise:
//!
//! ```sh
//! cargo build --profile bench -p meshward-filter --example configure_profile
//! valgrind --tool=callgrind target/release/examples/configure_profile
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let json = common::generated_rules(10_000);
    let engine = meshward_filter::Engine::from_json(json.as_bytes());
    match engine {
        Ok(engine) => println!("{:?}", engine.stats()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
