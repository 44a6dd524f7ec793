#!/usr/bin/env bash
# A local palisade cluster on 127.0.0.1: one DCS server, three PostgreSQL
# 15 servers, three palisade daemons. Everything lives in $DEMO_DIR (default
# /var/tmp/palisade-demo) and runs as the unprivileged user 'palisade'.
#
# DCS=etcd3 (default), DCS=etcd, DCS=zookeeper or DCS=consul chooses the
# DCS: etcd through its v3 API, etcd through its v2 API (started with
# --enable-v2=true), a standalone ZooKeeper (the Debian package's jars,
# run with java, own port and data directory), or the Consul test double
# (tests/doubles/consul: not Consul, a stand-in serving the part of its
# HTTP API Patroni uses; the nodes register their services). The nodes' configurations
# get the matching section and the matching plugin is installed. A demo
# keeps its DCS until `scripts/demo.sh clean`.
#
#   [DCS=...] scripts/demo.sh [start]  set up the machine, build, start, show the cluster
#   scripts/demo.sh status         show the cluster
#   scripts/demo.sh kill-primary   kill -9 the leader's daemon and PostgreSQL
#   scripts/demo.sh start-node N   start node N (1-3) again
#   scripts/demo.sh start-dcs      start the DCS server alone (no PostgreSQL, no daemon)
#   scripts/demo.sh stop           stop everything (data is kept)
#   scripts/demo.sh clean          stop everything and remove $DEMO_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO_DIR="${DEMO_DIR:-/var/tmp/palisade-demo}"
USER_NAME="${PALISADE_TEST_USER:-palisade}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
ETCD_CLIENT=12379
ETCD_PEER=12380
ZK_CLIENT=12181
CONSUL_HTTP=18500
SCOPE=demo
# The DCS of a demo already set up wins over $DCS (see dcs_kind).
DCS_FILE="$DEMO_DIR/dcs"
pg_port() { echo $((15431 + $1)); }
api_port() { echo $((18007 + $1)); }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/demo.sh $1 needs root (it installs packages and runs servers as '$USER_NAME')" >&2
        exit 1
    fi
}

as_user() { setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --clear-groups -- "$@"; }

port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# The DCS this demo runs on: the one it was set up with, else $DCS, else etcd3.
dcs_kind() {
    local kind="${DCS:-}"
    if [ -f "$DCS_FILE" ]; then
        local was
        was=$(cat "$DCS_FILE")
        if [ -n "$kind" ] && [ "$kind" != "$was" ]; then
            echo "the demo in $DEMO_DIR runs on $was, not $kind: scripts/demo.sh clean first (or another DEMO_DIR)" >&2
            exit 2
        fi
        kind=$was
    fi
    kind="${kind:-etcd3}"
    case "$kind" in
        etcd3 | etcd | zookeeper | consul) echo "$kind" ;;
        *) echo "DCS=$kind: expected etcd3, etcd, zookeeper or consul" >&2; exit 2 ;;
    esac
}

# The plugin (libpalisade_<name>.so) the demo's DCS needs.
dcs_plugin() {
    case "$1" in
        etcd3) echo dcs_etcd3 ;;
        etcd) echo dcs_etcd ;;
        zookeeper) echo dcs_zookeeper ;;
        consul) echo dcs_consul ;;
    esac
}

# The configuration section pointing at the demo's DCS.
dcs_section() {
    case "$1" in
        etcd3) printf 'etcd3:\n  hosts: 127.0.0.1:%s\n' "$ETCD_CLIENT" ;;
        etcd) printf 'etcd:\n  hosts: 127.0.0.1:%s\n' "$ETCD_CLIENT" ;;
        zookeeper) printf 'zookeeper:\n  hosts:\n    - 127.0.0.1:%s\n' "$ZK_CLIENT" ;;
        consul) printf 'consul:\n  host: 127.0.0.1:%s\n  register_service: true\n' "$CONSUL_HTTP" ;;
    esac
}

dcs_ports() {
    case "$1" in
        etcd3 | etcd) echo "$ETCD_CLIENT $ETCD_PEER" ;;
        zookeeper) echo "$ZK_CLIENT" ;;
        consul) echo "$CONSUL_HTTP" ;;
    esac
}

zk_cli() { /usr/share/zookeeper/bin/zkCli.sh -server "127.0.0.1:$ZK_CLIENT" "$@" 2>/dev/null; }

