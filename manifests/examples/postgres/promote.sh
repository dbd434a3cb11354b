#!/bin/sh
# Run on the elected member once it holds the master lease: make it the primary.
. ./lib.sh
set -e
if [ "$(sql 'SELECT pg_is_in_recovery()')" = t ]; then
	sql "ALTER SYSTEM RESET primary_conninfo"
	"$PG/pg_ctl" promote -w -t 30
fi
sql "SELECT pg_reload_conf()" >/dev/null
