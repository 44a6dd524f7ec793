#!/bin/sh
# syslog-role-change.sh: report role changes to syslog, ignore other events.
#
# Called as <this script> <action> <role> <scope> (see record-events.sh).
# On on_role_change, and on on_start as primary, it sends one line tagged
# "palisade" to syslog through logger(1), e.g.
#
#     palisade: cluster demo: this node is now primary (on_role_change)
#
# and is the place to hook what must follow the primary (a DNS record, a
# load balancer pool, a virtual IP). Keep such work short or idempotent: the
# next callback kills this one if it is still running.
#
#     postgresql:
#       callbacks:
#         on_start: /usr/share/palisade/examples/syslog-role-change.sh
#         on_role_change: /usr/share/palisade/examples/syslog-role-change.sh
#
# Set SYSLOG_FACILITY (default: user) to choose the facility.
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: $0 <action> <role> <scope>" >&2
    exit 2
fi
action=$1 role=$2 scope=$3

case "$action" in
    on_role_change) ;;
    on_start) [ "$role" = primary ] || exit 0 ;;
    *) exit 0 ;;
esac

logger -t palisade -p "${SYSLOG_FACILITY:-user}.notice" \
    "cluster $scope: this node is now $role ($action)"
