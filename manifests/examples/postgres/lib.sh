# Shared by the hooks of manifests/examples/postgres.yaml; sourced from the
# member's sandbox, where the agent fetched these scripts.
PG=/usr/lib/postgresql/15/bin
# The data: on the member's persistent volume (task.volumes "data", at data/
# in the sandbox), in a directory of its own that follow.sh may replace whole.
PGDATA=$MESOS_SANDBOX/data/pgdata
export PGDATA PGCONNECT_TIMEOUT=3
# This member, over TCP on its agent's loopback address (no Unix socket:
# sandbox paths are longer than a socket path may be).
sql() { "$PG/psql" -h "$HOST" -p "$PORT0" -U postgres -d postgres -XAtqc "$1"; }
# The master named by CONVERGE_MASTER_HOST/PORT, as a libpq connection string.
master_conninfo() {
	echo "host=$CONVERGE_MASTER_HOST port=$CONVERGE_MASTER_PORT user=postgres application_name=member$CONVERGE_ORDINAL"
}
msql() { "$PG/psql" -d "$(master_conninfo) dbname=postgres" -XAtqc "$1"; }
# Restarting the server in place (demote.sh, follow.sh) rather than ending
# the member: the file "restart" tells run.sh that the server's next exit is
# asked for, and holds its restart until it says "go". Only run.sh removes it,
# once it has seen the exit: however late it notices (a loaded machine), it
# never takes the asked-for stop for the server dying by itself.
hold_restart() {
	n=0 # a "go" run.sh has not picked up yet is its own, not this stop's
	while [ "$(cat restart 2>/dev/null)" = go ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	echo hold > restart
}
release_restart() { echo go > restart; }
