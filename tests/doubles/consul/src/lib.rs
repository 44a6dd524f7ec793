//! consul-test-double: a **test double** of the Consul agent's HTTP API, not
//! Consul. One node that is its own leader; the subset of the API that
//! Patroni 4.1 (py-consul) and Palisade's `dcs-consul` plugin use, following
//! Consul's documented behaviour (status codes, `X-Consul-*` headers, JSON
//! field names, base64 values, sessions, locks, blocking queries, agent
//! services and checks). Its state is written through to the data dir, so
//! that it survives SIGKILL like a Raft-backed agent. See
//! docs/testing-doubles.md for what differs from a real agent.

pub mod config;
pub mod server;
pub mod store;
pub mod util;

/// Run the command line (`agent -config-file F -data-dir D ...`); returns
/// the process exit code.
pub fn main_with_args(args: &[String]) -> i32 {
    let cfg = match config::parse_args(args) {
        Ok(config::Command::Help) => {
            print!("{}", config::HELP);
            return 0;
        }
        Ok(config::Command::Agent(c)) => c,
        Err(e) => {
            eprintln!("consul-test-double: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("consul-test-double: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        let app = server::App::open(*cfg)?;
        tokio::select! {
            r = server::serve(app) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = terminate() => Ok(()),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("consul-test-double: {e}");
            1
        }
    }
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
