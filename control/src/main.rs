//! The `meshward-control` command line; see [`meshward_control::cli`].

use std::process::ExitCode;

use clap::Parser;
use meshward_control::cli::{self, Cli};

fn main() -> ExitCode {
    cli::run(Cli::parse())
}
