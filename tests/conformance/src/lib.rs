//! twofold-conformance: the conformance suite of twofold. Scenario files (data, under
//! `scenarios/`) name the SPEC rules they cover; the runner plays the browser with the
//! testkit's software authenticator, drives every host through the driver protocol
//! (`PROTOCOL.md`), checks each answer, and requires every host's transcript to equal the
//! reference's (the core engine, in process). README.md describes the scenario language.

pub mod driver;
pub mod fixture;
pub mod ops;
pub mod runner;
pub mod scenario;
pub mod target;
pub mod transcript;
pub mod values;
