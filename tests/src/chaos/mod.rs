//! The randomized fault campaign (`palisade-chaos`): what it records
//! ([`record`]) while it breaks a live cluster, and the checker that
//! proves, from those records alone, that no two primaries accepted writes
//! and that no acknowledged write was lost.

pub mod check;
pub mod record;
