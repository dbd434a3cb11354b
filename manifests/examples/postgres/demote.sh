#!/bin/sh
# Run on a master that cannot renew its lease, before the lease ends: stop
# taking writes at once; the server comes back as a standby with no upstream
# (follow.sh re-points it at the next master).
. ./lib.sh
touch restart
"$PG/pg_ctl" stop -m immediate -w -t 5
touch "$PGDATA/standby.signal"
rm -f restart
