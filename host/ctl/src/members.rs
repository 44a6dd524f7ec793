//! The member table of `list` and `topology`, and picking the members a
//! command acts on, as patronictl does.

use std::collections::BTreeMap;

use palisade_model::view::{cluster_as_json, ViewModes};
use palisade_model::{Cluster, Member};
use serde_json::{json, Map, Value};

use crate::table::{self, Format};
use crate::CtlRole;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The cluster as `GET /cluster` shows it.
pub fn cluster_json(cluster: &Cluster) -> Map<String, Value> {
    let modes = ViewModes::from_config(cluster.config.as_ref().map(|c| &c.data).unwrap_or(&Map::new()));
    cluster_as_json(cluster, modes)
}

/// What patronictl reads for one cluster name: the cluster of the Citus
/// group asked for (the coordinator, group 0, without `--group`) and, on a
/// Citus cluster without `--group`, every worker group too (Patroni's
/// `Cluster.workers`).
#[derive(Clone, Debug, Default)]
pub struct Clusters {
    /// patronictl's `is_citus_cluster()`: the configuration has a `citus`
    /// section, or `--group` was given.
    pub citus: bool,
    /// `--group` (or the configuration's group, for the commands that
    /// default to it).
    pub group: Option<i32>,
    /// Group number -> cluster: `group or 0` always, the workers too when
    /// every group was read.
    pub by_group: BTreeMap<i32, Cluster>,
}

impl Clusters {
    /// A cluster that is not Citus.
    #[cfg(test)]
    pub fn plain(cluster: Cluster) -> Self {
        Self { citus: false, group: None, by_group: BTreeMap::from([(0, cluster)]) }
    }

    /// The group's own number: `group or 0`.
    pub fn main_group(&self) -> i32 {
        self.group.unwrap_or(0)
    }

    /// The cluster of the group asked for (or the coordinator).
    pub fn main(&self) -> &Cluster {
        static EMPTY: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
        self.by_group.get(&self.main_group()).unwrap_or_else(|| EMPTY.get_or_init(Cluster::default))
    }

    pub fn into_main(mut self) -> Cluster {
        let g = self.main_group();
        self.by_group.remove(&g).unwrap_or_default()
    }

    /// Every group this read holds, in group order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &Cluster)> {
        self.by_group.iter().map(|(g, c)| (*g, c))
    }

    /// Whether the read spans every group (Citus without `--group`).
    pub fn all_groups(&self) -> bool {
        self.citus && self.group.is_none()
    }
}

/// Order members as a tree: the leader, then who replicates from whom
/// (`replicatefrom` tags), names indented under their upstream.
fn topology_sort(members: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let is_leader = |m: &Map<String, Value>| text(&m["role"]).ends_with("leader");
    let leader = members.iter().find(|m| is_leader(m)).cloned();
    let replicas: Vec<String> =
        members.iter().filter(|m| !is_leader(m)).map(|m| text(&m["name"]).to_string()).collect();
    let leader_name = leader.as_ref().map(|l| text(&l["name"]).to_string());
    let mut children: BTreeMap<Option<String>, Vec<Map<String, Value>>> = BTreeMap::new();
    let mut order: Vec<Option<String>> = Vec::new();
    for m in &members {
        if is_leader(m) {
            continue;
        }
        let name = text(&m["name"]).to_string();
        let parent = m
            .get("tags")
            .and_then(|t| t.get("replicatefrom"))
            .and_then(Value::as_str)
            .filter(|p| *p != name && replicas.iter().any(|r| r == p))
            .map(String::from)
            .or_else(|| leader_name.clone());
        if !order.contains(&parent) {
            order.push(parent.clone());
        }
        children.entry(parent).or_default().push(m.clone());
    }
    fn walk(
        level: usize,
        mut member: Map<String, Value>,
        children: &BTreeMap<Option<String>, Vec<Map<String, Value>>>,
        out: &mut Vec<Map<String, Value>>,
    ) {
        let name = text(&member["name"]).to_string();
        if level > 0 {
            member.insert("name".into(), json!(format!("{}+ {name}", " ".repeat((level - 1) * 2))));
        }
        if !name.is_empty() {
            out.push(member);
        }
        let key = if name.is_empty() { None } else { Some(name) };
        for c in children.get(&key).into_iter().flatten() {
            walk(level + 1, c.clone(), children, out);
        }
    }
    let mut out = Vec::new();
    let root = leader.unwrap_or_else(|| {
        let mut m = Map::new();
        m.insert("name".into(), json!(""));
        m
    });
    walk(0, root, &children, &mut out);
    out
}

