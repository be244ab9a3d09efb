//! The world `rampart up` and `rampart drill` run against, and that tests reuse: real servers on
//! loopback that behave like the things a gateway talks to, with behaviour switchable at run time.
//!
//! Owns: the example backend (`echo`), an OAuth2 introspection and JWKS server (`auth`), DNS
//! servers that answer or never do (`dns`), a notification receiver (`receiver`), a steady,
//! sampled load through a fleet of gateways (`traffic`), loopback ports (`ports`) and the small
//! HTTP client they share (`client`).
//! Must not: depend on rampart's planes (both use it in their tests), or hold anything only tests
//! need (browser drivers, protocol-abuse peers and recorders live in `rampart-testkit`).
#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod dns;
pub mod echo;
pub mod ports;
pub mod postgres;
pub mod receiver;
pub mod serve;
pub mod traffic;

pub use echo::{EchoControl, EchoServer};