# The leader key's value, read straight from the DCS.
leader() {
    local key="/service/$SCOPE/leader"
    case "$(dcs_kind)" in
        etcd3)
            curl -s "http://127.0.0.1:$ETCD_CLIENT/v3/kv/range" -d "{\"key\":\"$(printf '%s' "$key" | base64 -w0)\"}" |
                python3 -c 'import sys,json,base64; kv=json.load(sys.stdin).get("kvs"); print(base64.b64decode(kv[0]["value"]).decode() if kv else "")'
            ;;
        etcd)
            curl -s "http://127.0.0.1:$ETCD_CLIENT/v2/keys$key" |
                python3 -c 'import sys,json; print(json.load(sys.stdin).get("node", {}).get("value", ""))'
            ;;
        zookeeper)
            # zkCli prints the value after its connection event.
            zk_cli get "$key" | awk 'f { print } /^WatchedEvent state:SyncConnected/ { f = 1 }' | head -1
            ;;
        consul)
            # Consul KV keys have no leading slash; ?raw gives the bare value.
            curl -s "http://127.0.0.1:$CONSUL_HTTP/v1/kv${key}?raw"
            echo
            ;;
    esac
}

# Start the demo's DCS server as the test user and wait until it answers.
start_dcs() {
    local kind=$1
    case "$kind" in
        etcd3 | etcd)
            local v2=""
            [ "$kind" = etcd ] && v2="--enable-v2=true"
            mkdir -p "$DEMO_DIR/etcd"
            chown "$USER_NAME:$USER_NAME" "$DEMO_DIR/etcd"
            as_user bash -c "nohup etcd --name demo --data-dir '$DEMO_DIR/etcd' $v2 \
                --listen-client-urls http://127.0.0.1:$ETCD_CLIENT --advertise-client-urls http://127.0.0.1:$ETCD_CLIENT \
                --listen-peer-urls http://127.0.0.1:$ETCD_PEER --initial-advertise-peer-urls http://127.0.0.1:$ETCD_PEER \
                --initial-cluster demo=http://127.0.0.1:$ETCD_PEER >>'$DEMO_DIR/log/etcd.log' 2>&1 </dev/null & echo \$! >'$DEMO_DIR/run/dcs.pid'"
            for _ in $(seq 50); do curl -s "http://127.0.0.1:$ETCD_CLIENT/health" | grep -q '"health":"true"' && return; sleep 0.2; done
            echo "etcd did not come up on port $ETCD_CLIENT; see $DEMO_DIR/log/etcd.log" >&2
            exit 1
            ;;
        zookeeper)
            # Standalone, its own port and data directory; no admin server
            # (it would take port 8080); `ruok` answers the health check.
            mkdir -p "$DEMO_DIR/zookeeper/data"
            printf '%s
' "tickTime=2000" "dataDir=$DEMO_DIR/zookeeper/data" "clientPort=$ZK_CLIENT" \
                "clientPortAddress=127.0.0.1" "maxSessionTimeout=60000" "admin.enableServer=false" \
                "4lw.commands.whitelist=ruok,srvr,stat" >"$DEMO_DIR/zookeeper/zoo.cfg"
            chown -R "$USER_NAME:$USER_NAME" "$DEMO_DIR/zookeeper"
            as_user bash -c "nohup java -cp /usr/share/java/zookeeper.jar:/etc/zookeeper/conf_example \
                org.apache.zookeeper.server.quorum.QuorumPeerMain '$DEMO_DIR/zookeeper/zoo.cfg' \
                >>'$DEMO_DIR/log/zookeeper.log' 2>&1 </dev/null & echo \$! >'$DEMO_DIR/run/dcs.pid'"
            for _ in $(seq 100); do
                [ "$( (exec 3<>"/dev/tcp/127.0.0.1/$ZK_CLIENT" && printf ruok >&3 && timeout 1 cat <&3) 2>/dev/null)" = imok ] && return
                sleep 0.2
            done
            echo "ZooKeeper did not come up on port $ZK_CLIENT; see $DEMO_DIR/log/zookeeper.log" >&2
            exit 1
            ;;
        consul)
            # The Consul test double, started as an agent would be.
            if [ ! -x "$ROOT/target/debug/consul-test-double" ]; then
                echo "DCS=consul needs target/debug/consul-test-double: cargo build -p consul-test-double" >&2
                exit 1
            fi
            mkdir -p "$DEMO_DIR/consul/data" "$DEMO_DIR/bin"
            install -m 755 "$ROOT/target/debug/consul-test-double" "$DEMO_DIR/bin/"
            # session_ttl_min below Consul's 10 s: the demo's ttl 10 makes sessions of 5 s.
            printf '{"datacenter": "dc1", "node_name": "demo", "server": true, "session_ttl_min": "1s", "ports": {"http": %s}}\n' \
                "$CONSUL_HTTP" >"$DEMO_DIR/consul/consul.json"
            chown -R "$USER_NAME:$USER_NAME" "$DEMO_DIR/consul"
            as_user bash -c "nohup '$DEMO_DIR/bin/consul-test-double' agent -config-file '$DEMO_DIR/consul/consul.json' \
                -data-dir '$DEMO_DIR/consul/data' >>'$DEMO_DIR/log/consul.log' 2>&1 </dev/null & echo \$! >'$DEMO_DIR/run/dcs.pid'"
            for _ in $(seq 50); do curl -s "http://127.0.0.1:$CONSUL_HTTP/v1/status/leader" | grep -q ':' && return; sleep 0.2; done
            echo "the Consul test double did not come up on port $CONSUL_HTTP; see $DEMO_DIR/log/consul.log" >&2
            exit 1
            ;;
    esac
}

