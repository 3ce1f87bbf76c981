//! `meshward-bench`: the side-by-side load runs (see the crate docs and
//! BENCHMARKS.md). Owned by the runner half of the harness.

fn main() {
    println!("meshward-bench: not yet implemented");
}
