#!/bin/sh
# The readiness check (task.readinessCheck): this member serves when its
# server accepts connections and it is the master (read_only off) or a
# replica whose IO and SQL threads both run (it receives and applies the
# master's binlog: a semi-synchronous acknowledger, so a rolling update
# replaces the next member only then).
. ./lib.sh
[ "$(sql "SELECT @@read_only")" = 0 ] && exit 0
status=$(my -e "SHOW SLAVE STATUS\G") || exit 1
echo "$status" | grep -q '^ *Slave_IO_Running: Yes$' &&
	echo "$status" | grep -q '^ *Slave_SQL_Running: Yes$'
