//! What the REST API promises about a request's query string and body,
//! checked without a server by one function, [`check`]: the endpoints'
//! own parsing functions (the query as axum's `Query` reads it, the health
//! checks, `read_json`, and the checks of switchover, failover, restart,
//! reinitialize, `PATCH`/`PUT /config` and `POST /failsafe` bodies) never
//! panic; every `4xx` says what was wrong; no `5xx` but those Patroni
//! defines (`500` for a restart scheduled while paused, `502`, `503`).
//!
//! Both fuzzers call it: the bounded, seeded test at the bottom of this
//! file ([`generate`], in CI) and the cargo fuzz target `rest_requests`
//! ([`from_bytes`]). The in-process and live REST fuzzers
//! (`api::fuzz_tests`, `bench rest-fuzz`) cover the rest (routing,
//! headers, authentication, the state changes).

use std::sync::{Arc, OnceLock};

use axum::body::HttpBody;
use axum::extract::Query;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use palisade_model::{Cluster, Role, State};
use palisade_plugin_api::sdk::dcs::{assemble, Keys, Stored};
use palisade_test_support::rest_inputs::{BODY_KEYS, PATHS};
use serde_json::{Map, Value};

use super::dcs::{self, Rng};
use crate::api::{actions, health, reply, status_json};
use crate::status::NodeStatus;

/// The endpoints whose bodies are read.
pub const ENDPOINTS: &[&str] =
    &["switchover", "failover", "restart", "reinitialize", "patch config", "put config", "failsafe"];

/// One request: its query string (raw, as sent), the endpoint its body
/// goes to, whether `Content-Length` was sent, the body, whether the
/// cluster is paused, and the node's role.
#[derive(Debug)]
pub struct Case {
    pub query: String,
    pub endpoint: usize,
    pub content_length: bool,
    pub body: Vec<u8>,
    pub paused: bool,
    pub role: Role,
}

/// A cluster of n1 (leader), n2 and n3 from valid member values.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let mut rng = Rng::new(1);
        let mut found = vec![Stored {
            key: "/service/demo/leader".into(),
            value: "n1".into(),
            version: "1".into(),
            session: "1".into(),
        }];
        for name in ["n1", "n2", "n3"] {
            found.push(Stored {
                key: format!("/service/demo/members/{name}"),
                value: dcs::valid("member", &mut rng),
                version: "1".into(),
                session: String::new(),
            });
        }
        let snapshot = assemble(&Keys::new("/service/", "demo", None), &found);
        palisade_plugin_host::snapshot::cluster_from_snapshot(snapshot).0
    })
}

fn body_size(r: &Response) -> Option<u64> {
    r.body().size_hint().exact()
}

/// An answer's code and body keep the promises.
fn check_answer(what: &str, code: u16, has_body: bool) {
    assert!(!(400..500).contains(&code) || has_body, "{what}: {code} without a body saying what was wrong");
    assert!(code < 500 || [500, 502, 503].contains(&code), "{what}: {code}, a 5xx Patroni does not define");
}

fn check_response(what: &str, r: &Response) {
    check_answer(what, r.status().as_u16(), body_size(r).is_none_or(|n| n > 0));
}

/// Check one request (see the module's documentation). Panics, naming the
/// request, when a promise is broken.
pub fn check(case: &Case, now: DateTime<Utc>) {
    let cluster = cluster();
    let mut status = NodeStatus::new("demo", "n2");
    status.role = case.role;
    status.state = State::Running;
    status.paused = case.paused;
    status.cluster = Some(Arc::new(cluster.clone()));
    status.known_leader = Some("n1".into());
    // The query string, as axum's `Query` reads it for the health checks.
    for path in PATHS {
        let Ok(uri) = format!("{path}?{}", case.query).parse::<Uri>() else { continue };
        match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
            Err(rejection) => {
                let text = rejection.body_text();
                check_answer(&format!("query {:?}", case.query), rejection.status().as_u16(), !text.is_empty());
            }
            Ok(Query(q)) => {
                let body = status_json::status_json(&status, None);
                let code = health::health_code(path, &q, &status, &body);
                assert!([200, 503].contains(&code), "GET {path}?{}: {code}", case.query);
                if let Some(why) = health::readiness_failure(&q, &status) {
                    assert!(!why.trim().is_empty(), "readiness {:?}: a failure without a reason", case.query);
                }
                for (_, v) in &q {
                    let _ = health::parse_size(v);
                }
            }
        }
    }
    // The body, as the endpoint reads it.
    let endpoint = ENDPOINTS[case.endpoint % ENDPOINTS.len()];
    let what = format!("{endpoint} with {:?}", String::from_utf8_lossy(&case.body));
    let mut headers = HeaderMap::new();
    if case.content_length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(case.body.len()));
    }
    let optional = matches!(endpoint, "restart" | "reinitialize");
    let body = match reply::read_json(&headers, &case.body, optional) {
        Ok(b) => b,
        Err(r) => return check_response(&what, &r),
    };
    match endpoint {
        "switchover" | "failover" => {
            let action = if endpoint == "switchover" { "switchover" } else { "failover" };
            if let Err(r) = actions::check_request(action, &body, cluster, case.paused, now) {
                check_response(&what, &r);
            }
        }
        "restart" => {
            if let Err((code, text)) = actions::restart_request(&body, case.paused, now) {
                check_answer(&what, code, !text.trim().is_empty());
                assert!(code != 500 || case.paused, "{what}: 500 while not paused");
            }
        }
        "reinitialize" => {
            if let Err(r) = actions::reinitialize_flags(&body) {
                check_response(&what, &r);
            }
        }
        "patch config" => {
            let old = cluster.config_data().clone();
            let mut new = old.clone();
            if palisade_config::patch_config(&mut new, &body) {
                if let Some(r) = actions::config_errors(&old, &new) {
                    check_response(&what, &r);
                }
            }
            let _ = palisade_config::GlobalConfig::from_dynamic(&new);
        }
        "put config" => {
            if let Some(r) = actions::config_errors(&Map::new(), &body) {
                check_response(&what, &r);
            }
            let (_, warnings) = palisade_config::GlobalConfig::from_dynamic(&body);
            for w in warnings {
                assert!(!w.message.trim().is_empty(), "{what}: a warning without a message at '{}'", w.path);
            }
        }
        _ => {
            if let Err(r) = actions::failsafe_leader(&body) {
                check_response(&what, &r);
            }
        }
    }
}

