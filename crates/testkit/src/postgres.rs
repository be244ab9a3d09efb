//! A real PostgreSQL server for one test: the demo world's (`rampart_demo::postgres`), so tests,
//! benchmarks and the drill start it alike.

pub use rampart_demo::postgres::*;
