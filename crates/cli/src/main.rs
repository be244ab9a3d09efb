//! The `rampart` command: argument parsing and output only; the work is in the library crates.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod commands;
mod drill;
mod local;
mod logging;
mod up;

/// mimalloc: the proxy allocates small, short-lived buffers per request; glibc malloc spent
/// about a tenth of the serving core on them (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    if let Err(e) = logging::init(&cli.command) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
