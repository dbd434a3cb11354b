package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The DeepCopy functions follow the shape deepcopy-gen writes, by hand since
// the types are few. TestDeepCopyNoAliasing fails when a new field is missed.

// DeepCopyInto copies c into out; nothing is shared.
func (c *Cluster) DeepCopyInto(out *Cluster) {
	*out = *c
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	c.Spec.DeepCopyInto(&out.Spec)
	c.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of c that shares nothing with it.
func (c *Cluster) DeepCopy() *Cluster {
	if c == nil {
		return nil
	}
	out := new(Cluster)
	c.DeepCopyInto(out)
	return out
}

// DeepCopyObject makes Cluster a runtime.Object.
func (c *Cluster) DeepCopyObject() runtime.Object {
	if c := c.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies l into out; nothing is shared.
func (l *ClusterList) DeepCopyInto(out *ClusterList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]Cluster, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of l that shares nothing with it.
func (l *ClusterList) DeepCopy() *ClusterList {
	if l == nil {
		return nil
	}
	out := new(ClusterList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject makes ClusterList a runtime.Object.
func (l *ClusterList) DeepCopyObject() runtime.Object {
	if l := l.DeepCopy(); l != nil {
		return l
	}
	return nil
}

// DeepCopyInto copies s into out; nothing is shared.
func (s *ClusterSpec) DeepCopyInto(out *ClusterSpec) {
	*out = *s
	if s.Replicas != nil {
		v := *s.Replicas
		out.Replicas = &v
	}
	s.Task.DeepCopyInto(&out.Task)
	s.Placement.DeepCopyInto(&out.Placement)
	s.Election.DeepCopyInto(&out.Election)
	s.Update.DeepCopyInto(&out.Update)
	s.Restart.DeepCopyInto(&out.Restart)
}

// DeepCopy returns a copy of s that shares nothing with it.
func (s *ClusterSpec) DeepCopy() *ClusterSpec {
	if s == nil {
		return nil
	}
	out := new(ClusterSpec)
	s.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies t into out; nothing is shared.
func (t *TaskSpec) DeepCopyInto(out *TaskSpec) {
	*out = *t
	if t.Env != nil {
		out.Env = make(map[string]string, len(t.Env))
		for k, v := range t.Env {
			out.Env[k] = v
		}
	}
	if t.URIs != nil {
		out.URIs = make([]URI, len(t.URIs))
		copy(out.URIs, t.URIs)
	}
	t.Resources.DeepCopyInto(&out.Resources)
	if t.Executor != nil {
		out.Executor = new(ExecutorSpec)
		t.Executor.DeepCopyInto(out.Executor)
	}
	if t.KillGracePeriod != nil {
		d := *t.KillGracePeriod
		out.KillGracePeriod = &d
	}
	if t.Volumes != nil {
		out.Volumes = make([]Volume, len(t.Volumes))
		for i := range t.Volumes {
			out.Volumes[i] = t.Volumes[i]
			if t.Volumes[i].Size != nil {
				q := t.Volumes[i].Size.DeepCopy()
				out.Volumes[i].Size = &q
			}
		}
	}
	out.HealthCheck = t.HealthCheck.DeepCopy()
	out.ReadinessCheck = t.ReadinessCheck.DeepCopy()
}

// DeepCopy returns a copy of c that shares nothing with it (nil for nil).
func (c *Check) DeepCopy() *Check {
	if c == nil {
		return nil
	}
	out := *c
	if c.HTTP != nil {
		h := *c.HTTP
		out.HTTP = &h
	}
	if c.TCP != nil {
		t := *c.TCP
		out.TCP = &t
	}
	out.Delay = copyDuration(c.Delay)
	out.Interval = copyDuration(c.Interval)
	out.Timeout = copyDuration(c.Timeout)
	out.GracePeriod = copyDuration(c.GracePeriod)
	if c.ConsecutiveFailures != nil {
		v := *c.ConsecutiveFailures
		out.ConsecutiveFailures = &v
	}
	return &out
}

// DeepCopyInto copies r into out; nothing is shared.
func (r *Resources) DeepCopyInto(out *Resources) {
	*out = *r
	if r.CPUs != nil {
		q := r.CPUs.DeepCopy()
		out.CPUs = &q
	}
	if r.Mem != nil {
		q := r.Mem.DeepCopy()
		out.Mem = &q
	}
	if r.Disk != nil {
		q := r.Disk.DeepCopy()
		out.Disk = &q
	}
}

// DeepCopyInto copies e into out; nothing is shared.
func (e *ExecutorSpec) DeepCopyInto(out *ExecutorSpec) {
	*out = *e
	if e.URIs != nil {
		out.URIs = make([]URI, len(e.URIs))
		copy(out.URIs, e.URIs)
	}
}

// DeepCopyInto copies p into out; nothing is shared.
func (p *Placement) DeepCopyInto(out *Placement) {
	*out = *p
	if p.Constraints != nil {
		out.Constraints = make([]Constraint, len(p.Constraints))
		copy(out.Constraints, p.Constraints)
	}
	if p.ReplaceAfter != nil {
		d := *p.ReplaceAfter
		out.ReplaceAfter = &d
	}
}

// DeepCopyInto copies e into out; nothing is shared.
func (e *Election) DeepCopyInto(out *Election) {
	*out = *e
	if e.Timeout != nil {
		d := *e.Timeout
		out.Timeout = &d
	}
	if e.LeaseDuration != nil {
		d := *e.LeaseDuration
		out.LeaseDuration = &d
	}
	if e.MaximumLagOnFailover != nil {
		v := *e.MaximumLagOnFailover
		out.MaximumLagOnFailover = &v
	}
}

// DeepCopyInto copies u into out; nothing is shared.
func (u *Update) DeepCopyInto(out *Update) {
	*out = *u
	if u.MaxUnavailable != nil {
		v := *u.MaxUnavailable
		out.MaxUnavailable = &v
	}
	if u.MinReadySeconds != nil {
		v := *u.MinReadySeconds
		out.MinReadySeconds = &v
	}
	out.ProgressDeadline = copyDuration(u.ProgressDeadline)
}

// DeepCopyInto copies r into out; nothing is shared.
func (r *Restart) DeepCopyInto(out *Restart) {
	*out = *r
	out.Backoff = copyDuration(r.Backoff)
	if r.BackoffFactor != nil {
		v := *r.BackoffFactor
		out.BackoffFactor = &v
	}
	out.MaxBackoff = copyDuration(r.MaxBackoff)
	out.ResetAfter = copyDuration(r.ResetAfter)
}

func copyDuration(d *metav1.Duration) *metav1.Duration {
	if d == nil {
		return nil
	}
	v := *d
	return &v
}

// DeepCopyInto copies s into out; nothing is shared.
func (s *ClusterStatus) DeepCopyInto(out *ClusterStatus) {
	*out = *s
	if s.Master != nil {
		m := *s.Master
		out.Master = &m
	}
	if s.Tasks != nil {
		out.Tasks = make([]TaskStatus, len(s.Tasks))
		for i := range s.Tasks {
			s.Tasks[i].DeepCopyInto(&out.Tasks[i])
		}
	}
	if s.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(s.Conditions))
		for i := range s.Conditions {
			s.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
	if s.LastProgressTime != nil {
		out.LastProgressTime = s.LastProgressTime.DeepCopy()
	}
	if s.Switchover != nil {
		w := *s.Switchover
		if w.From != nil {
			f := *w.From
			w.From = &f
		}
		if w.To != nil {
			t := *w.To
			w.To = &t
		}
		out.Switchover = &w
	}
}

// DeepCopyInto copies t into out; nothing is shared.
func (t *TaskStatus) DeepCopyInto(out *TaskStatus) {
	*out = *t
	if t.Ports != nil {
		out.Ports = make([]int32, len(t.Ports))
		copy(out.Ports, t.Ports)
	}
	if t.Healthy != nil {
		v := *t.Healthy
		out.Healthy = &v
	}
}
