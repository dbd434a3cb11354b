#!/bin/sh
# The member: a MariaDB server on $HOST:$PORT0, data on its volume, started
# read-only and replicating from no one until the election promotes it
# (promote.sh) or points it at the master (follow.sh). Its task ends when the
# server dies; converge relaunches it on its volume, with its data (started
# read-only again: follow.sh points it at the master), or afresh if follow.sh
# found it diverged (the file "reinit").
. ./lib.sh
set -e
# A server_id of its own: the task id's random suffix (a relaunched member of
# the same ordinal must not reuse one, or replicas would skip its writes).
id=$(printf '%d' "0x${MESOS_TASK_ID##*.}" 2>/dev/null) || id=0
[ "$id" -gt 0 ] || id=$((CONVERGE_ORDINAL + 1))
mkdir -p "$MESOS_SANDBOX/tmp"
cat > my.cnf <<CNF
[mariadbd]
datadir                = $DATA
bind-address           = $HOST
port                   = $PORT0
socket                 = $SOCKET
pid-file               = $DATA/mariadbd.pid
tmpdir                 = $MESOS_SANDBOX/tmp
server-id              = $id
gtid-domain-id         = 0        # one domain: a single master at a time
log-bin                = binlog   # kept: a new member replays it from the start
log-slave-updates      = ON       # a replica's binlog is a master's, should it win
binlog-format          = ROW
read-only              = ON       # until promoted
skip-slave-start
skip-name-resolve
innodb-buffer-pool-size = 64M
# On the master (promote.sh turns it on; on a replica it would hold up the
# replica's own binlog): a commit is acknowledged only once a replica has it
# in its relay log, and never falls back to asynchronous replication (it
# waits up to an hour instead).
rpl-semi-sync-master-enabled    = OFF
rpl-semi-sync-master-wait-point = AFTER_SYNC
rpl-semi-sync-master-timeout    = 3600000
rpl-semi-sync-slave-enabled     = ON
CNF
# root without password on loopback (127.0.0.0/8), bound by read_only
# (READ_ONLY ADMIN revoked) so only the master takes writes; the hooks use
# root@localhost on the socket. Not in the binlog: each member has its own.
cat > init.sql <<SQL
SET sql_log_bin = 0;
DROP USER IF EXISTS root@'127.0.0.1', root@'::1', root@'$(hostname)';
CREATE USER IF NOT EXISTS root@'127.%';
GRANT ALL ON *.* TO root@'127.%' WITH GRANT OPTION;
REVOKE READ_ONLY ADMIN ON *.* FROM root@'127.%';
SQL
if [ -e "$VOLUME/reinit" ]; then
	rm -rf "$DATA" && rm -f "$VOLUME/reinit"
fi
if [ ! -d "$DATA/mysql" ]; then
	echo "$MESOS_TASK_ID" >"$VOLUME/created-by" # whose install this data is
	mariadb-install-db --no-defaults --datadir="$DATA" --tmpdir="$MESOS_SANDBOX/tmp" \
		--auth-root-authentication-method=normal --skip-test-db >install.log 2>&1 || { cat install.log >&2; exit 1; }
fi
exec mariadbd --defaults-file=my.cnf --init-file="$PWD/init.sql"
