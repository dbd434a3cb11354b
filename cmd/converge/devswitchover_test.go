package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevSwitchover walks the README's switchover in `converge dev` (its
// own binary as `converge executor`, as a new user runs it): a position
// election elects ordinal 0, `converge switchover --to 1 --wait` demotes it
// (demoteCommand with CONVERGE_DEMOTE_REASON=switchover), promotes ordinal 1,
// and the old master stays, told to follow the new one.
func TestDevSwitchover(t *testing.T) {
	marks := t.TempDir()
	_, _, _, _, e := startDevProcess(t)
	hook := func(what string) string {
		return `"echo ` + what + ` >> ` + marks + `/$CONVERGE_ORDINAL"`
	}
	m := `apiVersion: converge.io/v1alpha1
kind: Cluster
metadata:
  name: sw
spec:
  replicas: 2
  task:
    command: "while :; do sleep 1; done"
    resources: {cpus: 0.1, mem: 32Mi}
  election:
    strategy: position
    timeout: 5s
    positionCommand: "echo 1"
    promoteCommand: ` + hook("promoted") + `
    followCommand: ` + hook("follows-$CONVERGE_MASTER_HOST") + `
    demoteCommand: ` + hook("demoted-$CONVERGE_DEMOTE_REASON") + `
  update: {minReadySeconds: 0}
`
	expect(t, e.run("", "apply", "-f", e.file("sw.yaml", m), "--wait", "--timeout", "60s"), 0, "cluster/sw ready")
	// Ties go to the lowest ordinal; the switchover waits for ordinal 1 to follow.
	waitUntil(t, 60*time.Second, "ordinal 0 promoted, ordinal 1 following it", func() bool {
		return strings.Contains(readMark(marks, "0"), "promoted") && strings.Contains(readMark(marks, "1"), "follows")
	})
	before := e.run("", "get", "cluster", "sw", "-o", "jsonpath={.status.master.taskId}")

	expect(t, e.run("", "switchover", "cluster/sw", "--to", "1", "--wait", "--timeout", "60s"), 0,
		"cluster/sw switchover requested: master ordinal 0 -> ordinal 1",
		"cluster/sw switched over: master ordinal 0 -> ordinal 1 in epoch")
	expect(t, e.run("", "get", "cluster", "sw", "-o", "jsonpath={.status.master.ordinal}"), 0, "1")
	if got := readMark(marks, "0"); !strings.Contains(got, "demoted-switchover") {
		t.Fatalf("ordinal 0's demoteCommand did not run for the switchover; its hooks: %q", got)
	}
	waitUntil(t, 30*time.Second, "the old master to follow the new one", func() bool {
		return strings.Count(readMark(marks, "0"), "follows") >= 1
	})
	// The old master is kept (a switchover stops no member).
	expect(t, e.run("", "get", "cluster", "sw", "-o", "jsonpath={.status.tasks[*].id}"), 0, strings.TrimSpace(before.out))
}

// readMark is what a member's hooks wrote.
func readMark(dir, ordinal string) string {
	b, _ := os.ReadFile(filepath.Join(dir, ordinal))
	return string(b)
}
