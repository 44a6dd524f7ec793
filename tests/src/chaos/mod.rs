//! The randomized fault campaign (`palisade-chaos`): what it records
//! ([`record`]) while it breaks a live cluster, and the checker that
//! proves, from those records alone, that no two primaries accepted writes
//! and that no acknowledged write was lost.
//!
//! The campaign ([`run`]) makes its own network ([`topology`]: a namespace
//! per node, with a cluster link and a control link), starts the DCS and
//! three nodes in it ([`launch`]), writes and watches over the control
//! links ([`clients`]) while it injects faults drawn from a seed
//! ([`faults`]), and hands what it recorded to [`check`].

pub mod campaign;
pub mod check;
pub mod clients;
pub mod faults;
pub mod launch;
pub mod record;
pub mod topology;

pub use campaign::{run, Options, Outcome};
