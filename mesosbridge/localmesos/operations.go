package localmesos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// applyOperation runs a RESERVE, UNRESERVE, CREATE or DESTROY of an ACCEPT on
// agent a out of remaining (the offered resources not yet used by earlier
// operations), as Master::_accept does: validate, convert remaining, apply the
// conversion to the agent's checkpointed resources. An invalid operation is
// dropped (m.mu held).
func (m *Mesos) applyOperation(fw *framework, a *agent, role string, op mesos.Offer_Operation, remaining *res) {
	consumed, converted, err := m.conversion(fw, a, role, op)
	if err == nil && !remaining.contains(consumed) {
		err = fmt.Errorf("Invalid %s Operation: %s does not contain %s", op.Type, describe(*remaining), describe(consumed))
	}
	if err != nil {
		m.dropOperation(fw, op, err.Error()+"; on agent "+a.id)
		return
	}
	if op.Type == mesos.Offer_Operation_DESTROY {
		// Offers elsewhere that hold a destroyed volume are rescinded.
		for _, o := range m.offers {
			if o.agent == a && o.res.contains(consumed) {
				m.rescind(o, true)
			}
		}
	}
	remaining.sub(consumed)
	remaining.add(converted)
	a.total.sub(consumed)
	a.total.add(converted)
	m.log.Info("applied offer operation", "type", op.Type.String(), "framework", fw.id, "agent", a.id, "consumed", describe(consumed), "converted", describe(converted))
	if !m.opts.Simulate {
		m.syncVolumes(a, consumed, converted)
	}
}

// conversion validates op (validation.cpp, operation::validate) and returns
// what it consumes and what it turns that into (getResourceConversions).
func (m *Mesos) conversion(fw *framework, a *agent, role string, op mesos.Offer_Operation) (consumed, converted res, err error) {
	switch op.Type {
	case mesos.Offer_Operation_RESERVE:
		if op.Reserve == nil {
			return res{}, res{}, errors.New("Expecting 'reserve_resources' to be present")
		}
		converted, err = opResources(op.Reserve.Resources, role)
		if err == nil {
			err = validateReserve(fw, role, converted, op.Reserve.Resources)
		}
		return converted.flatUnreserved(), converted, err
	case mesos.Offer_Operation_UNRESERVE:
		if op.Unreserve == nil {
			return res{}, res{}, errors.New("Expecting 'unreserve_resources' to be present")
		}
		consumed, err = opResources(op.Unreserve.Resources, role)
		if err == nil {
			err = singleAllocation(op.Unreserve.Resources, role)
		}
		if err == nil {
			err = validateUnreserve(consumed)
		}
		return consumed, consumed.flatUnreserved(), err
	case mesos.Offer_Operation_CREATE:
		if op.Create == nil {
			return res{}, res{}, errors.New("Expecting 'create_volumes' to be present")
		}
		converted, err = opResources(op.Create.Volumes, role)
		if err == nil {
			err = singleAllocation(op.Create.Volumes, role)
		}
		if err == nil {
			err = validateCreate(fw, a, converted, op.Create.Volumes)
		}
		return converted.withoutVolumes(), converted, err
	case mesos.Offer_Operation_DESTROY:
		if op.Destroy == nil {
			return res{}, res{}, errors.New("Expecting 'destroy_volumes' to be present")
		}
		consumed, err = opResources(op.Destroy.Volumes, role)
		if err == nil {
			err = singleAllocation(op.Destroy.Volumes, role)
		}
		if err == nil {
			err = validateDestroy(a, consumed)
		}
		return consumed, consumed.withoutVolumes(), err
	}
	return res{}, res{}, fmt.Errorf("unsupported operation %s", op.Type)
}

// opResources parses an operation's resources; allocation info, where set,
// must be the offer's role (Master::accept injects the offer's where unset).
func opResources(rs []mesos.Resource, role string) (res, error) {
	if len(rs) == 0 {
		return res{}, errors.New("Invalid resources: no resources")
	}
	out, err := fromProto(rs)
	if err != nil {
		return res{}, fmt.Errorf("Operation attempted with invalid resources: %w", err)
	}
	return out, nil
}

