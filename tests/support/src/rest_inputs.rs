//! What the REST API fuzzers send: every method, every path Patroni's API
//! serves (health checks with their legacy spellings included) and a path
//! it does not. One list for the in-process fuzzer (`palisade-daemon`'s
//! `api::fuzz_tests`) and the live one (`palisade_tests::rest_fuzz`).

/// HTTP methods, including ones no endpoint serves and a lower-case one.
pub const METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE", "PURGE", "get"];

/// Every path of the REST API, and one it does not have (`/nothing`).
pub const PATHS: &[&str] = &[
    "/patroni",
    "/liveness",
    "/readiness",
    "/cluster",
    "/history",
    "/config",
    "/failsafe",
    "/metrics",
    "/switchover",
    "/failover",
    "/restart",
    "/reload",
    "/reinitialize",
    "/mpp",
    "/citus",
    "/",
    "/health",
    "/primary",
    "/master",
    "/leader",
    "/replica",
    "/read-write",
    "/read-only",
    "/standby-leader",
    "/standby_leader",
    "/sync",
    "/synchronous",
    "/async",
    "/asynchronous",
    "/read-only-sync",
    "/quorum",
    "/read-only-quorum",
    "/nothing",
];

/// The body fields of every endpoint.
pub const BODY_KEYS: &[&str] = &[
    "leader",
    "candidate",
    "member",
    "scheduled_at",
    "schedule",
    "role",
    "restart_pending",
    "timeout",
    "postgres_version",
    "force",
    "from_leader",
    "ttl",
    "loop_wait",
    "retry_timeout",
    "postgresql",
    "parameters",
    "pause",
    "name",
    "api_url",
    "conn_url",
    "slots",
    "type",
    "group",
    "cooldown",
    "",
];