status() {
    local kind
    kind=$(dcs_kind)
    local ctl="$DEMO_DIR/bin/palisadectl"
    if [ -x "$ctl" ]; then
        "$ctl" -c "$DEMO_DIR/node1.yml" list || true
    fi
    printf '\n%-6s %-8s %-9s %-10s %-4s %s\n' NODE ROLE STATE REPLICATION TL "WAL (bytes)"
    local i
    for i in 1 2 3; do
        local body
        body=$(curl -s --max-time 2 "http://127.0.0.1:$(api_port "$i")/patroni" || true)
        if [ -z "$body" ]; then
            printf '%-6s %s\n' "node$i" "(daemon not answering)"
            continue
        fi
        python3 - "node$i" "$body" <<'EOF'
import json, sys
name, body = sys.argv[1], json.loads(sys.argv[2])
x = body.get("xlog", {})
wal = x.get("location", x.get("replayed_location", ""))
print(f'{name:<6} {body.get("role",""):<8} {body.get("state",""):<9} {body.get("replication_state","-"):<10} {str(body.get("timeline","")):<4} {wal}')
EOF
    done
    echo
    echo "leader key ($kind): $(leader)"
}

write_config() {
    local i=$1
    cat >"$DEMO_DIR/node$i.yml" <<EOF
scope: $SCOPE
name: node$i
restapi:
  listen: 127.0.0.1:$(api_port "$i")
  connect_address: 127.0.0.1:$(api_port "$i")
$(dcs_section "$(dcs_kind)")
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    postgresql:
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        wal_log_hints: 'on'
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:$(pg_port "$i")
  connect_address: 127.0.0.1:$(pg_port "$i")
  data_dir: $DEMO_DIR/data/node$i
  bin_dir: $PG_BIN
  pgpass: $DEMO_DIR/run/node$i/pgpass
  authentication:
    superuser:
      username: postgres
      password: demo-superuser
    replication:
      username: replicator
      password: demo-replicator
  parameters:
    unix_socket_directories: '$DEMO_DIR/run/node$i'
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
EOF
}

start_node() {
    local i=$1
    as_user bash -c "cd '$DEMO_DIR'; nohup '$DEMO_DIR/bin/palisade' '$DEMO_DIR/node$i.yml' >>'$DEMO_DIR/log/node$i.log' 2>&1 </dev/null & echo \$! >'$DEMO_DIR/run/node$i.pid'"
}

