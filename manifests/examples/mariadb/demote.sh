#!/bin/sh
# Run on a master that cannot renew its lease, before the lease ends: stop
# taking writes at once. The server is killed (a transaction waiting for its
# replica's acknowledgement is never acknowledged); the member fails and
# converge replaces it with a fresh one that replicates from the next master.
. ./lib.sh
kill -9 "$(cat "$DATA/mariadbd.pid")"
