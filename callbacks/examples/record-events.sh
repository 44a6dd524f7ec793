#!/bin/sh
# record-events.sh: append one "action role scope" line per callback to a file.
#
# Palisade (like Patroni) calls a callback as
#
#     <command...> <action> <role> <scope>
#
# where action is on_start, on_stop, on_restart, on_reload or on_role_change,
# role is the role PostgreSQL has now (primary, replica, standby_leader...)
# and scope is the cluster's name. The callback runs in the background in the
# daemon's working directory with the daemon's environment; a callback still
# running when the next one comes is killed.
#
# The file is named by PALISADE_EVENTS_FILE (default: ./palisade-events.log,
# relative to the daemon's working directory). Set it in the daemon's
# environment, or in the command itself:
#
#     postgresql:
#       callbacks:
#         on_start: /usr/share/palisade/examples/record-events.sh
#         on_role_change: env PALISADE_EVENTS_FILE=/var/log/pg-roles.log /usr/share/palisade/examples/record-events.sh
#
# Exit status: 0, or 2 when called with the wrong number of arguments.
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: $0 <action> <role> <scope>" >&2
    exit 2
fi

printf '%s %s %s\n' "$1" "$2" "$3" >> "${PALISADE_EVENTS_FILE:-palisade-events.log}"