start() {
    need_root start
    local kind plugin
    kind=$(dcs_kind)
    plugin=$(dcs_plugin "$kind")
    "$ROOT/scripts/setup.sh"
    echo "building palisade (cargo build --workspace)..."
    (cd "$ROOT" && cargo build --workspace --quiet)
    if [ ! -f "$ROOT/target/debug/libpalisade_$plugin.so" ]; then
        echo "DCS=$kind needs target/debug/libpalisade_$plugin.so, which this workspace did not build" >&2
        exit 1
    fi
    for p in $(dcs_ports "$kind") $(pg_port 1) $(pg_port 2) $(pg_port 3) $(api_port 1) $(api_port 2) $(api_port 3); do
        if ! port_free "$p"; then
            echo "port $p is in use: is a demo already running? (scripts/demo.sh stop)" >&2
            exit 1
        fi
    done
    mkdir -p "$DEMO_DIR"/{bin,lib/palisade/plugins,data,log} "$DEMO_DIR"/run/node{1,2,3}
    echo "$kind" >"$DCS_FILE"
    install -m 755 "$ROOT/target/debug/palisade" "$DEMO_DIR/bin/"
    install -m 755 "$ROOT/target/debug/palisadectl" "$DEMO_DIR/bin/"
    for p in "$plugin" replica_basebackup replica_command callback_script; do
        install -m 644 "$ROOT/target/debug/libpalisade_$p.so" "$DEMO_DIR/lib/palisade/plugins/"
    done
    for i in 1 2 3; do write_config "$i"; done
    chown -R "$USER_NAME:$USER_NAME" "$DEMO_DIR"
    chmod 700 "$DEMO_DIR"/run/node{1,2,3}

    echo "starting the DCS: $kind"
    start_dcs "$kind"

    echo "starting node1 (it bootstraps the cluster), then node2 and node3 (they clone it)..."
    start_node 1
    for _ in $(seq 60); do [ "$(leader)" = node1 ] && break; sleep 1; done
    if [ "$(leader)" != node1 ]; then
        echo "node1 did not become the leader within 60 s; its log:" >&2
        tail -n 30 "$DEMO_DIR/log/node1.log" >&2
        exit 1
    fi
    start_node 2
    start_node 3
    n=0
    for _ in $(seq 90); do
        n=$(PGPASSWORD=demo-superuser "$PG_BIN/psql" -h 127.0.0.1 -p "$(pg_port 1)" -U postgres -Atc \
            "select count(*) from pg_stat_replication where state='streaming' and application_name like 'node%'" 2>/dev/null || echo 0)
        [ "$n" = 2 ] && break
        sleep 1
    done
    status
    if [ "$n" != 2 ]; then
        echo "only $n of 2 replicas stream from node1 after 90 s; see $DEMO_DIR/log/" >&2
        exit 1
    fi
    echo "the cluster works on $kind: node1 leads, node2 and node3 stream from it"
    cat <<EOF

The cluster runs in $DEMO_DIR (logs in $DEMO_DIR/log/).
  Write to the leader:   PGPASSWORD=demo-superuser psql -h 127.0.0.1 -p $(pg_port 1) -U postgres
  Watch it:              watch -n1 scripts/demo.sh status
  Kill the primary:      scripts/demo.sh kill-primary   (a replica takes over within ~10 s)
  Bring a node back:     scripts/demo.sh start-node N
  Operate it:            $DEMO_DIR/bin/palisadectl -c $DEMO_DIR/node1.yml list
                         $DEMO_DIR/bin/palisadectl -c $DEMO_DIR/node1.yml switchover --force
                         (also: failover, restart, reinit, pause, resume, edit-config, history...)
  Stop everything:       scripts/demo.sh stop            (scripts/demo.sh clean also removes the data)
EOF
}

kill_primary() {
    need_root kill-primary
    local l
    l=$(leader)
    [ -n "$l" ] || { echo "no leader right now" >&2; exit 1; }
    local i=${l#node}
    echo "kill -9 of $l's daemon and PostgreSQL"
    kill -9 "$(cat "$DEMO_DIR/run/node$i.pid")" 2>/dev/null || true
    kill -9 "$(head -1 "$DEMO_DIR/data/$l/postmaster.pid")" 2>/dev/null || true
    local t0=$SECONDS
    for _ in $(seq 60); do
        local now
        now=$(leader)
        if [ -n "$now" ] && [ "$now" != "$l" ]; then
            echo "new leader: $now (after ~$((SECONDS - t0)) s)"
            break
        fi
        sleep 0.5
    done
    status
    echo "bring $l back with: scripts/demo.sh start-node $i"
}

stop() {
    need_root stop
    for i in 1 2 3; do
        [ -f "$DEMO_DIR/run/node$i.pid" ] && kill -TERM "$(cat "$DEMO_DIR/run/node$i.pid")" 2>/dev/null || true
    done
    sleep 3
    for i in 1 2 3; do
        if [ -f "$DEMO_DIR/data/node$i/postmaster.pid" ]; then
            kill -QUIT "$(head -1 "$DEMO_DIR/data/node$i/postmaster.pid")" 2>/dev/null || true
        fi
    done
    local f pid
    for f in dcs etcd; do
        [ -f "$DEMO_DIR/run/$f.pid" ] || continue
        pid=$(cat "$DEMO_DIR/run/$f.pid")
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    done
    echo "stopped"
}

case "${1:-start}" in
    start) start ;;
    status) status ;;
    kill-primary) kill_primary ;;
    start-node)
        need_root start-node
        [[ "${2:-}" =~ ^[123]$ ]] || { echo "usage: scripts/demo.sh start-node 1|2|3" >&2; exit 2; }
        start_node "$2"
        echo "node$2 started; scripts/demo.sh status shows it rejoining"
        ;;
    stop) stop ;;
    clean) stop; rm -rf "$DEMO_DIR"; echo "removed $DEMO_DIR" ;;
    start-dcs)
        # The DCS server alone (no PostgreSQL, no daemon): to try a DCS.
        need_root start-dcs
        kind=$(dcs_kind)
        for p in $(dcs_ports "$kind"); do
            port_free "$p" || { echo "port $p is in use" >&2; exit 1; }
        done
        mkdir -p "$DEMO_DIR"/{log,run}
        echo "$kind" >"$DCS_FILE"
        chown "$USER_NAME:$USER_NAME" "$DEMO_DIR" "$DEMO_DIR"/{log,run}
        start_dcs "$kind"
        echo "$kind answers (pid $(cat "$DEMO_DIR/run/dcs.pid")); scripts/demo.sh stop stops it"
        ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
esac
