//! The rollout planner: a pure function from (intent, observed, now) to actions, and the
//! statistics of its health gates. Time is a parameter (milliseconds), so the engine is tested
//! deterministically without sleeping.
//!
//! Owns: wave arithmetic, cohort choice, gate verdicts. Must not: do I/O, read clocks, or hold
//! state between calls — the caller stores the intent and feeds back what it observes.
#![forbid(unsafe_code)]

pub mod gates;
pub mod plan;

pub use gates::{Counts, GateSettings, Verdict, judge};
pub use plan::{Action, Intent, Observed, Plan, ReleaseState, Wave, WaveTarget, step};
