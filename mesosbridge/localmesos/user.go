package localmesos

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// runAs is the OS user an agent runs an executor (and so its tasks) as: the
// user of its CommandInfo (Mesos CommandInfo.user). The framework's user is
// not switched to here: localmesos runs tasks as itself unless asked.
type runAs struct {
	name     string
	uid, gid int
	// cred is nil when no switch is needed: the user is the agent's own
	// effective user (launch.cpp: "No need to change user/groups if the
	// specified user is the same as the effective user of the current
	// process").
	cred *syscall.Credential
}

// lookupRunAs resolves name ("" is no user: nil, nil) as the Mesos launcher
// does (src/slave/containerizer/mesos/launch.cpp): its uid, primary gid and
// supplementary groups (os::getgrouplist).
func lookupRunAs(name string) (*runAs, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("get user information for %q: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
	}
	r := &runAs{name: name, uid: uid, gid: gid}
	if uid == os.Geteuid() {
		return r, nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("get the supplementary gids of user %q: %w", name, err)
	}
	groups := make([]uint32, 0, len(ids))
	for _, s := range ids {
		g, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			continue
		}
		groups = append(groups, uint32(g))
	}
	r.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	return r, nil
}

// credential is what startProcess runs the process with (nil: as we are).
func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return r.cred
}

// chownSandbox gives the user the sandbox and everything fetched into it, as
// the agent chowns the sandbox it creates (paths.cpp,
// createSandboxDirectory: os::chown(user, directory), recursive) and the
// fetcher, running as the user, leaves its files the user's.
func (r *runAs) chownSandbox(dir string) error {
	if r == nil {
		return nil
	}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, r.uid, r.gid)
	})
	if err != nil {
		return fmt.Errorf("chown sandbox to %q: %w", r.name, err)
	}
	return nil
}

// runAsOrDrop resolves the user the executor of t runs as. A user the agent
// cannot resolve fails the launch as Mesos's does: Framework::addExecutor
// cannot create the executor directory (paths.cpp createSandboxDirectory:
// "Failed to chown directory to '<user>'"), and Slave::_run sends
// TASK_DROPPED (TASK_LOST to frameworks that are not partition-aware) with
// REASON_EXECUTOR_TERMINATED from the agent (slave.cpp,
// sendTaskDroppedUpdate). ok is false when t was dropped.
func (m *Mesos) runAsOrDrop(t *task, name string) (r *runAs, ok bool) {
	r, err := lookupRunAs(name)
	if err == nil {
		return r, true
	}
	dir := m.sandboxDir(t.agent, t.fw.id, t.exec.id)
	msg := fmt.Sprintf("Failed to create executor directory '%s': Failed to chown directory to '%s': %v", dir, name, err)
	m.log.Info("task dropped: its user cannot be resolved", "task", t.id, "user", name, "error", err.Error())
	reason := mesos.REASON_EXECUTOR_TERMINATED
	m.agentStatus(t, mesos.TASK_DROPPED, &reason, msg, mesos.SOURCE_AGENT)
	return nil, false
}
