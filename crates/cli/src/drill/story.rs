//! How the drill tells its story: numbered steps, checks that held or not, notes, and the
//! closing tally. Everything the drill prints goes through here, to standard output.

use std::time::{Duration, Instant};

struct Check {
    what: String,
    held: bool,
}

/// The narrative of one drill run, and the checks it made.
pub struct Story {
    started: Instant,
    steps: usize,
    step: usize,
    checks: Vec<Check>,
}

impl Story {
    pub fn new(steps: usize) -> Story {
        Story {
            started: Instant::now(),
            steps,
            step: 0,
            checks: vec![],
        }
    }

    /// When the drill began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Seconds since the drill began.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Opens the next numbered step.
    pub fn step(&mut self, title: &str) {
        self.step += 1;
        println!(
            "\n[{}/{}] {title}   (t+{:.1} s)",
            self.step,
            self.steps,
            self.elapsed()
        );
    }

    /// Records a check, and says whether it held.
    pub fn check(&mut self, held: bool, what: impl Into<String>) {
        let what = what.into();
        println!("      {} {what}", if held { "✔" } else { "✘ FAILED:" });
        self.checks.push(Check { what, held });
    }

    pub fn note(&self, text: impl AsRef<str>) {
        println!("      · {}", text.as_ref());
    }

    /// Prints `what`, then a dot every half second, until it says done or `within` passes;
    /// returns whether it did.
    pub async fn wait_dotted<F: AsyncFnMut() -> bool>(
        &self,
        what: &str,
        within: Duration,
        mut done: F,
    ) -> bool {
        print!("      · {what}");
        let ok = wait_for(within, async || {
            print!(".");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            tokio::time::sleep(Duration::from_millis(450)).await;
            done().await
        })
        .await;
        println!();
        ok
    }

    /// Prints `what`, then a dot a second until `until`.
    pub async fn wait_until(&self, what: &str, until: Instant) {
        if Instant::now() >= until {
            return;
        }
        print!("      · {what}");
        while Instant::now() < until {
            print!(".");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!();
    }

    /// Prints the tally; true when every check held.
    pub fn finish(&self) -> bool {
        let held = self.checks.iter().all(|c| c.held);
        println!(
            "\n{} — {} of {} checks held, in {:.1} s",
            if held {
                "every defence held"
            } else {
                "SOME DEFENCES DID NOT HOLD"
            },
            self.checks.iter().filter(|c| c.held).count(),
            self.checks.len(),
            self.elapsed()
        );
        for c in self.checks.iter().filter(|c| !c.held) {
            println!("  ✘ {}", c.what);
        }
        held
    }
}

/// Polls `f` every 50 ms until it is true or `within` passes; returns whether it became true.
pub async fn wait_for<F: AsyncFnMut() -> bool>(within: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
