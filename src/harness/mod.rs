//! Not used by the nightly run: what the tests, the demo and the benchmark
//! stand on. The test worlds (`world`, with their `settings` extension in
//! `world_settings`), the fake PowerSchool written from the wire spec
//! (`fake_powerschool`), seeding SchoolEngage's side of a world (`seed`), and the
//! benchmark's deterministic changes to a district between runs (`change`).

pub mod change;
pub mod fake_powerschool;
pub mod seed;
pub mod world;
pub mod world_settings;