fn lag_mb(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(n)) => {
            let mb = n.as_f64().unwrap_or(0.0) / 1024.0 / 1024.0;
            json!(mb.round_ties_even() as i64)
        }
        Some(Value::String(s)) if s == "unknown" => json!(""),
        Some(other) => other.clone(),
        None => json!(""),
    }
}

/// patronictl's `output_members`: the member table and, in pretty formats,
/// the maintenance and scheduled switchover notes.
/// On a Citus cluster a `Group` column follows `Cluster`, every group's
/// members are listed (group by group) unless `--group` was given, and the
/// notes of each group are headed `Citus group: <n>`.
pub fn output_members(clusters: &Clusters, name: &str, extended: bool, fmt: Format) -> String {
    let initialize = match clusters.main().initialize.as_deref() {
        None => "uninitialized".to_string(),
        Some("") => "initializing".to_string(),
        Some(s) => s.to_string(),
    };
    let jsons: Vec<(i32, Map<String, Value>)> = clusters.iter().map(|(g, c)| (g, cluster_json(c))).collect();
    let members_of = |c: &Map<String, Value>| -> Vec<Map<String, Value>> {
        c["members"].as_array().into_iter().flatten().filter_map(|m| m.as_object().cloned()).collect()
    };
    let mut columns: Vec<String> =
        ["Cluster", "Member", "Host", "Role", "State", "TL", "Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    if clusters.citus {
        columns.insert(1, "Group".into());
    }
    let all: Vec<Map<String, Value>> = jsons.iter().flat_map(|(_, c)| members_of(c)).collect();
    let with_host: Vec<&Map<String, Value>> = all.iter().filter(|m| m.contains_key("host")).collect();
    for col in ["Pending restart", "Pending restart reason", "Scheduled restart", "Tags"] {
        let key = col.to_lowercase().replace(' ', "_");
        let any = with_host.iter().any(|m| m.get(&key).is_some_and(truthy));
        if extended || any {
            columns.push(col.to_string());
        }
    }
    let hosts: std::collections::HashSet<&str> = with_host.iter().map(|m| text(&m["host"])).collect();
    let append_port = with_host.iter().any(|m| m.get("port").and_then(Value::as_u64).is_some_and(|p| p != 5432))
        || hosts.len() < with_host.len();
    let mut rows = Vec::new();
    for (group, c) in &jsons {
        let members = members_of(c);
        let ordered = if fmt == Format::Topology { topology_sort(members) } else { members };
        for member in ordered {
            let mut m = member.clone();
            let reason: Vec<String> = m
                .get("pending_restart_reason")
                .and_then(Value::as_object)
                .map(|r| {
                    r.iter()
                        .map(|(k, v)| {
                            let full = format!("{k}: {}->{}", text(&v["old_value"]), text(&v["new_value"]));
                            if fmt.is_pretty() && full.chars().count() > 50 {
                                format!("{k}: [hidden - too long]")
                            } else {
                                full
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let (mut receive_lag, mut replay_lag) = (m.get("receive_lag").cloned(), m.get("replay_lag").cloned());
            let (mut receive_lsn, mut replay_lsn) = (m.get("receive_lsn").cloned(), m.get("replay_lsn").cloned());
            let lsn = m.get("lsn").cloned();
            let unknown = |v: &Option<Value>| v.as_ref().and_then(Value::as_str) == Some("unknown");
            if unknown(&receive_lsn)
                && unknown(&replay_lsn)
                && lsn.as_ref().is_some_and(|l| l.as_str() != Some("unknown") && truthy(l))
            {
                let lag = m.get("lag").cloned();
                if text(&m["state"]) == "streaming" {
                    (receive_lag, receive_lsn) = (lag, lsn);
                } else {
                    (replay_lag, replay_lsn) = (lag, lsn);
                }
            }
            let role = text(&m["role"]).replace('_', " ");
            let role: String = role
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ");
            let mut host = m.get("host").cloned().unwrap_or(json!(""));
            if append_port && !text(&host).is_empty() {
                if let Some(p) = m.get("port") {
                    host = json!(format!("{}:{p}", text(&host)));
                }
            }
            let scheduled = m.get("scheduled_restart").and_then(Value::as_object).map(|s| {
                let mut v = text(&s["schedule"]).to_string();
                if let Some(pv) = s.get("postgres_version") {
                    v.push_str(&format!(" if version < {}", table::py_str(pv)));
                }
                json!(v)
            });
            let values: BTreeMap<&str, Value> = [
                ("cluster", json!(name)),
                ("group", json!(group)),
                ("member", m.get("name").cloned().unwrap_or(json!(""))),
                ("host", host),
                ("role", json!(role)),
                ("state", m.get("state").cloned().unwrap_or(json!(""))),
                ("tl", m.get("timeline").cloned().unwrap_or(json!(""))),
                ("receive_lsn", receive_lsn.unwrap_or(json!(""))),
                ("receive_lag", lag_mb(receive_lag.as_ref())),
                ("replay_lsn", replay_lsn.unwrap_or(json!(""))),
                ("replay_lag", lag_mb(replay_lag.as_ref())),
                ("pending_restart", json!(if m.get("pending_restart").is_some_and(truthy) { "*" } else { "" })),
                ("pending_restart_reason", json!(reason.join("\n"))),
                ("scheduled_restart", scheduled.unwrap_or(json!(""))),
                ("tags", m.remove("tags").unwrap_or(json!(""))),
            ]
            .into_iter()
            .collect();
            rows.push(
                columns
                    .iter()
                    .map(|c| values.get(c.to_lowercase().replace(' ', "_").as_str()).cloned().unwrap_or(json!("")))
                    .collect(),
            );
        }
    }
    let title = match (clusters.citus, clusters.group) {
        (false, _) => format!(" Cluster: {name} ({initialize}) "),
        (true, None) => format!(" Citus cluster: {name} "),
        (true, Some(g)) => format!(" Citus cluster: {name} (group: {g}, {initialize}) "),
    };
    if fmt.is_pretty() {
        for c in &mut columns {
            if c == "Receive Lag" || c == "Replay Lag" {
                *c = "Lag".into();
            }
        }
    }
    let mut out =
        table::render(&columns, &rows, &["Group", "Receive LSN", "Replay LSN", "Lag", "TL"], fmt, &title, "\t");
    if fmt.is_pretty() {
        for (group, c) in &jsons {
            let info = service_info(c);
            if !info.is_empty() {
                if clusters.all_groups() {
                    out.push_str(&format!("Citus group: {group}\n"));
                }
                out.push_str(&format!(" {}\n", info.join("\n ")));
            }
        }
    }
    out
}

/// patronictl's `get_cluster_service_info`: maintenance mode and a
/// scheduled switchover.
fn service_info(c: &Map<String, Value>) -> Vec<String> {
    let mut info = Vec::new();
    if c.get("pause").is_some_and(truthy) {
        info.push("Maintenance mode: on".to_string());
    }
    if let Some(s) = c.get("scheduled_switchover").and_then(Value::as_object) {
        let mut line = format!("Switchover scheduled at: {}", text(&s["at"]));
        for k in ["from", "to"] {
            if let Some(v) = s.get(k) {
                line.push_str(&format!("\n{k:>24}: {}", text(v)));
            }
        }
        info.push(line);
    }
    info
}

pub use palisade_pycompat::py::truthy;

/// patronictl's `get_all_members`: the leader for leader roles, else the
/// members in that role (or all of them), in every group read.
pub fn all_members(clusters: &Clusters, role: CtlRole) -> Vec<Member> {
    clusters.iter().flat_map(|(_, c)| group_members(c, role)).collect()
}

fn group_members(cluster: &Cluster, role: CtlRole) -> Vec<Member> {
    let leader = cluster.leader_name();
    match role {
        CtlRole::Leader | CtlRole::Primary | CtlRole::StandbyLeader => {
            let Some(m) = cluster.leader_member() else { return Vec::new() };
            let r = m.role().unwrap_or("");
            let ok = match role {
                CtlRole::Leader => true,
                CtlRole::StandbyLeader => r != "primary" && r != "master",
                _ => r != "standby_leader",
            };
            if ok {
                vec![m.clone()]
            } else {
                Vec::new()
            }
        }
        CtlRole::Any => cluster.members.clone(),
        CtlRole::Replica | CtlRole::Standby => {
            cluster.members.iter().filter(|m| Some(m.name.as_str()) != leader).cloned().collect()
        }
    }
}

/// The leader first, then the others with an API (for requests that any
/// member can serve).
pub fn all_members_leader_first(cluster: &Cluster) -> Vec<Member> {
    let leader = cluster.leader_member().filter(|m| m.api_url().is_some()).cloned();
    let name = leader.as_ref().map(|m| m.name.clone());
    leader
        .into_iter()
        .chain(cluster.members.iter().filter(|m| m.api_url().is_some() && Some(&m.name) != name.as_ref()).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_plugin_api::{DcsSnapshot, LeaderKey, MemberKey, VersionedValue};

    fn cluster(members: &[(&str, Value)], leader: Option<&str>) -> Cluster {
        let snap = DcsSnapshot {
            initialize: Some("7311".into()),
            leader: leader.map(|l| LeaderKey { name: l.into(), version: "1".into(), session: String::new() }),
            members: members
                .iter()
                .map(|(n, v)| MemberKey {
                    name: (*n).into(),
                    value: v.to_string(),
                    version: "1".into(),
                    session: String::new(),
                })
                .collect(),
            config: Some(VersionedValue { value: "{}".into(), version: "1".into() }),
            status: Some(r#"{"optime": 67108864}"#.into()),
            ..DcsSnapshot::default()
        };
        palisade_plugin_host::snapshot::cluster_from_snapshot(snap).0
    }

    fn member(port: u16, role: &str, state: &str, extra: Value) -> Value {
        let mut m = json!({
            "conn_url": format!("postgres://127.0.0.1:{port}/postgres"),
            "api_url": format!("http://127.0.0.1:{}/patroni", port + 1000),
            "role": role, "state": state, "timeline": 1,
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    }

    #[test]
    fn the_member_table_matches_patronictl() {
        let c = cluster(
            &[
                ("node1", member(5432, "primary", "running", json!({}))),
                (
                    "node2",
                    member(
                        5433,
                        "replica",
                        "streaming",
                        json!({"replication_state": "streaming", "receive_lsn": 67108864, "replay_lsn": 66060288, "lsn": 66060288}),
                    ),
                ),
                (
                    "node3",
                    member(
                        5434,
                        "replica",
                        "running",
                        json!({"tags": {"nofailover": true}, "pending_restart": true, "pending_restart_reason": {"max_connections": {"old_value": "100", "new_value": "200"}}}),
                    ),
                ),
            ],
            Some("node1"),
        );
        let out = output_members(&Clusters::plain(c.clone()), "demo", false, Format::Pretty);
        let want = "\
+ Cluster: demo (7311) ---+---------+-----------+----+-------------+-----+------------+-----+-----------------+---------------------------+------------------+
| Member | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Pending restart | Pending restart reason    | Tags             |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+-----------------+---------------------------+------------------+
| node1  | 127.0.0.1:5432 | Leader  | running   |  1 |             |     |            |     |                 |                           |                  |
| node2  | 127.0.0.1:5433 | Replica | streaming |  1 |   0/4000000 |   0 |  0/3F00000 |   1 |                 |                           |                  |
| node3  | 127.0.0.1:5434 | Replica | running   |  1 |     unknown |     |    unknown |     | *               | max_connections: 100->200 | nofailover: true |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+-----------------+---------------------------+------------------+
";
        assert_eq!(out, want, "\n{out}");
        let tsv = output_members(&Clusters::plain(c.clone()), "demo", false, Format::Tsv);
        assert!(tsv.contains("demo\tnode3\t127.0.0.1:5434\tReplica\trunning\t1\tunknown\t\tunknown\t\t*\tmax_connections: 100->200\t{nofailover: true}\n"), "{tsv}");
    }

    #[test]
    fn every_citus_group_in_one_table() {
        let group = |leader: &str, replica: &str, port: u16| {
            cluster(
                &[
                    (leader, member(port, "primary", "running", json!({}))),
                    (replica, member(port + 1, "replica", "running", json!({}))),
                ],
                Some(leader),
            )
        };
        let mut paused = group("w1", "w1b", 5442);
        paused.config = Some(palisade_model::values::ClusterConfig::from_value("1", r#"{"pause": true}"#).unwrap());
        let all = Clusters {
            citus: true,
            group: None,
            by_group: BTreeMap::from([(2, group("w2", "w2b", 5452)), (0, group("c", "c2", 5432)), (1, paused)]),
        };
        let out = output_members(&all, "demo", false, Format::Pretty);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("+ Citus cluster: demo -"), "{out}");
        assert!(lines[1].starts_with("| Group | Member |"), "{out}");
        let rows: Vec<(&str, &str)> = lines[3..9]
            .iter()
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1], cells[2])
            })
            .collect();
        assert_eq!(rows, [("0", "c"), ("0", "c2"), ("1", "w1"), ("1", "w1b"), ("2", "w2"), ("2", "w2b")]);
        assert!(out.ends_with("Citus group: 1\n Maintenance mode: on\n"), "{out}");
        let names = |c: &Clusters, r| all_members(c, r).into_iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(names(&all, CtlRole::Leader), ["c", "w1", "w2"]);

        let one = Clusters { citus: true, group: Some(1), by_group: BTreeMap::from([(1, all.by_group[&1].clone())]) };
        let out = output_members(&one, "demo", false, Format::Tsv);
        assert!(out.starts_with("Cluster\tGroup\tMember\t"), "{out}");
        assert!(out.contains("demo\t1\tw1b\t"), "{out}");
        assert_eq!(names(&one, CtlRole::Replica), ["w1b"]);
        let pretty = output_members(&one, "demo", false, Format::Pretty);
        assert!(pretty.starts_with("+ Citus cluster: demo (group: 1, 7311) "), "{pretty}");
        assert!(!pretty.contains("Group") && !pretty.contains("Citus group:"), "{pretty}");
    }

    #[test]
    fn topology_indents_cascading_replicas() {
        let c = cluster(
            &[
                ("a", member(5432, "primary", "running", json!({}))),
                ("b", member(5433, "replica", "streaming", json!({}))),
                ("c", member(5434, "replica", "streaming", json!({"tags": {"replicatefrom": "b"}}))),
            ],
            Some("a"),
        );
        let out = output_members(&Clusters::plain(c.clone()), "demo", false, Format::Topology);
        let names: Vec<&str> = out.lines().skip(3).filter_map(|l| l.split('|').nth(1)).map(str::trim_end).collect();
        assert_eq!(names, vec![" a", " + b", "   + c"]);
    }

    #[test]
    fn members_by_role() {
        let c = cluster(
            &[
                ("a", member(5432, "primary", "running", json!({}))),
                ("b", member(5433, "replica", "streaming", json!({}))),
            ],
            Some("a"),
        );
        let names = |r| all_members(&Clusters::plain(c.clone()), r).into_iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(names(CtlRole::Leader), ["a"]);
        assert_eq!(names(CtlRole::Primary), ["a"]);
        assert!(names(CtlRole::StandbyLeader).is_empty());
        assert_eq!(names(CtlRole::Replica), ["b"]);
        assert_eq!(names(CtlRole::Any), ["a", "b"]);
        assert_eq!(all_members_leader_first(&c).into_iter().map(|m| m.name).collect::<Vec<_>>(), ["a", "b"]);
    }
}
