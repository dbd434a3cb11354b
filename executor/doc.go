// Package executor is `converge executor`: a Mesos custom executor, built on
// mesos-go's v1 executor library (executor/config, executor/calls, httpexec), that
// runs one converge member task and takes part in its cluster's elections. It runs
// unchanged under a real Mesos agent and under mesosbridge/localmesos.
//
// # Lifecycle
//
// Run reads its configuration from the agent's MESOS_* variables
// (executor/config.FromEnv: MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID,
// MESOS_AGENT_ENDPOINT, MESOS_DIRECTORY, MESOS_SANDBOX,
// MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD, MESOS_CHECKPOINT and, when checkpointing,
// MESOS_RECOVERY_TIMEOUT and MESOS_SUBSCRIPTION_BACKOFF_MAX) and SUBSCRIBEs to the
// agent at POST http://$MESOS_AGENT_ENDPOINT/api/v1/executor (protobuf). Then:
//
//   - LAUNCH: the task's command (CONVERGE_TASK_COMMAND from the executor's
//     environment, see controller/doc.go; failing that the TaskInfo's CommandInfo)
//     runs as `sh -c <command>` in the sandbox, in its own process group, with the
//     executor's environment (plus PORT0..n/PORTS derived from the task's port
//     resources when the environment lacks PORT0, and MESOS_TASK_ID /
//     CONVERGE_TASK_ID when missing). The executor sends TASK_STARTING, then
//     TASK_RUNNING once the process exists. The process's exit gives
//     TASK_FINISHED (status 0) or TASK_FAILED (message with the exit status or
//     signal).
//   - Checks: the TaskInfo's health_check and check run once the task is
//     RUNNING (package internal/checks, after Mesos's src/checks/; command
//     checks in the sandbox with the task's environment and user, HTTP and TCP
//     checks to 127.0.0.1 or the agent's own loopback LIBPROCESS_IP). Results
//     are TASK_RUNNING updates with healthy (REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
//     or check_status (REASON_TASK_CHECK_STATUS_UPDATED), each carrying the
//     other's latest value; at consecutive_failures the task is killed as by
//     KILL and its TASK_KILLED says healthy false.
//   - KILL: SIGTERM to the task's process group (TASK_KILLING first when the
//     framework has the TASK_KILLING_STATE capability), a grace period (the KILL's
//     kill policy, else the task's, else MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD minus
//     a margin, else 3s), then SIGKILL; TASK_KILLED.
//   - SHUTDOWN: every task is killed as above (the grace period capped by the
//     shutdown grace period), then the executor exits.
//   - Every UPDATE is kept until the agent ACKNOWLEDGEs it; on re-subscription
//     (after a broken stream, when the framework checkpoints) the SUBSCRIBE call
//     carries the unacknowledged updates and the tasks no update of which was
//     acknowledged yet. Without checkpointing a broken stream kills the task and
//     ends the executor, as Mesos expects.
//   - Once every task is terminal and its updates are acknowledged (or
//     Options.TerminalAckTimeout after the last terminal update) Run returns.
//
// # Elections
//
// The controller and the executor exchange framework messages (JSON,
// package election):
//
//   - lease-request{epoch, seq, position}: as master, the executor also runs
//     CONVERGE_POSITION_COMMAND every fifth of the lease, apart from the
//     renewals, and each request carries the latest position read, for
//     election.maximumLagOnFailover.
//   - position-query{epoch}: the executor runs CONVERGE_POSITION_COMMAND with
//     `sh -c` in the sandbox (timeout Options.PositionTimeout, default 10s), trims
//     its stdout and answers position{epoch, taskId, position}; when the command is
//     unset, fails, times out, prints nothing or prints something that is not a
//     position (election.ParsePosition), the answer has Error set instead.
//   - promote{epoch}: the executor runs CONVERGE_PROMOTE_COMMAND once per epoch
//     (timeout Options.PromoteTimeout, default 60s; a failure is retried, at
//     most PromoteAttempts runs in all, 1 s then 2 s apart, while the member
//     holds the lease) and answers promoted{epoch, taskId, error}. The controller re-sends promote until it is
//     confirmed, so a promote for an epoch already done (or in progress) is
//     confirmed with the first run's result without running the command again.
//     An unset promote command is a successful no-op.
//   - demote{epoch}: the master of epoch is handed over (lease.go): it stops
//     renewing its lease and runs CONVERGE_DEMOTE_COMMAND with
//     CONVERGE_DEMOTE_REASON=switchover (timeout Options.PromoteTimeout), or,
//     when that fails or is unset, kills its task; it answers
//     demoted{epoch, taskId, error}. The same one demotion serves a lease that
//     runs out (CONVERGE_DEMOTE_REASON=lease, bounded by a fifth of the lease).
//
// Both hooks get the task's environment (CONVERGE_NAMESPACE, CONVERGE_CLUSTER,
// CONVERGE_ORDINAL, CONVERGE_TASK_ID, PORT0..n, MESOS_SANDBOX, ...) plus
// CONVERGE_EPOCH. A hook's stderr goes to the executor's stderr (the sandbox's
// stderr file); the tail of it is quoted in the error of a failed hook.
//
// Position formats, as compared by the controller (election.Compare):
//
//   - a decimal integer, e.g. a log sequence number or binlog offset: "1234";
//   - a MySQL GTID set, as printed by `SELECT @@GLOBAL.gtid_executed`, e.g.
//     "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,4B2C...:1-3": positions compare by
//     their total transaction count (here 6 + 3 = 9);
//   - a PostgreSQL LSN, as printed by `SELECT pg_last_wal_replay_lsn()` on a
//     standby or `pg_current_wal_lsn()` on a primary, e.g. "16/B374D848";
//   - a MariaDB GTID list, as printed by `SELECT @@gtid_current_pos`, e.g.
//     "0-1-42" or "0-1-42,1-2-7": the sum of each domain's sequence number.
//
// Whitespace inside a position is ignored (mysql prints long GTID sets over several
// lines). The highest position wins; ties go to the lowest ordinal.
//
// # Logging
//
// The executor logs to stderr through logr (funcr). It never logs environment
// values, the commands or their output, which may hold secrets; only names, exit
// statuses and sizes.
package executor
