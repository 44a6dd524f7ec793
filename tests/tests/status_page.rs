//! The status page (`GET /ui`) in headless Chromium against a live 3-node
//! cluster whose REST API asks for credentials: the members with their
//! roles and tags, read-only without credentials (the API refuses an
//! action sent without them), a switchover from the page after
//! palisadectl's confirmation and the new leader shown without a reload,
//! pause and resume, a restart of the node that serves the page, and a
//! failover (kill -9 of the leader) named as one; the killed node comes
//! back as a replica, and a screenshot of the three members is saved as
//! `$CARGO_TARGET_DIR/debug/status-page.png` (docs/status-page.png is one
//! of these).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_test_support::certs::{ca, leaf};
use palisade_test_support::{target_dir, wait_for, wait_until, Staging};
use palisade_tests::browser::Browser;
use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::http;
use serde_json::{json, Value};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";

/// `(member, role)` of every row of the members table.
fn rows(browser: &Browser) -> Vec<(String, String)> {
    let v = browser
        .execute(
            "return [...document.querySelectorAll('#members tbody tr')].map(r => [r.dataset.member, r.dataset.role]);",
        )
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap_or("").to_string(), r[1].as_str().unwrap_or("").to_string()))
        .collect()
}

fn text(browser: &Browser, selector: &str) -> String {
    let script = format!("const e = document.querySelector({}); return e ? e.textContent : null;", json!(selector));
    browser.execute(&script).unwrap().as_str().unwrap_or("").to_string()
}

/// Click `selector` (later, so that the dialog it opens does not block the
/// script), check the confirmation's question and accept it.
fn confirm_action(browser: &Browser, selector: &str, question: &str) {
    let click = format!("setTimeout(() => document.querySelector({}).click(), 0); return null;", json!(selector));
    browser.execute(&click).unwrap();
    let asked = wait_for("a confirmation", Duration::from_secs(10), || browser.dialog_text());
    assert_eq!(asked, question);
    browser.accept_dialog();
}

/// Wait until the page's log shows `line`.
fn wait_logged(browser: &Browser, line: &str) {
    let shown = wait_until(Duration::from_secs(90), || text(browser, "#log").contains(line));
    assert!(shown, "{line:?} not in the page's log: {}", text(browser, "#log"));
}

/// The roles as they should be shown with `leader` leading.
fn expected(names: &[String], leader: &str) -> Vec<(String, String)> {
    names.iter().map(|n| (n.clone(), if n == leader { "leader" } else { "replica" }.to_string())).collect()
}

