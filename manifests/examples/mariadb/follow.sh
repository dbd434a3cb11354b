#!/bin/sh
# Run on every other member at each new master (CONVERGE_MASTER_HOST/PORT),
# again until it succeeds: replicate from it by GTID, semi-synchronously.
. ./lib.sh
if [ "$(msql "SELECT @@read_only")" != 0 ]; then
	echo "follow: $CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT is not a master" >&2
	exit 1
fi
# A former master's own writes are in its binlog, not in gtid_slave_pos:
# replicate from where its binlog ends (for a replica the two are the same).
sql "SET GLOBAL read_only = ON; SET GLOBAL rpl_semi_sync_master_enabled = OFF; STOP SLAVE;
	SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos;
	CHANGE MASTER TO MASTER_HOST = '$CONVERGE_MASTER_HOST', MASTER_PORT = $CONVERGE_MASTER_PORT,
		MASTER_USER = 'root', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1,
		MASTER_HEARTBEAT_PERIOD = 1;
	START SLAVE" || exit 1
end=$(($(date +%s) + 20))
while [ "$(date +%s)" -le "$end" ]; do
	[ "$(slave Slave_IO_Running)$(slave Slave_SQL_Running)" = YesYes ] && exit 0
	if [ "$(slave Last_IO_Errno)" = 1236 ]; then
		# Ahead of or diverged from the master's binlog: end this member;
		# relaunched on its volume, it starts afresh (run.sh, "reinit") and
		# replays the master's binlog.
		echo "follow: cannot replicate from $CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT: $(slave Last_IO_Error)" >&2
		touch "$VOLUME/reinit"
		kill -9 "$(cat "$DATA/mariadbd.pid")"
		exit 1
	fi
	sleep 0.2
done
echo "follow: not replicating from $CONVERGE_MASTER_HOST:$CONVERGE_MASTER_PORT: $(slave Last_IO_Error)" >&2
exit 1
