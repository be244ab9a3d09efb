//! Where logs go: standard error, except for the drill, whose standard output tells a story
//! that the logs of the components it runs in-process would drown; those go to the file it
//! names, unless `--verbose`.

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::args::Command;

pub fn init(command: &Command) -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match command {
        Command::Drill(a) if !a.verbose => {
            // Once, before anything runs.
            #[allow(clippy::disallowed_methods)]
            let file = std::fs::File::create(&a.log)
                .with_context(|| format!("creating the log file {}", a.log.display()))?;
            logs.with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        // Colours only for a person at a terminal; a file or a pipe gets plain text.
        _ => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
    Ok(())
}
