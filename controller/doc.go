// Package controller is converge's level-triggered reconcile loop: it makes every
// Cluster in the store true on Mesos (docs/design.md sections 2 to 4).
//
// # Shape
//
// A functional core and an imperative shell. The core is pure: Plan (plan.go)
// turns one cluster's spec, its task ledger, its election record and the time into
// decisions (launch needs, kills, election steps, status, events), and MatchOffers
// (match.go) places needs on offers. The shell (controller.go) feeds a client-go
// rate-limited work queue keyed by "namespace/name" from store.Watch and from Mesos
// events mapped to their cluster, runs workers, persists every decision in one etcd
// transaction (store.Batch) and only then acts on Mesos: ledger records are written
// before the ACCEPT that launches their tasks, status updates before they are
// acknowledged, an election epoch before position queries are sent, the winner
// before endpoints are published and promote is sent.
//
// # Decisions worth knowing
//
//   - Level-triggered: an event only names the cluster to look at (task ids parse
//     back to their cluster); each reconcile reads the caches and moves one safe
//     step. Work per event is one cluster's; offers are matched only against the
//     "needy" clusters (those with members to launch), planned afresh from the
//     ledger at each offer round. No offers needed: Suppress; new demand: Revive.
//   - One writer goroutine owns the ledger, election, endpoints and event keys:
//     it applies each change to the latest cached record (a kill decided on a
//     snapshot never overwrites a status update that arrived meanwhile) and
//     packs whatever is queued into transactions within etcd's limits (128
//     operations, 1.5 MiB by default; group commit). An op is atomic unless it
//     is larger than a transaction; then its task writes and events are split
//     and its election and endpoints stay together (txn.go). Caches change only
//     after a commit succeeds. A launch round checkpoints offer by offer.
//   - Until EventReconciled after a (re)subscribe no missing member is launched,
//     no member is written off as unreachable, no election starts. Then one
//     implicit reconciliation lists every task Mesos runs for the framework:
//     converge task ids the ledger does not know (orphans) are killed.
//   - A status update is written, then acknowledged. Duplicates (same uuid),
//     out-of-order (older timestamp) and post-terminal updates change nothing and
//     are acknowledged. STARTING after STAGING is acknowledged without a write:
//     the planner treats the two alike and reconciliation restores it.
//   - Election record and endpoints are written in one transaction, so the
//     published master is never one that is not persisted; promote is sent after
//     it and re-sent (each second) until the executor answers "promoted".
//   - Status is written only when it changes; progress (not Ready) and member-list
//     changes are spaced by 1s per cluster so members coming up together cost
//     one write; becoming Ready and master changes are written at once.
//   - A finished member frees its ordinal; the replacement takes the lowest
//     free ordinal. Finished means a Mesos terminal state (FAILED, LOST, GONE,
//     GONE_BY_OPERATOR, DROPPED, ERROR, KILLED, FINISHED) or TASK_UNKNOWN, which
//     the master answers to a reconciliation (or to a KILL) only when it knows
//     neither the task nor its agent, e.g. every task after `converge dev`
//     restarts its local Mesos. A finished task is not killed again (the
//     bridge stops retrying a KILL answered TASK_UNKNOWN), not reconciled
//     again, not in the status, and never master; should Mesos ever report it
//     alive again, it is killed at once as a ghost.
//   - Ordinals are identities (a database's server id), so an ordinal never has
//     two members that may be alive, and no more than spec.replicas run: the
//     StatefulSet rule, chosen over Marathon's unreachableStrategy (launch a
//     replacement after inactiveAfterSeconds, kill whichever comes back). An
//     UNREACHABLE member may still run and serve clients behind a partition,
//     and Mesos tells nobody when its agent re-registers; with a replacement
//     launched, the two would run side by side until a kill got through (the
//     issue 11 §4 incident: 4 members of 3, two of ordinal 1 on one host). So
//     an UNREACHABLE member keeps its ordinal until Mesos reports it finished.
//     Within Config.UnreachableTimeout (Marathon's inactiveAfterSeconds) it
//     still counts and a master stays master: a short partition changes
//     nothing. Past it the member is written off: not ready, not counted, not
//     master (the reachable members elect another), not published, and its
//     kill is decided: the bridge re-sends the KILL (backoff up to
//     KillMaxRetry) until one reaches the agent once it is back, and an update
//     showing the member back re-sends it at once. Only once the member is
//     dead is its ordinal relaunched. The cost is
//     StatefulSet's: while an agent stays unreachable its members are not
//     replaced; an operator who knows the machine is dead marks the agent gone
//     (Mesos's MARK_AGENT_GONE: TASK_GONE_BY_OPERATOR), which frees them.
//   - readyReplicas counts live members RUNNING for spec.update.minReadySeconds
//     (TaskRecord.RunningAt: the first RUNNING, not later updates), healthy if
//     launched with a health check, and with their readiness check passing (if
//     launched with one) since minReadySeconds (TaskRecord.CheckPassingSince).
//     The executor runs both checks (TaskInfo.health_check and check) and kills
//     a member that fails its health check; its ordinal is relaunched as any
//     member that failed by itself. Under an
//     executor, RUNNING is the executor's own report (its proof of life); an
//     agent that stops answering turns its tasks UNREACHABLE. Elections and
//     endpoints take members as soon as they run.
//   - A member that fails by itself is relaunched after spec.restart's
//     back-off (restart.go). The count of failures in a row is in each launched
//     task's record (TaskRecord.Restarts), so it survives controller restarts;
//     the record a back-off is computed from is kept past the ledger's
//     retention until the relaunch. Meanwhile Ready says CrashLoopBackOff.
//   - No progress (status.lastProgressTime) for spec.update.progressDeadline:
//     Stalled/ProgressDeadlineExceeded and Reconciling False (kstatus Failed).
//   - A spec.role that is not one of the framework's roles (Config.Roles) can
//     get no offer: the cluster is Stalled/NoOfferFits saying so.
//
// # Task ids
//
// A task id is "<namespace>.<cluster>.<ordinal>.<suffix>" where suffix is 8 random
// hex characters (32 bits: a repeat within one ordinal is unlikely, not
// impossible; see NewTaskID), readable, and parseable back to its cluster
// (namespaces and cluster names are DNS-1123 labels, so they hold no dot). The task
// name is "<namespace>/<cluster>-<ordinal>". Labels: converge.io/namespace,
// converge.io/cluster, converge.io/ordinal.
//
// # Environment contract with executors (converge executor)
//
// Every task gets, besides Mesos's own MESOS_* variables and the spec's
// task.env:
//
//	CONVERGE_NAMESPACE   the cluster's namespace
//	CONVERGE_CLUSTER     the cluster's name
//	CONVERGE_ORDINAL     the member's stable ordinal (0..replicas-1)
//	CONVERGE_TASK_ID     the Mesos task id
//	PORT0..PORTn         the ports taken from the offer, in order (also PORTS, comma-separated)
//
// Without an executor (strategy none or ordinal, no spec.task.executor) the task is
// a plain command task: TaskInfo.command = {shell: true, value: task.command,
// uris: task.uris, environment: the variables above}.
//
// With an executor, which is `converge executor` when election.strategy is
// "position" and the spec names none (command Config.ExecutorCommand, default
// "./converge executor", fetched from Config.ExecutorURI as an executable), or the
// spec's task.executor otherwise:
//
//   - ExecutorInfo.executor_id == the task id (one executor per task), name
//     "converge executor" (or "custom executor"), type CUSTOM.
//
//   - ExecutorInfo.command = {shell: true, value: the executor command,
//     uris: the executor's URI(s) followed by task.uris, environment: the variables
//     above plus:}
//
//     CONVERGE_TASK_COMMAND      task.command: the executor runs it with `sh -c` in the sandbox
//     CONVERGE_POSITION_COMMAND  election.positionCommand ("" when not set)
//     CONVERGE_PROMOTE_COMMAND   election.promoteCommand ("" when not set)
//     CONVERGE_ELECTION_STRATEGY election.strategy
//     CONVERGE_TASK_USER         task.user, when set (for an executor not run as it)
//
//   - task.user is ExecutorInfo.command.user (the agent runs the executor, so
//     its tasks and hooks, as that user); task.killGracePeriod is the
//     TaskInfo's kill_policy and, plus 2s, ExecutorInfo.shutdown_grace_period.
//     Without an executor they are the task's CommandInfo.user and kill_policy.
//
//   - TaskInfo carries no CommandInfo (Mesos forbids both); the executor reads the
//     command from CONVERGE_TASK_COMMAND. The task's own environment (the task
//     command and both hooks) is the executor's environment; hooks additionally get
//     CONVERGE_EPOCH, set by the executor.
//
// Election messages (package election, JSON framework messages) go from the
// controller to the executor with agent id from the ledger and executor id == task
// id: position-query{epoch, taskId} is answered by position{epoch, taskId,
// position}; promote{epoch, taskId} is answered by promoted{epoch, taskId, error}.
// demote{epoch, taskId} (a handover, handover.go) is answered by
// demoted{epoch, taskId, error}. The controller re-sends queries, promote and
// demote until answered; executors must answer duplicates idempotently (run
// promoteCommand, and demoteCommand, once per epoch).
//
// Env values may hold secrets: the controller never logs them, nor puts them in
// events or status.
package controller
