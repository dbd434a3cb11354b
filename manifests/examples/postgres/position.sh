#!/bin/sh
# The member's replication position: the WAL it has flushed (a standby: also
# what it received but has not replayed yet), as an LSN such as 0/3000148.
. ./lib.sh
sql "SELECT CASE WHEN pg_is_in_recovery()
	THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
	ELSE pg_current_wal_flush_lsn() END"
