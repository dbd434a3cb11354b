# Shared by the hooks of manifests/examples/postgres.yaml; sourced from the
# member's sandbox, where the agent fetched these scripts.
PG=/usr/lib/postgresql/15/bin
PGDATA=$MESOS_SANDBOX/data
export PGDATA PGCONNECT_TIMEOUT=3
# This member, over TCP on its agent's loopback address (no Unix socket:
# sandbox paths are longer than a socket path may be).
sql() { "$PG/psql" -h "$HOST" -p "$PORT0" -U postgres -d postgres -XAtqc "$1"; }
# The master named by CONVERGE_MASTER_HOST/PORT, as a libpq connection string.
master_conninfo() {
	echo "host=$CONVERGE_MASTER_HOST port=$CONVERGE_MASTER_PORT user=postgres application_name=member$CONVERGE_ORDINAL"
}
msql() { "$PG/psql" -d "$(master_conninfo) dbname=postgres" -XAtqc "$1"; }
