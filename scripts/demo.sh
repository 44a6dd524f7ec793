#!/usr/bin/env bash
# A local palisade cluster on 127.0.0.1: one etcd, three PostgreSQL 15
# servers, three palisade daemons. Everything lives in $DEMO_DIR (default
# /var/tmp/palisade-demo) and runs as the unprivileged user 'palisade'.
#
#   scripts/demo.sh [start]        set up the machine, build, start, show the cluster
#   scripts/demo.sh status         show the cluster
#   scripts/demo.sh kill-primary   kill -9 the leader's daemon and PostgreSQL
#   scripts/demo.sh start-node N   start node N (1-3) again
#   scripts/demo.sh stop           stop everything (data is kept)
#   scripts/demo.sh clean          stop everything and remove $DEMO_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO_DIR="${DEMO_DIR:-/var/tmp/palisade-demo}"
USER_NAME="${PALISADE_TEST_USER:-palisade}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
ETCD_CLIENT=12379
ETCD_PEER=12380
SCOPE=demo
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

leader() {
    curl -s "http://127.0.0.1:$ETCD_CLIENT/v3/kv/range" \
        -d "{\"key\":\"$(printf '/service/%s/leader' "$SCOPE" | base64 -w0)\"}" |
        python3 -c 'import sys,json,base64; kv=json.load(sys.stdin).get("kvs"); print(base64.b64decode(kv[0]["value"]).decode() if kv else "")'
}

status() {
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
    echo "leader key: $(leader)"
}

write_config() {
    local i=$1
    cat >"$DEMO_DIR/node$i.yml" <<EOF
scope: $SCOPE
name: node$i
restapi:
  listen: 127.0.0.1:$(api_port "$i")
  connect_address: 127.0.0.1:$(api_port "$i")
etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT
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
    "$ROOT/scripts/setup.sh"
    echo "building palisade (cargo build --workspace)..."
    (cd "$ROOT" && cargo build --workspace --quiet)
    for p in $ETCD_CLIENT $ETCD_PEER $(pg_port 1) $(pg_port 2) $(pg_port 3) $(api_port 1) $(api_port 2) $(api_port 3); do
        if ! port_free "$p"; then
            echo "port $p is in use: is a demo already running? (scripts/demo.sh stop)" >&2
            exit 1
        fi
    done
    mkdir -p "$DEMO_DIR"/{bin,lib/palisade/plugins,data,log,etcd} "$DEMO_DIR"/run/node{1,2,3}
    install -m 755 "$ROOT/target/debug/palisade" "$DEMO_DIR/bin/"
    install -m 755 "$ROOT/target/debug/palisadectl" "$DEMO_DIR/bin/"
    for p in dcs_etcd3 replica_basebackup replica_command callback_script; do
        install -m 644 "$ROOT/target/debug/libpalisade_$p.so" "$DEMO_DIR/lib/palisade/plugins/"
    done
    for i in 1 2 3; do write_config "$i"; done
    chown -R "$USER_NAME:$USER_NAME" "$DEMO_DIR"
    chmod 700 "$DEMO_DIR"/run/node{1,2,3}

    as_user bash -c "nohup etcd --name demo --data-dir '$DEMO_DIR/etcd' \
        --listen-client-urls http://127.0.0.1:$ETCD_CLIENT --advertise-client-urls http://127.0.0.1:$ETCD_CLIENT \
        --listen-peer-urls http://127.0.0.1:$ETCD_PEER --initial-advertise-peer-urls http://127.0.0.1:$ETCD_PEER \
        --initial-cluster demo=http://127.0.0.1:$ETCD_PEER >'$DEMO_DIR/log/etcd.log' 2>&1 </dev/null & echo \$! >'$DEMO_DIR/run/etcd.pid'"
    for _ in $(seq 50); do curl -s "http://127.0.0.1:$ETCD_CLIENT/health" >/dev/null && break; sleep 0.2; done

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
    echo "the cluster works: node1 leads, node2 and node3 stream from it"
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
    [ -f "$DEMO_DIR/run/etcd.pid" ] && kill -TERM "$(cat "$DEMO_DIR/run/etcd.pid")" 2>/dev/null || true
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
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
