//! palisadectl's command line (clap), in the library so that the man page
//! and the shell completions are generated from it (`palisade-docgen`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "palisadectl", about = "Manage palisade (and Patroni) clusters, as patronictl does", version = env!("CARGO_PKG_VERSION"))]
pub struct Cli {
    /// Configuration file
    #[arg(short = 'c', long = "config-file", env = "PATRONICTL_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// The DCS connect url
    #[arg(short = 'd', long = "dcs-url", visible_alias = "dcs", env = "DCS_URL")]
    pub dcs_url: Option<String>,
    /// Allow connections to SSL sites without certs
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// patronictl's `--role` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CtlRole {
    Leader,
    #[value(alias = "master")]
    Primary,
    StandbyLeader,
    Replica,
    Standby,
    Any,
}

#[derive(Args, Clone)]
pub struct Watch {
    /// Auto update the screen every 2 seconds
    #[arg(short = 'W')]
    pub w: bool,
    /// Auto update the screen every X seconds
    #[arg(short = 'w', long = "watch")]
    pub watch: Option<f64>,
}

#[derive(Subcommand)]
pub enum Command {
    /// List the members of a cluster
    #[command(visible_alias = "members")]
    List {
        cluster_names: Vec<String>,
        /// Citus group
        #[arg(long)]
        group: Option<i64>,
        /// Show some extra information
        #[arg(short = 'e', long)]
        extended: bool,
        /// Print timestamp
        #[arg(short = 't', long = "timestamp")]
        ts: bool,
        /// Output format
        #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
        fmt: Format,
        #[command(flatten)]
        watch: Watch,
    },
    /// Prints ASCII topology for given cluster
    Topology {
        cluster_names: Vec<String>,
        #[arg(long)]
        group: Option<i64>,
        #[command(flatten)]
        watch: Watch,
    },
    /// Switchover to a replica
    Switchover {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        /// The name of the current leader
        #[arg(long, visible_alias = "primary")]
        leader: Option<String>,
        /// The name of the candidate
        #[arg(long)]
        candidate: Option<String>,
        /// Timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601)
        #[arg(long)]
        scheduled: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Failover to a replica
    Failover {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        /// The name of the candidate
        #[arg(long)]
        candidate: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Restart cluster member
    Restart {
        cluster_name: String,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Restart only members with this role
        #[arg(short = 'r', long, value_enum, default_value = "any")]
        role: CtlRole,
        /// Restart a single member only
        #[arg(long = "any")]
        p_any: bool,
        /// Timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601)
        #[arg(long)]
        scheduled: Option<String>,
        /// Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)
        #[arg(long = "pg-version")]
        pg_version: Option<String>,
        /// Restart if pending
        #[arg(long)]
        pending: bool,
        /// Return error and fail over if necessary when restarting takes longer than this.
        #[arg(long)]
        timeout: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Reload cluster member configuration
    Reload {
        cluster_name: String,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Reload only members with this role
        #[arg(short = 'r', long, value_enum, default_value = "any")]
        role: CtlRole,
        #[arg(long)]
        force: bool,
    },
    /// Reinitialize cluster member
    Reinit {
        cluster_name: String,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<i64>,
        #[arg(long)]
        force: bool,
        /// Get basebackup from leader
        #[arg(long = "from-leader")]
        from_leader: bool,
        /// Wait until reinitialization completes
        #[arg(long)]
        wait: bool,
    },
    /// Disable auto failover
    Pause {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Wait until pause is applied on all nodes
        #[arg(long)]
        wait: bool,
    },
    /// Resume auto failover
    Resume {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Wait until pause is cleared on all nodes
        #[arg(long)]
        wait: bool,
    },
    /// Edit cluster configuration
    EditConfig {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Do not show changes
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Set specific configuration value. Can be specified multiple times
        #[arg(short = 's', long = "set")]
        kvpairs: Vec<String>,
        /// Set specific PostgreSQL parameter value. Shorthand for -s postgresql.parameters. Can be specified multiple times
        #[arg(short = 'p', long = "pg")]
        pgkvpairs: Vec<String>,
        /// Apply configuration from file. Use - for stdin.
        #[arg(long = "apply")]
        apply_filename: Option<String>,
        /// Apply configuration from file, replacing existing configuration. Use - for stdin.
        #[arg(long = "replace")]
        replace_filename: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Show cluster configuration
    ShowConfig {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
    },
    /// Show the history of failovers/switchovers
    History {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
        fmt: Format,
    },
    /// Remove cluster from DCS
    Remove {
        cluster_name: String,
        #[arg(long)]
        group: Option<i64>,
        #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
        fmt: Format,
    },
    /// Query a PostgreSQL member
    Query {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Output format (pretty, tsv, json, yaml)
        #[arg(long = "format", value_enum, default_value = "tsv")]
        fmt: Format,
        /// Execute the SQL commands from this file
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// force password prompt
        #[arg(long)]
        password: bool,
        /// database user name
        #[arg(short = 'U', long)]
        username: Option<String>,
        #[command(flatten)]
        watch: Watch,
        /// The role of the query
        #[arg(short = 'r', long, value_enum)]
        role: Option<CtlRole>,
        /// Query a specific member
        #[arg(short = 'm', long)]
        member: Option<String>,
        /// The column delimiter
        #[arg(long, default_value = "\t")]
        delimiter: String,
        /// The SQL commands to execute
        #[arg(short = 'c', long)]
        command: Option<String>,
        /// database name to connect to
        #[arg(short = 'd', long)]
        dbname: Option<String>,
    },
    /// Generate a dsn for the provided member, defaults to a dsn of the leader
    Dsn {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Give a dsn of any member with this role
        #[arg(short = 'r', long, value_enum)]
        role: Option<CtlRole>,
        /// Generate a dsn for this member
        #[arg(short = 'm', long)]
        member: Option<String>,
    },
    /// Discard scheduled events (restart or switchover)
    #[command(override_usage = "palisadectl flush [OPTIONS] <CLUSTER_NAME> [MEMBER_NAMES]... <restart|switchover>")]
    Flush {
        cluster_name: String,
        /// Member names, then the target: restart or switchover
        #[arg(required = true, num_args = 1..)]
        rest: Vec<String>,
        #[arg(long)]
        group: Option<i64>,
        /// Flush only members with this role
        #[arg(short = 'r', long, value_enum, default_value = "any")]
        role: CtlRole,
        #[arg(long)]
        force: bool,
    },
    /// Output version of palisadectl or of running members
    Version {
        cluster_name: Option<String>,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<i64>,
    },
    /// Demote cluster to a standby cluster
    DemoteCluster {
        cluster_name: Option<String>,
        #[arg(long)]
        force: bool,
        /// Address of the remote node
        #[arg(long)]
        host: Option<String>,
        /// Port of the remote node
        #[arg(long)]
        port: Option<u16>,
        /// Command to restore WAL records from the remote primary
        #[arg(long = "restore-command")]
        restore_command: Option<String>,
        /// Name of the slot on the remote node to use for replication
        #[arg(long = "primary-slot-name")]
        primary_slot_name: Option<String>,
    },
    /// Promote cluster, make it run standalone
    PromoteCluster {
        cluster_name: Option<String>,
        #[arg(long)]
        force: bool,
    },
}

/// The output formats of `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Pretty,
    Tsv,
    Json,
    Yaml,
    Yml,
    /// `topology` (internal: `palisadectl topology`).
    #[value(skip)]
    Topology,
}

impl Format {
    pub fn is_pretty(self) -> bool {
        matches!(self, Self::Pretty | Self::Topology)
    }
}