// singleAllocation is validateAllocatedToSingleRole with the offer's
// allocation injected where the operation left it unset: operations use
// resources allocated to the offer's role only.
func singleAllocation(rs []mesos.Resource, role string) error {
	for _, r := range rs {
		if r.AllocationInfo != nil && r.AllocationInfo.GetRole() != role {
			return fmt.Errorf("Invalid resources: The resources have multiple allocation roles ('%s' and '%s') but only one allocation role is allowed", r.AllocationInfo.GetRole(), role)
		}
	}
	return nil
}

func validateReserve(fw *framework, role string, r res, rs []mesos.Resource) error {
	if r.rsv == nil || !r.unreserved().empty() {
		return fmt.Errorf("Resource %s is not dynamically reserved", describe(r.unreserved()))
	}
	principal := fw.info.GetPrincipal()
	for _, x := range rs {
		k, _ := resvOf(&x)
		if k.volID != "" {
			return fmt.Errorf("Resource %s is not dynamically reserved: it is a persistent volume", x.Name)
		}
		if principal != "" && k.principal == "" {
			return fmt.Errorf("A reserve operation was attempted by principal '%s', but there is a reserved resource in the request with no principal set", principal)
		}
		if principal != "" && k.principal != principal {
			return fmt.Errorf("A reserve operation was attempted by authenticated principal '%s', which does not match a reserved resource in the request with principal '%s'", principal, k.principal)
		}
		alloc := role // Master::accept injects the offer's allocation info
		if x.AllocationInfo != nil {
			alloc = x.AllocationInfo.GetRole()
		}
		if alloc != k.role {
			return fmt.Errorf("A reserve operation was attempted for a resource with role '%s', but the resource was allocated to role '%s'", k.role, alloc)
		}
		if !hasRole(fw, alloc) {
			return fmt.Errorf("A reserve operation was attempted for a resource allocated to role '%s', but the framework only has roles '{ %s }'", alloc, strings.Join(fw.roles, ", "))
		}
	}
	return nil
}

func validateUnreserve(r res) error {
	if r.rsv == nil || !r.unreserved().empty() {
		return fmt.Errorf("Resource %s is not dynamically reserved", describe(r.unreserved()))
	}
	for k := range r.rsv {
		if k.volID != "" {
			return fmt.Errorf("A dynamically reserved persistent volume %s cannot be unreserved directly. Please destroy the persistent volume first then unreserve the resource", k.volID)
		}
	}
	return nil
}

func validateCreate(fw *framework, a *agent, r res, rs []mesos.Resource) error {
	if err := allVolumes(r); err != nil {
		return err
	}
	principal := fw.info.GetPrincipal()
	seen := map[string]bool{}
	for k := range a.total.rsv {
		if k.volID != "" {
			seen[k.role+"/"+k.volID] = true
		}
	}
	for _, x := range rs {
		k, _ := resvOf(&x)
		if seen[k.role+"/"+k.volID] {
			return fmt.Errorf("Persistence ID '%s' is not unique", k.volID)
		}
		seen[k.role+"/"+k.volID] = true
		if principal != "" && k.volOwner == "" {
			return fmt.Errorf("Create volume operation attempted by principal '%s', but there is a volume in the operation with no principal set in 'disk.persistence'", principal)
		}
		if principal != "" && k.volOwner != principal {
			return fmt.Errorf("Create volume operation attempted by authenticated principal '%s', which does not match a volume in the operation with principal '%s' set in 'disk.persistence'", principal, k.volOwner)
		}
	}
	return nil
}

func validateDestroy(a *agent, r res) error {
	if err := allVolumes(r); err != nil {
		return err
	}
	for _, k := range r.volumes() {
		one := res{rsv: map[resv]res{k: r.rsv[k]}}
		if !a.total.contains(one) {
			return errors.New("Persistent volumes not found")
		}
		if _, used := a.used.rsv[k]; used {
			return errors.New("Persistent volumes in use")
		}
	}
	return nil
}

// allVolumes is validation.cpp's validatePersistentVolume: every resource of
// a CREATE or DESTROY is a persistent volume.
func allVolumes(r res) error {
	if !r.unreserved().empty() {
		return errors.New("Not a persistent volume: 'persistence' is not set in DiskInfo")
	}
	for k, v := range r.rsv {
		if k.volID == "" {
			return errors.New("Not a persistent volume: 'persistence' is not set in DiskInfo")
		}
		if v.cpus > epsilon || v.mem > epsilon || len(v.ports) > 0 || len(v.other) > 0 {
			return errors.New("Not a persistent volume: only disk resources have DiskInfo")
		}
	}
	return nil
}

