//! palisadectl authenticates to the REST API as patronictl does: with the
//! `ctl` section's credentials, else the `restapi` section's; a request
//! refused for bad credentials is reported, not retried elsewhere.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use palisade_tests::cluster::{Cluster, ClusterSpec};
use palisade_tests::ctl::{palisadectl, run_bare, Output};

fn with_file(cluster: &Cluster, program: &std::path::Path, file: &std::path::Path, args: &[&str]) -> Output {
    let mut all = vec!["-c", file.to_str().unwrap()];
    all.extend_from_slice(args);
    run_bare(cluster, program, &all, &[])
}

#[test]
fn palisadectl_uses_the_configured_credentials() {
    let cluster = Cluster::start(
        "ctlauth",
        ClusterSpec {
            nodes: 1,
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 3,
            restapi_extra: "  authentication:\n    username: admin\n    password: s3cret\n".into(),
            ..ClusterSpec::default()
        },
    );
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(60)), "node1");
    let scope = cluster.scope.clone();

    // restapi.authentication serves palisadectl too.
    let out = palisadectl(&cluster, &["reload", &scope, "node1", "--force"]).ok().stdout;
    assert!(
        out.ends_with("Reload request received for member node1 and will be processed within 1 seconds\n"),
        "{out}"
    );
    let out = palisadectl(&cluster, &["pause"]).ok().stdout;
    assert_eq!(out, "Success: cluster management is paused\n");

    // ctl.authentication comes first: wrong credentials there are refused,
    // by palisadectl and patronictl alike.
    let base = std::fs::read_to_string(&cluster.nodes[0].config).unwrap();
    let wrong = cluster.dir().join("ctl-wrong.yml");
    std::fs::write(&wrong, format!("{base}ctl:\n  authentication:\n    username: admin\n    password: nope\n"))
        .unwrap();
    let bin = cluster.bin().join("palisadectl");
    let venv = palisade_tests::patroni::venv();
    let patronictl = venv.join("bin/patronictl");
    let refused = with_file(&cluster, &bin, &wrong, &["reload", &scope, "node1", "--force"]).ok();
    assert!(refused.stdout.contains("Failed: reload for member node1, status code=401, ("), "{refused:?}");
    let theirs = with_file(&cluster, &patronictl, &wrong, &["reload", &scope, "node1", "--force"]).ok();
    assert_eq!(refused.stdout, theirs.stdout);
    let refused = with_file(&cluster, &bin, &wrong, &["resume"]).ok();
    let theirs = with_file(&cluster, &patronictl, &wrong, &["resume"]);
    assert!(refused.stdout.starts_with("Failed: resume cluster management status code=401, ("), "{refused:?}");
    assert_eq!((theirs.code, &theirs.stdout), (0, &refused.stdout));

    // ... and right ones there are used even when restapi's differ.
    let right = cluster.dir().join("ctl-right.yml");
    let other = base.replace("password: s3cret", "password: other");
    std::fs::write(&right, format!("{other}ctl:\n  authentication:\n    username: admin\n    password: s3cret\n"))
        .unwrap();
    let out = with_file(&cluster, &bin, &right, &["resume"]).ok().stdout;
    assert_eq!(out, "Success: cluster management is resumed\n");
}
