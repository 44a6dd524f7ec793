//! `kubernetes-test-double`: a test double of the Kubernetes API server.

use std::path::PathBuf;

use clap::Parser;

/// A TEST DOUBLE of the Kubernetes API server, NOT Kubernetes: it serves
/// ConfigMaps, Endpoints, Pods, Services and Leases (get, list, watch,
/// create, replace, patch, delete) over plain HTTP on 127.0.0.1 for tests of
/// Kubernetes clients such as Patroni and Palisade's dcs-kubernetes plugin.
/// No controllers, kubelet, admission or RBAC.
#[derive(Parser, Debug)]
#[command(name = "kubernetes-test-double", version)]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Write a kubeconfig for clients here (context "kubernetes-test-double").
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Keep objects here, written through on every change, so that a restart keeps them.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The bearer token clients must send (default: kept in the data directory, or random).
    #[arg(long)]
    token: Option<String>,
    /// How many changes a watch can replay; watches from older resourceVersions get 410 Expired.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// Seconds between the BOOKMARK events of watches that allow them.
    #[arg(long, default_value_t = 60)]
    bookmark_interval: u64,
    /// Serve HTTPS: a CA and a certificate for 127.0.0.1 are made with the openssl command in
    /// DATA_DIR/tls (kept across restarts); the kubeconfig names the CA.
    #[arg(long, requires = "data_dir")]
    tls: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let opts = kubernetes_test_double::Options {
        port: args.port,
        kubeconfig: args.kubeconfig,
        data_dir: args.data_dir,
        token: args.token,
        watch_history: args.watch_history,
        bookmark_interval: std::time::Duration::from_secs(args.bookmark_interval.max(1)),
        tls: args.tls,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubernetes-test-double: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(kubernetes_test_double::run(opts)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubernetes-test-double: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
