#!/bin/sh
# The member's replication position, a GTID such as 0-3581927210-42: what it
# has written to its binlog, or, as a replica, received in its relay log (a
# semi-synchronous commit is acknowledged once a replica received it). A new
# member with neither is at 0.
. ./lib.sh
set -e
cur=$(sql "SELECT @@gtid_current_pos")
io=$(slave Gtid_IO_Pos)
if [ -n "$(seq0 "$io")" ] && [ "$(seq0 "$io")" -gt "$(seq0 "$cur" || echo 0)" ]; then
	echo "$io"
else
	echo "${cur:-0}"
fi
