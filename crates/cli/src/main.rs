//! The `rampart` command: argument parsing and output only; the work is in the library crates.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod commands;
mod drill;
mod local;
mod logging;
mod up;

/// The system's allocator by default: measured against mimalloc on the proxy's request path,
/// the throughput is the same and an idle connection costs a third less memory with it (see
/// "Memory per idle connection" in BENCHMARKS.md). `--features mimalloc` builds with mimalloc.
#[cfg(feature = "mimalloc")]
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
