//! `consul-test-double agent -config-file FILE -data-dir DIR`: a test
//! double of the Consul agent's HTTP API (not Consul). See --help.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(consul_test_double::main_with_args(&args));
}
