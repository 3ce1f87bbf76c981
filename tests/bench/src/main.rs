//! `meshward-bench`: the side-by-side load runs (see the crate docs,
//! BENCHMARKS.md and `meshward-bench --help`). Owned by the runner half of
//! the harness.
//!
//! Child processes (the Envoys) are killed when their guards drop, on
//! success and on error; Ctrl-C in a terminal reaches them directly (they
//! stay in the foreground process group).

mod cli;
mod http;
mod procstat;
mod report;
mod runner;
mod wrk;

use cli::Parsed;
use meshward_bench::configs::Variant;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshward-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (two levels above this crate).
fn workspace() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    path.canonicalize().unwrap_or(path)
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let opts = match cli::parse(args.get(1..).unwrap_or_default())? {
        Parsed::Help => {
            print!("{}", cli::USAGE);
            return Ok(ExitCode::SUCCESS);
        }
        Parsed::Run(opts) => *opts,
    };
    let workspace = workspace();
    let wrk_version = wrk::check_installed()?;
    Command::new("taskset")
        .arg("-V")
        .output()
        .map_err(|e| format!("taskset is not available ({e}): it comes with util-linux"))?;
    let envoy = runner::envoy_binary(&opts, &workspace)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let release = target.join("wasm32-wasip1/release");
    let meshward_wasm = release.join("meshward_filter.wasm");
    let noop_wasm = release.join("meshward_noop_filter.wasm");
    for (variant, module) in [(Variant::Meshward, &meshward_wasm), (Variant::NoopWasm, &noop_wasm)] {
        if opts.variants.contains(&variant) && !module.exists() {
            return Err(format!(
                "{} is missing (needed by {}): run `make build-wasm`",
                module.display(),
                cli::variant_label(variant)
            ));
        }
    }
    if opts.envoy_cpu == opts.load_cpu {
        eprintln!(
            "warning: the Envoy under test and the load share CPU {}; figures will be skewed",
            opts.envoy_cpu
        );
    }
    let clk_tck = procstat::clk_tck();
    let scratch = std::env::temp_dir().join(format!("meshward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
    let machine = report::Machine::describe(&envoy, wrk_version);
    let bench = runner::Bench {
        opts,
        envoy,
        clk_tck,
        meshward_wasm,
        noop_wasm,
        scratch: scratch.clone(),
    };
    let results = bench.run();
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            return Err(format!("{e}\n(files kept in {})", scratch.display()));
        }
    };
    print!("{}", report::render(&bench.opts, &machine, args, clk_tck, &results));
    if results.refused.is_empty() {
        if !bench.opts.keep {
            let _ = std::fs::remove_dir_all(&scratch);
        } else {
            eprintln!("files kept in {}", scratch.display());
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "meshward-bench: {} configuration(s) not reported; files kept in {}",
            results.refused.len(),
            scratch.display()
        );
        Ok(ExitCode::FAILURE)
    }
}
