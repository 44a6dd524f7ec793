//! A large cluster: 100 members, each its own client (its own session or
//! lease), touching their keys at once; one `get_cluster` sees them all.

use std::thread;
use std::time::Duration;

use palisade_plugin_api::{Dcs, DcsTiming};

use super::{ok, snapshot, DcsFixture};

const MEMBERS: usize = 100;
/// Clients touch in this many threads at once.
const THREADS: usize = 10;

fn member_json(name: &str, state: &str) -> String {
    format!(
        r#"{{"conn_url":"postgres://{name}:5432/postgres","api_url":"http://{name}:8008/patroni","state":"{state}","role":"replica","version":"4.1.0"}}"#
    )
}

fn touch_all(clients: &[(String, Box<dyn Dcs>)], state: &str) {
    let chunk = clients.len().div_ceil(THREADS);
    thread::scope(|s| {
        for part in clients.chunks(chunk) {
            s.spawn(move || {
                for (name, c) in part {
                    assert!(ok("touch_member", c.touch_member(&member_json(name, state))), "{name}");
                }
            });
        }
    });
}

fn check(dcs: &dyn Dcs, names: &[String], state: &str) {
    let s = snapshot(dcs);
    let seen: Vec<&str> = s.members.iter().map(|m| m.name.as_str()).collect();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "one get_cluster sees every member, sorted by name");
    for m in &s.members {
        assert_eq!(m.value, member_json(&m.name, state), "the value of {}", m.name);
    }
}

/// 100 members touch their keys (names that sort differently as text and
/// as numbers: `m1`, `m10`, `m100`, `m11`...); one snapshot holds all of
/// them with their values, sorted by name, and again after every member
/// changed its value. The members run with a ttl of at least 30 s (set
/// through `set_timing`) so that a slow machine does not expire them
/// between the touches and the read.
pub fn hundred_members_in_one_snapshot(f: &dyn DcsFixture) {
    let base = f.timing();
    let timing = DcsTiming { ttl: base.ttl.max(Duration::from_secs(30)), ..base };
    let clients: Vec<(String, Box<dyn Dcs>)> = (1..=MEMBERS)
        .map(|i| {
            let name = format!("m{i}");
            let c = f.new_dcs(&name);
            ok("set_timing", c.set_timing(timing));
            (name, c)
        })
        .collect();
    let names: Vec<String> = clients.iter().map(|(n, _)| n.clone()).collect();
    touch_all(&clients, "running");
    check(&*clients[0].1, &names, "running");
    touch_all(&clients, "streaming");
    check(&*f.new_dcs("observer"), &names, "streaming");
    // One leader among them; the snapshot still holds every member.
    assert!(ok("acquire", clients[41].1.attempt_to_acquire_leader()));
    let s = snapshot(&*clients[0].1);
    assert_eq!(s.leader.map(|l| l.name).as_deref(), Some("m42"));
    assert_eq!(s.members.len(), MEMBERS);
}
