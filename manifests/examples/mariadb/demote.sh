#!/bin/sh
# Run on the master before another may be elected: stop taking writes.
#   CONVERGE_DEMOTE_REASON=lease       it cannot renew its lease: the server
#     is killed at once (a transaction waiting for its replica's
#     acknowledgement is never acknowledged); the member fails and converge
#     replaces it with a fresh one that replicates from the next master.
#   CONVERGE_DEMOTE_REASON=switchover  handed over: read-only (clients' root
#     lacks READ_ONLY ADMIN), then wait until every replica has been sent the
#     whole binlog, so whichever is elected next has every commit; the
#     server stays, and follow.sh makes it a replica of the next master.
. ./lib.sh
if [ "$CONVERGE_DEMOTE_REASON" != switchover ]; then
	kill -9 "$(cat "$DATA/mariadbd.pid")"
	exit
fi
sql "SET GLOBAL read_only = ON" || exit 1
end=$(($(date +%s) + 20))
while [ "$(date +%s)" -le "$end" ]; do
	[ "$(sql "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'
		AND STATE NOT LIKE '%has sent all binlog to%'")" = 0 ] && exit 0
	sleep 0.1
done
echo "demote: the replicas were not sent the whole binlog within 20s" >&2
exit 1
