#!/bin/sh
# Run on the master before another may be elected: stop taking writes. The
# server comes back as a standby with no upstream (follow.sh re-points it at
# the next master).
#   CONVERGE_DEMOTE_REASON=lease       it cannot renew its lease: at once
#   CONVERGE_DEMOTE_REASON=switchover  handed over: a clean (fast) shutdown,
#     in which the primary sends its standbys every WAL record, its shutdown
#     checkpoint included, and waits for them to flush it: whichever is
#     elected next has every commit.
. ./lib.sh
hold_restart
if [ "$CONVERGE_DEMOTE_REASON" = switchover ]; then
	"$PG/pg_ctl" stop -m fast -w -t 30 || exit 1 # converge ends the task
else
	"$PG/pg_ctl" stop -m immediate -w -t 5
fi
touch "$PGDATA/standby.signal"
release_restart
