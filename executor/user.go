package executor

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// EnvTaskUser names the user tasks and hooks run as (spec.task.user). The
// agent normally starts the executor as that user already (ExecutorInfo's
// CommandInfo.user); an executor still running as another user (an agent
// with --switch_user=false, say) switches its children to it itself.
const EnvTaskUser = "CONVERGE_TASK_USER"

// userCredential is what a task or hook started with env runs as: nil when
// env names no user or the executor already runs as it. The groups are the
// user's, as the Mesos launcher sets them (launch.cpp: setgid, setgroups
// from os::getgrouplist, setuid).
func userCredential(env []string) (*syscall.Credential, error) {
	name, _ := lookupEnv(env, EnvTaskUser)
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up task user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("task user %q: non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
	}
	if int(uid) == os.Geteuid() {
		return nil, nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of task user %q: %w", name, err)
	}
	groups := make([]uint32, 0, len(ids))
	for _, s := range ids {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil {
			groups = append(groups, uint32(g))
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}