/// Pieces of query strings: the parameters the health checks read, with
/// right and wrong values, and broken percent-encoding.
const QUERY_PIECES: &[&str] = &[
    "lag=",
    "lag=1",
    "lag=10MB",
    "lag=1 kB",
    "lag=-1",
    "lag=1e3",
    "lag=99999999999999999999TB",
    "lag=1.5GB",
    "tag_nofailover=true",
    "tag_x=",
    "tag_=1",
    "tag_clonefrom=%FF",
    "replication_state=streaming",
    "replication_state=",
    "mode=apply",
    "mode=write",
    "mode=",
    "mode=%00",
    "=",
    "&",
    "&&",
    "a",
    "%",
    "%2",
    "%zz",
    "%ff%fe",
    "+",
    "%20",
    "lag",
    "lag=1&lag=2",
    "replication_state=in%20archive%20recovery",
    "é=é",
    "\u{1f600}",
];

/// A generated case: a query string of pieces, and a body for an endpoint
/// of [`ENDPOINTS`]: an object of body keys with values of every JSON
/// type (valid ones among them), or the DCS generators' wrong-typed,
/// deep, huge or cut JSON and random bytes.
pub fn generate(rng: &mut Rng) -> Case {
    let pieces: Vec<&str> = (0..rng.below(5)).map(|_| *rng.pick(QUERY_PIECES)).collect();
    let mut query = pieces.join(if rng.one_in(4) { ";" } else { "&" });
    if rng.one_in(10) {
        query.push_str(&dcs::bytes(rng));
    }
    let body = match rng.below(8) {
        0 => dcs::bytes(rng).into_bytes(),
        1 => dcs::json(rng, 4).into_bytes(),
        2 => Vec::new(),
        _ => {
            let fields: Vec<String> = (0..1 + rng.below(4))
                .map(|_| {
                    let key = *rng.pick(BODY_KEYS);
                    let value = match rng.below(4) {
                        0 => dcs::json(rng, 3),
                        1 => dcs::scalar(rng),
                        _ => serde_json::Value::String(
                            rng.pick(&[
                                "n1",
                                "n2",
                                "n3",
                                "n4",
                                "primary",
                                "replica",
                                "2099-01-01T00:00:00+00:00",
                                "2020-01-01T00:00:00Z",
                                "2099-01-01 00:00",
                                "true",
                                "off",
                                "http://h:1/patroni",
                                "postgres://h:5432/p",
                                "",
                            ])
                            .to_string(),
                        )
                        .to_string(),
                    };
                    format!("{}:{value}", Value::String(key.to_string()))
                })
                .collect();
            let text = format!("{{{}}}", fields.join(","));
            if rng.one_in(6) {
                dcs::mutate(&text, rng).into_bytes()
            } else {
                text.into_bytes()
            }
        }
    };
    Case {
        query,
        endpoint: rng.below(ENDPOINTS.len()),
        content_length: !rng.one_in(8),
        body,
        paused: rng.one_in(4),
        role: *rng.pick(&[Role::Primary, Role::Replica, Role::StandbyLeader, Role::Uninitialized]),
    }
}

/// A case from a fuzzer's bytes: the first byte chooses the endpoint,
/// `Content-Length`, pause and role; the rest up to the first NUL is the
/// query string; the remainder is the body.
pub fn from_bytes(data: &[u8]) -> Case {
    let (&head, rest) = data.split_first().unwrap_or((&0, &[]));
    let (query, body) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    Case {
        query: String::from_utf8_lossy(query).into_owned(),
        endpoint: usize::from(head & 0x0f),
        content_length: head & 0x10 == 0,
        body: body.to_vec(),
        paused: head & 0x20 != 0,
        role: [Role::Primary, Role::Replica, Role::StandbyLeader, Role::Uninitialized][usize::from(head >> 6)],
    }
}

/// A fixed "now" for the checks (schedules compare with it).
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounded version of the cargo fuzz target `rest_requests`:
    /// `PALISADE_FUZZ_CASES` generated requests (default 3,000) from
    /// `PALISADE_FUZZ_SEED`.
    #[test]
    fn generated_query_strings_and_bodies_are_parsed_or_refused_with_a_reason() {
        let cases = dcs::cases(3000);
        let first = dcs::first_seed();
        for i in 0..cases as u64 {
            let seed = first.wrapping_add(i);
            let case = generate(&mut Rng::new(seed));
            let outcome = std::panic::catch_unwind(|| check(&case, now()));
            assert!(outcome.is_ok(), "{case:?} failed (rerun: PALISADE_FUZZ_CASES=1 PALISADE_FUZZ_SEED={seed})");
        }
        eprintln!("REST parsing: {cases} cases from seed {first}");
    }
}