func hasRole(fw *framework, role string) bool {
	for _, r := range fw.roles {
		if r == role {
			return true
		}
	}
	return false
}

// flatUnreserved is r with every reservation dropped: what a RESERVE takes.
func (r res) flatUnreserved() res { return r.flat() }

// withoutVolumes is r with each persistent volume turned back into the plain
// reserved disk it was created from.
func (r res) withoutVolumes() res {
	out := r.clone()
	for k, v := range r.rsv {
		if k.volID == "" {
			continue
		}
		delete(out.rsv, k)
		plain := k
		plain.volID, plain.volOwner, plain.volPath = "", "", ""
		x := out.rsv[plain]
		x.add(v)
		out.rsv[plain] = x
	}
	return out
}

// dropOperation is Master::drop: logged; a framework that gave the operation
// an id gets OPERATION_ERROR.
func (m *Mesos) dropOperation(fw *framework, op mesos.Offer_Operation, msg string) {
	m.log.Info("dropping offer operation", "type", op.Type.String(), "framework", fw.id, "reason", msg)
	if op.ID == nil || fw.stream == nil {
		return
	}
	st := mesos.OperationStatus{State: mesos.OPERATION_ERROR, OperationID: op.ID, Message: &msg}
	fw.stream.send(&scheduler.Event{Type: scheduler.Event_UPDATE_OPERATION_STATUS, UpdateOperationStatus: &scheduler.Event_UpdateOperationStatus{Status: st}})
}

// volumePath is where agent a keeps a persistent volume, as the agent's
// paths::getPersistentVolumePath (<work_dir>/volumes/roles/<role>/<id>).
func (m *Mesos) volumePath(a *agent, k resv) string {
	return filepath.Join(m.workDir, "agents", a.id, "volumes", "roles", k.role, k.volID)
}

// syncVolumes creates the directories of created volumes and deletes those of
// destroyed ones, as the agent does when it checkpoints its resources
// (Slave::syncCheckpointedResources).
func (m *Mesos) syncVolumes(a *agent, consumed, converted res) {
	for _, k := range converted.volumes() {
		if err := os.MkdirAll(m.volumePath(a, k), 0o755); err != nil {
			m.log.Error(err, "create persistent volume", "agent", a.id, "volume", k.volID)
		}
	}
	for _, k := range consumed.volumes() {
		if err := os.RemoveAll(m.volumePath(a, k)); err != nil {
			m.log.Error(err, "delete persistent volume", "agent", a.id, "volume", k.volID)
		}
	}
}

// linkVolumes makes each persistent volume of r appear at its container path
// in sandbox dir, as the agent's posix filesystem isolator does (a symlink;
// the linux one bind-mounts). An empty volume is given to the task's user,
// as the isolators chown a volume no other container uses.
func (m *Mesos) linkVolumes(a *agent, dir string, r res, ra *runAs) error {
	for _, k := range r.volumes() {
		p := filepath.Clean(k.volPath)
		if filepath.IsAbs(p) || p == "." || strings.HasPrefix(p, "../") || p == ".." {
			return fmt.Errorf("persistent volume %s: container path %q must be relative and inside the sandbox", k.volID, k.volPath)
		}
		vol := m.volumePath(a, k)
		link := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return fmt.Errorf("persistent volume %s: %w", k.volID, err)
		}
		if cur, err := os.Readlink(link); err == nil && cur == vol {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(vol, link); err != nil {
			return fmt.Errorf("mount persistent volume %s at %s: %w", k.volID, k.volPath, err)
		}
		if ents, err := os.ReadDir(vol); err == nil && len(ents) == 0 && ra != nil {
			if err := os.Chown(vol, ra.uid, ra.gid); err != nil {
				return fmt.Errorf("persistent volume %s: chown to %q: %w", k.volID, ra.name, err)
			}
		}
	}
	return nil
}

// linkExecutorVolumes mounts the persistent volumes of a task of a custom
// executor in the executor's sandbox, where the agent mounts them for a task
// it hands to a running executor's container.
func (m *Mesos) linkExecutorVolumes(e *executor, t *task) error {
	if m.opts.Simulate || len(t.res.volumes()) == 0 {
		return nil
	}
	ra, err := lookupRunAs(e.info.Command.GetUser())
	if err != nil {
		return err
	}
	return m.linkVolumes(e.agent, m.sandboxDir(e.agent, e.fw.id, e.id), t.res, ra)
}
