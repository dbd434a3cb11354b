# Shared by the hooks of manifests/examples/mariadb.yaml; sourced from the
# member's sandbox, where the agent fetched these scripts.
# The data: on the member's persistent volume (task.volumes "data", at data/
# in the sandbox), in a directory of its own; the file "reinit" there asks
# run.sh to start it afresh (follow.sh, when it diverged from the master).
VOLUME=$MESOS_SANDBOX/data
DATA=$VOLUME/db
SOCKET=/tmp/mariadb-$HOST-$PORT0.sock
# This member as root@localhost over its socket (the one account that may
# set read_only), and the master named by CONVERGE_MASTER_HOST/PORT as
# root over TCP (no password on loopback).
my() { mariadb --no-defaults -S "$SOCKET" -u root --connect-timeout=3 "$@"; }
sql() { my -NBe "$1"; }
msql() { mariadb --no-defaults --protocol=tcp -h "$CONVERGE_MASTER_HOST" -P "$CONVERGE_MASTER_PORT" -u root --connect-timeout=3 -NBe "$1"; }
# A field of SHOW SLAVE STATUS (empty when this member replicates from no one).
slave() { my -e "SHOW SLAVE STATUS\G" | sed -n "s/^ *$1: //p"; }
# The sequence number of a GTID list in domain 0 (the only one used here).
seq0() { echo "$1" | tr ',' '\n' | sed -n 's/^ *0-[0-9]*-\([0-9]*\) *$/\1/p'; }
