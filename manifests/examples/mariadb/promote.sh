#!/bin/sh
# Run on the elected member once it holds the master lease: apply what it
# received from the old master, stop replicating, take writes.
. ./lib.sh
set -e
sql "STOP SLAVE IO_THREAD"
io=$(slave Gtid_IO_Pos)
if [ -n "$io" ]; then
	[ "$(sql "SELECT MASTER_GTID_WAIT('$io', 30)")" = 0 ] || { echo "promote: $io not applied" >&2; exit 1; }
fi
sql "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL rpl_semi_sync_master_enabled = ON;
	SET GLOBAL read_only = OFF"
