#!/bin/sh
# Run on every other member at each new master (CONVERGE_MASTER_HOST/PORT),
# again until it succeeds: become the master's streaming standby. A standby
# of the same database is re-pointed in place; otherwise the data is rewound
# to the master's history (pg_rewind) or copied afresh (pg_basebackup, without
# a replication slot: see run.sh).
. ./lib.sh
# replaying what the master writes from now on, within $1 seconds?
streaming() {
	end=$(($(date +%s) + $1)) from='' lsn=''
	while [ "$(date +%s)" -le "$end" ]; do
		[ -n "$from" ] || from=$(sql "SELECT pg_last_wal_replay_lsn()" 2>/dev/null)
		if [ -n "$from" ] && [ -z "$lsn" ]; then
			lsn=$(msql "SELECT pg_logical_emit_message(false, 'converge', 'follow')") || return 1
		fi
		[ -n "$lsn" ] && [ "$(sql "SELECT pg_last_wal_replay_lsn() >= '$lsn'
			AND pg_last_wal_replay_lsn() > '$from'" 2>/dev/null)" = t ] && return 0
		sleep 0.2
	done
	echo "follow: not streaming from $CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT after $1s" >&2
	return 1
}
# Nothing is changed unless the master answers as a primary (not one that
# has been demoted since), and this server is up (not still being created by
# run.sh) or was stopped by an earlier run of this.
primary() { msql "SELECT system_identifier FROM pg_control_system() WHERE NOT pg_is_in_recovery()"; }
master_id=$(primary)
if [ -z "$master_id" ]; then
	echo "follow: $CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT is not a primary" >&2
	exit 1
fi
if [ ! -e restart ] && ! sql "SELECT 1" >/dev/null; then
	echo "follow: the server is not up yet" >&2
	exit 1
fi
same_db=false
[ "$("$PG/pg_controldata" 2>/dev/null | sed -n 's/^Database system identifier: *//p')" = "$master_id" ] && same_db=true
if $same_db && [ "$(sql 'SELECT pg_is_in_recovery()')" = t ]; then
	sql "ALTER SYSTEM SET primary_conninfo = '$(master_conninfo)'" && sql "SELECT pg_reload_conf()" >/dev/null &&
		streaming 10 && exit 0
fi
# Stop the server (run.sh starts it again once told: release_restart).
[ -n "$(primary)" ] || exit 1
hold_restart
if "$PG/pg_ctl" status >/dev/null; then "$PG/pg_ctl" stop -m fast -w -t 30 || exit 1; fi
if $same_db && "$PG/pg_rewind" -D "$PGDATA" --source-server="$(master_conninfo) dbname=postgres" -R; then
	:
elif rm -rf "$PGDATA.new" && "$PG/pg_basebackup" -D "$PGDATA.new" -d "$(master_conninfo)" -X stream --no-slot -c fast -R; then
	rm -rf "$PGDATA" && mv "$PGDATA.new" "$PGDATA"
else # keep what we had, read-only; the next run tries again
	touch "$PGDATA/standby.signal"
	release_restart
	exit 1
fi
release_restart
streaming 30
