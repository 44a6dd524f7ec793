//! `palisade-chaos`: a randomized fault campaign against a live 3-node
//! cluster, then the checker's verdicts (see docs/reliability.md, "The
//! fault campaign").
//!
//! ```text
//! palisade-chaos [--seed N] [--faults N] [--minutes M]
//!                [--dcs etcd3|etcd|zookeeper|exhibitor|consul|kubernetes|kubernetes-endpoints|kubernetes-lease]
//!                [--ttl S] [--loop-wait S] [--retry-timeout S] [--async] [--watchdog]
//!                [--report FILE] [--quiet]
//! ```
//!
//! `--watchdog` gives each daemon `watchdog: mode: required` on Patroni's
//! `testing` driver and a test device per node that, when it fires, resets
//! the node (its PostgreSQL and daemon killed with SIGKILL; the daemon is
//! started again a few seconds later).
//!
//! Runs as root (it makes network namespaces). Prints the seed first and
//! the Markdown report at the end; exits 0 when every verdict passed, 1
//! when one failed, 2 when the campaign could not run.

use std::path::PathBuf;

use palisade_tests::chaos::{run, Options};

const USAGE: &str = "usage: palisade-chaos [--seed N] [--faults N] [--minutes M] [--dcs NAME] [--ttl S] \
                     [--loop-wait S] [--retry-timeout S] [--async] [--watchdog] [--report FILE] [--quiet]";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options { faults: None, ..Options::default() };
    let mut seed = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name}: not a number: {v}"));
        match a.as_str() {
            "--seed" => seed = Some(number("--seed", value("--seed")?)?),
            "--faults" => o.faults = Some(number("--faults", value("--faults")?)? as usize),
            "--minutes" => {
                let v = value("--minutes")?;
                o.minutes = Some(v.parse::<f64>().ok().filter(|m| *m > 0.0).ok_or(format!("--minutes: {v}"))?)
            }
            "--dcs" => {
                let v = value("--dcs")?;
                o.dcs = palisade_tests::dcs::backend(&v).ok_or(format!("--dcs: unknown DCS {v}"))?;
            }
            "--ttl" => o.cluster.ttl = number("--ttl", value("--ttl")?)?,
            "--loop-wait" => o.cluster.loop_wait = number("--loop-wait", value("--loop-wait")?)?,
            "--retry-timeout" => o.cluster.retry_timeout = number("--retry-timeout", value("--retry-timeout")?)?,
            "--async" => o.cluster.strict = false,
            "--watchdog" => o.cluster.watchdog = true,
            "--report" => o.report = Some(PathBuf::from(value("--report")?)),
            "--quiet" => o.verbose = false,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.faults.is_none() && o.minutes.is_none() {
        o.faults = Some(20);
    }
    if o.cluster.loop_wait + 2 * o.cluster.retry_timeout > o.cluster.ttl {
        return Err("--ttl must be at least --loop-wait + 2 x --retry-timeout".into());
    }
    o.seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!("palisade-chaos: seed {}", opts.seed);
    match std::panic::catch_unwind(|| run(&opts)) {
        Ok(Ok(outcome)) => {
            println!("{}", outcome.report);
            if let Some(dir) = outcome.kept {
                println!("logs and data kept in {}", dir.display());
            }
            std::process::exit(if outcome.verdicts.passed() { 0 } else { 1 });
        }
        Ok(Err(e)) => {
            eprintln!("palisade-chaos: {e}");
            std::process::exit(2);
        }
        Err(_) => std::process::exit(2),
    }
}