#[test]
fn status_page_in_a_browser() {
    let mut cluster = Cluster::start(
        "statuspage",
        ClusterSpec {
            nodes: 3,
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 3,
            restapi_extra: format!("  authentication:\n    username: {USER}\n    password: {PASSWORD}\n"),
            // node2 never leads: the switchover goes to node3, the failover
            // back to node1, and node2 keeps its tags in the picture.
            node_extra: |i| {
                if i == 1 {
                    "tags:\n  clonefrom: true\n  nofailover: true\n".into()
                } else {
                    String::new()
                }
            },
            ..ClusterSpec::default()
        },
    );
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    cluster.wait_streaming(&leader, 2, Duration::from_secs(60));
    let mut names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    names.sort();
    let port = cluster.node(&leader).api_port;
    let replica = names.iter().find(|n| **n != leader).unwrap().clone();

    // `/` stays Patroni's health check; a browser asking for HTML gets the
    // page there, with the health check's status code.
    let browser_accept = [("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")];
    // The replica's daemon serves its role once PostgreSQL starts; the
    // leader may already see it streaming a moment before that.
    let mut probe = http::get(cluster.node(&replica).api_port, "/").unwrap();
    let served = wait_until(Duration::from_secs(10), || {
        probe = http::get(cluster.node(&replica).api_port, "/").unwrap();
        probe.json()["role"] == json!("replica")
    });
    assert!(served, "{probe:?}");
    assert_eq!(probe.status, 503, "{probe:?}");
    let page = http::request(cluster.node(&replica).api_port, "GET", "/", None, &browser_accept).unwrap();
    assert_eq!((page.status, page.header("content-type")), (503, Some("text/html; charset=utf-8")));
    assert!(page.body.contains("<title>Palisade status</title>"), "{}", page.body);
    let page = http::request(port, "GET", "/", None, &browser_accept).unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(http::get(port, "/").unwrap().json()["role"], json!("primary"));

    let browser = Browser::start(cluster.dir(), 1280, 1100, &[]);
    browser.navigate(&format!("http://127.0.0.1:{port}/ui"));

    // Three members with their roles, this node and its leader named.
    let shown = wait_until(Duration::from_secs(30), || rows(&browser) == expected(&names, &leader));
    assert!(shown, "rows {:?}, expected {:?}", rows(&browser), expected(&names, &leader));
    assert_eq!(text(&browser, "#leader"), leader);
    assert_eq!(text(&browser, "#self"), leader);
    assert_eq!(text(&browser, "#scope"), cluster.scope);
    assert_eq!(text(&browser, "#paused"), "managed");
    let tags = browser.execute("return document.querySelector('tr[data-member=\"node2\"] td.tags').textContent;");
    assert_eq!(tags.unwrap(), json!("clonefrom: truenofailover: true"), "node2's tags");
    // Candidates for a switchover: neither the leader nor a nofailover member.
    let options = browser.execute("return [...document.querySelectorAll('#candidate option')].map(o => o.value);");
    let mut candidates = vec![String::new()];
    candidates.extend(names.iter().filter(|n| **n != leader && *n != "node2").cloned());
    assert_eq!(options.unwrap(), json!(candidates));
    assert!(text(&browser, "#ev-leader").contains("none recorded"), "{}", text(&browser, "#ev-leader"));

    // Read-only without credentials: every action is disabled, clicking
    // one asks nothing, and the API refuses the request without them.
    let disabled =
        browser.execute("return [...document.querySelectorAll('button[data-action]')].map(b => b.disabled);");
    let disabled = disabled.unwrap();
    assert!(
        disabled.as_array().is_some_and(|a| a.len() == 3 && a.iter().all(|d| *d == json!(true))),
        "switchover, pause and this node's restart: {disabled}"
    );
    browser.execute("document.querySelector('#switchover').click(); return null;").unwrap();
    assert_eq!(browser.dialog_text(), None, "a disabled action asked for confirmation");
    let refused = browser
        .execute_async(&format!(
            "fetch('/switchover', {{method: 'POST', credentials: 'omit', headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{leader: {}}})}}).then(r => done(r.status), e => done(String(e)));",
            json!(leader)
        ))
        .unwrap();
    assert_eq!(refused, json!(401), "a switchover without credentials");
    assert_eq!(cluster.leader().as_deref(), Some(leader.as_str()));

    // With credentials the actions are enabled.
    let unlock = format!(
        "document.querySelector('#user').value = {}; document.querySelector('#password').value = {}; \
         document.querySelector('#unlock').click(); \
         return [...document.querySelectorAll('button[data-action]')].map(b => b.disabled);",
        json!(USER),
        json!(PASSWORD)
    );
    let enabled = browser.execute(&unlock).unwrap();
    assert!(enabled.as_array().is_some_and(|a| a.iter().all(|d| *d == json!(false))), "{enabled}");

    // A switchover from the page: palisadectl's question, then the new
    // leader appears in the same page (the marker survives: no reload).
    browser.execute("window.__noReload = 42; return null;").unwrap();
    let question =
        format!("Are you sure you want to switchover cluster {}, demoting current leader {leader}?", cluster.scope);
    confirm_action(&browser, "#switchover", &question);
    let new_leader = cluster.wait_for_new_leader(&leader, Duration::from_secs(60));
    let shown = wait_until(Duration::from_secs(60), || rows(&browser) == expected(&names, &new_leader));
    assert!(shown, "rows {:?}, expected {:?}", rows(&browser), expected(&names, &new_leader));
    assert_eq!(text(&browser, "#leader"), new_leader);
    assert_eq!(browser.execute("return window.__noReload;").unwrap(), json!(42), "the page was reloaded");
    let logged = wait_for("the switchover's answer in the page", Duration::from_secs(60), || {
        let log = text(&browser, "#log");
        log.contains("Successfully switched over").then_some(log)
    });
    assert!(logged.contains(&format!("\"{new_leader}\"")), "{logged}");
    let event = text(&browser, "#ev-switchover");
    assert!(event.contains(&format!("switchover: {leader} → {new_leader} (")), "{event}");
    // The history line of the new timeline, as /history has it.
    let history = wait_for("the leader history in the page", Duration::from_secs(30), || {
        let who =
            browser.execute("return [...document.querySelectorAll('#history tbody td.who')].map(t => t.textContent);");
        who.ok().filter(|w| w.as_array().is_some_and(|a| !a.is_empty()))
    });
    let stored = http::get(port, "/history").unwrap().json();
    let stored_who: Vec<Value> =
        stored.as_array().unwrap().iter().rev().map(|l| json!(l[4].as_str().unwrap_or(""))).collect();
    assert_eq!(history, Value::Array(stored_who), "history newest first, as stored");
    assert!(
        text(&browser, "#ev-leader").contains(&format!("new leader {new_leader}")),
        "{}",
        text(&browser, "#ev-leader")
    );

    // Pause and resume, as palisadectl does them (PATCH /config), each
    // after its question; the badge follows the DCS.
    let scope = &cluster.scope;
    confirm_action(&browser, "#pause", &format!("Are you sure you want to pause cluster {scope}?"));
    wait_logged(&browser, "Success: cluster management is paused");
    assert!(wait_until(Duration::from_secs(30), || text(&browser, "#paused") == "paused (maintenance mode)"));
    // GET /config answers from the loop's last read of the DCS.
    let pause = |port| http::get(port, "/config").ok().map(|r| r.json().get("pause").cloned());
    assert!(wait_until(Duration::from_secs(30), || pause(port) == Some(Some(json!(true)))), "{:?}", pause(port));
    assert_eq!(text(&browser, "#pause"), "Resume");
    confirm_action(&browser, "#pause", &format!("Are you sure you want to resume cluster {scope}?"));
    wait_logged(&browser, "Success: cluster management is resumed");
    assert!(wait_until(Duration::from_secs(30), || text(&browser, "#paused") == "managed"));
    assert!(wait_until(Duration::from_secs(30), || pause(port) == Some(None)), "{:?}", pause(port));

    // Restart of the node that serves the page (now a replica).
    let started = http::get(port, "/patroni").unwrap().json()["postmaster_start_time"].clone();
    let restart = format!("button.restart[data-member=\"{leader}\"]");
    confirm_action(&browser, &restart, &format!("Are you sure you want to restart members {leader}?"));
    wait_logged(&browser, &format!("Success: restart on member {leader}"));
    let restarted = wait_until(Duration::from_secs(30), || {
        http::get(port, "/patroni").is_ok_and(|r| {
            let now = &r.json()["postmaster_start_time"];
            now.is_string() && *now != started
        })
    });
    assert!(restarted, "PostgreSQL on {leader} did not restart");
    assert!(
        text(&browser, "#ev-restart").contains(&format!("restart of {leader}")),
        "{}",
        text(&browser, "#ev-restart")
    );
    assert_eq!(browser.execute("return window.__noReload;").unwrap(), json!(42), "the page was reloaded");

    // A failover: the leader is killed (daemon and PostgreSQL); the page,
    // served by a replica, names it a failover once its member key is gone.
    cluster.wait_streaming(&new_leader, 2, Duration::from_secs(60));
    cluster.allow_errors(&["Error communicating with DCS", "failed to update leader lock", "Request failed to"]);
    cluster.kill9(&new_leader, true);
    let third = cluster.wait_for_new_leader(&new_leader, Duration::from_secs(90));
    let survivors: Vec<String> = names.iter().filter(|n| **n != new_leader).cloned().collect();
    let shown = wait_until(Duration::from_secs(60), || rows(&browser) == expected(&survivors, &third));
    assert!(shown, "rows {:?}, expected {:?}", rows(&browser), expected(&survivors, &third));
    let event = text(&browser, "#ev-failover");
    assert!(event.contains(&format!("failover: {new_leader} → {third} (seen by this page)")), "{event}");
    assert!(
        text(&browser, "#ev-switchover").contains(&format!("switchover: {leader} → {new_leader}")),
        "the last switchover is still shown"
    );
    assert_eq!(browser.execute("return window.__noReload;").unwrap(), json!(42), "the page was reloaded");
    // The history gains the failover's line (newest first).
    let two = wait_until(Duration::from_secs(60), || {
        let who =
            browser.execute("return [...document.querySelectorAll('#history tbody td.who')].map(t => t.textContent);");
        who.ok() == Some(json!([third, new_leader]))
    });
    assert!(two, "history in the page: {}", text(&browser, "#history"));

    // The killed node comes back and rejoins as a replica; the page shows
    // three members again, and every replica streams before the picture.
    let killed = cluster.index(&new_leader);
    cluster.start_node(killed);
    let replicas = names.len() - 1;
    cluster.wait_streaming(&third, replicas, Duration::from_secs(90));
    let back = wait_until(Duration::from_secs(60), || rows(&browser) == expected(&names, &third));
    assert!(back, "rows {:?}, expected {:?}", rows(&browser), expected(&names, &third));
    let settled = wait_until(Duration::from_secs(30), || {
        let states = browser
            .execute("return [...document.querySelectorAll('#members td.state')].map(t => t.textContent).join(',');");
        states
            .ok()
            .and_then(|s| s.as_str().map(|s| s.matches("streaming").count() == replicas && s.contains("running")))
            == Some(true)
    });
    assert!(settled, "the page shows {}", text(&browser, "#members"));
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = target_dir().join("status-page.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// The page over the API's TLS: served over https, it reads the API over
/// the same connection's origin and sends an action with its credentials
/// there; without them the API refuses it.
#[test]
fn status_page_over_tls() {
    let certs = Staging::new("statuspage-certs");
    ca(certs.path(), "ca");
    let (crt, key) = leaf(certs.path(), "ca", "server");
    let restapi = format!(
        "  certfile: {}\n  keyfile: {}\n  authentication:\n    username: {USER}\n    password: {PASSWORD}\n",
        crt.display(),
        key.display()
    );
    let cluster = Cluster::start(
        "statuspage-tls",
        ClusterSpec {
            nodes: 1,
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 3,
            restapi_extra: restapi,
            ..ClusterSpec::default()
        },
    );
    let leader = cluster.wait_for_leader(Duration::from_secs(60));
    let port = cluster.node(&leader).api_port;
    // The test's CA is in no trust store Chromium reads.
    let browser = Browser::start(cluster.dir(), 1024, 768, &["--ignore-certificate-errors"]);
    browser.navigate(&format!("https://127.0.0.1:{port}/ui"));
    let shown = wait_until(Duration::from_secs(30), || rows(&browser) == vec![(leader.clone(), "leader".to_string())]);
    assert!(shown, "rows {:?}", rows(&browser));
    assert_eq!(browser.execute("return location.protocol;").unwrap(), json!("https:"));

    let refused = browser
        .execute_async(
            "fetch('/config', {method: 'PATCH', credentials: 'omit', headers: {'Content-Type': 'application/json'}, \
             body: '{\"pause\": true}'}).then(r => done(r.status), e => done(String(e)));",
        )
        .unwrap();
    assert_eq!(refused, json!(401), "an action without credentials");
    let unlock = format!(
        "document.querySelector('#user').value = {}; document.querySelector('#password').value = {}; \
         document.querySelector('#unlock').click(); return null;",
        json!(USER),
        json!(PASSWORD)
    );
    browser.execute(&unlock).unwrap();
    confirm_action(&browser, "#pause", &format!("Are you sure you want to pause cluster {}?", cluster.scope));
    wait_logged(&browser, "Success: cluster management is paused");
    assert!(wait_until(Duration::from_secs(30), || text(&browser, "#paused") == "paused (maintenance mode)"));
}
