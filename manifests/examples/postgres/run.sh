#!/bin/sh
# The member: a PostgreSQL server on $HOST:$PORT0, data on its volume.
# Its task ends when the server dies by itself, so converge replaces it;
# follow.sh and demote.sh restart it in place (the file "restart" says so:
# lib.sh, hold_restart).
. ./lib.sh
set -e
rm -rf "$PGDATA.new" # a copy by follow.sh that did not finish
if [ -s "$PGDATA/PG_VERSION" ]; then
	# Relaunched on its volume, with its data: started as a standby (a
	# master that died may have been replaced: never a second primary), of
	# the published master if any. follow.sh then re-points it, or rewinds
	# or copies it if it diverged; the election promotes it if it is ahead.
	touch "$PGDATA/standby.signal"
	if [ -n "$CONVERGE_MASTER_HOST" ]; then
		echo "primary_conninfo = '$(master_conninfo)'" >>"$PGDATA/postgresql.auto.conf"
	fi
else
	# A new member: its data is made aside and moved in place once
	# complete, so a launch that dies half-way leaves nothing to start from.
	rm -rf "$PGDATA"
	if [ -n "$CONVERGE_MASTER_HOST" ]; then
		# A master is published: start as its streaming standby. --no-slot:
		# with a (temporary) slot the copy's WAL stream reports flushes and
		# counts as a synchronous standby under 'ANY 1 (*)', acknowledging
		# commits that no running standby holds.
		"$PG/pg_basebackup" -D "$PGDATA.new" -d "$(master_conninfo)" -X stream --no-slot -c fast -R
	else
		# No master yet: a new database, started read-only (a standby with
		# no upstream) until the election promotes one member.
		"$PG/initdb" -D "$PGDATA.new" -U postgres --auth=trust >/dev/null
		cat >> "$PGDATA.new/pg_hba.conf" <<HBA
host all         postgres 127.0.0.0/8 trust
host replication postgres 127.0.0.0/8 trust
HBA
		cat >> "$PGDATA.new/postgresql.conf" <<CONF
synchronous_standby_names = 'ANY 1 (*)' # a commit is acknowledged once a standby has it too
wal_log_hints = on                      # for pg_rewind
wal_keep_size = 256MB                   # WAL kept for standbys that fall behind
wal_retrieve_retry_interval = 500ms     # standbys find a new master quickly
unix_socket_directories = ''
CONF
		touch "$PGDATA.new/standby.signal"
	fi
	mv "$PGDATA.new" "$PGDATA"
fi
set +e
# Stopped (SIGTERM): a fast shutdown, waited for.
trap 'kill -INT "$pid"; wait "$pid"; exit 0' TERM INT
while :; do
	"$PG/postgres" -c listen_addresses="$HOST" -c port="$PORT0" &
	pid=$!
	wait "$pid"; rc=$?
	[ -e restart ] || exit "$rc" # died by itself: the member fails
	until [ "$(cat restart 2>/dev/null)" = go ]; do sleep 0.1; done
	rm -f restart # asked for (lib.sh, hold_restart): start it again
done
