#!/bin/sh
# The readiness check (task.readinessCheck): this member serves when its
# server accepts connections and it is the master (takes writes) or a
# standby streaming from one (so it counts as a synchronous standby, and a
# rolling update replaces the next member only then).
. ./lib.sh
[ "$(sql "SELECT NOT pg_is_in_recovery() OR EXISTS (
	SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')")" = t ]
