package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/store"
)

// Description is everything describe shows about one cluster.
type Description struct {
	Cluster   *v1alpha1.Cluster
	Events    []store.Event
	Endpoints *store.Endpoints
}

// Describe writes a human-readable report, kubectl describe's layout. Env
// values are never printed (they may hold secrets): only their names.
func Describe(w io.Writer, d Description, now time.Time) error {
	c := d.Cluster
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p := func(indent int, key string, val any) {
		fmt.Fprintf(tw, "%s%s:\t%v\n", strings.Repeat("  ", indent), key, val)
	}
	section := func(indent int, key string) {
		fmt.Fprintf(tw, "%s%s:\n", strings.Repeat("  ", indent), key)
	}
	p(0, "Name", c.Name)
	p(0, "Namespace", c.Namespace)
	p(0, "Labels", kv(c.Labels))
	p(0, "Annotations", kv(c.Annotations))
	p(0, "UID", orNone(string(c.UID)))
	p(0, "Generation", c.Generation)
	p(0, "Resource Version", orNone(c.ResourceVersion))
	if !c.CreationTimestamp.IsZero() {
		p(0, "Created", fmt.Sprintf("%s (%s ago)", c.CreationTimestamp.UTC().Format(time.RFC3339), Age(c.CreationTimestamp.Time, now)))
	}
	if c.DeletionTimestamp != nil {
		p(0, "Deleting since", fmt.Sprintf("%s (waiting for finalizers: %s)", c.DeletionTimestamp.UTC().Format(time.RFC3339), strings.Join(c.Finalizers, ", ")))
	} else if len(c.Finalizers) > 0 {
		p(0, "Finalizers", strings.Join(c.Finalizers, ", "))
	}

	s := c.Spec
	section(0, "Spec")
	p(1, "Replicas", Desired(c))
	p(1, "Role", s.Role)
	section(1, "Task")
	p(2, "Command", orNone(s.Task.Command))
	p(2, "Env", envNames(s.Task.Env))
	p(2, "URIs", uris(s.Task.URIs))
	p(2, "Resources", resources(s.Task.Resources))
	if e := s.Task.Executor; e != nil {
		p(2, "Executor", e.Command)
		if len(e.URIs) > 0 {
			p(2, "Executor URIs", uris(e.URIs))
		}
	}
	section(1, "Placement")
	p(2, "Spread", orNone(s.Placement.Spread))
	var cons []string
	for _, k := range s.Placement.Constraints {
		cons = append(cons, strings.TrimSpace(k.Attribute+" "+k.Operator+" "+k.Value))
	}
	p(2, "Constraints", orNone(strings.Join(cons, "; ")))
	section(1, "Election")
	p(2, "Strategy", s.Election.Strategy)
	if s.Election.Timeout != nil {
		p(2, "Timeout", s.Election.Timeout.Duration)
	}
	if s.Election.PositionCommand != "" {
		p(2, "Position Command", s.Election.PositionCommand)
	}
	if s.Election.PromoteCommand != "" {
		p(2, "Promote Command", s.Election.PromoteCommand)
	}
	if u := s.Update; u.MaxUnavailable != nil || u.MinReadySeconds != nil || u.ProgressDeadline != nil {
		section(1, "Update")
		if u.MaxUnavailable != nil {
			p(2, "Max Unavailable", *u.MaxUnavailable)
		}
		if u.MinReadySeconds != nil {
			p(2, "Min Ready Seconds", *u.MinReadySeconds)
		}
		if u.ProgressDeadline != nil {
			p(2, "Progress Deadline", u.ProgressDeadline.Duration)
		}
	}
	if r := s.Restart; r.Backoff != nil && r.BackoffFactor != nil && r.MaxBackoff != nil && r.ResetAfter != nil {
		section(1, "Restart")
		p(2, "Back-off", fmt.Sprintf("%s, x%g per failure in a row, at most %s; reset after %s running",
			r.Backoff.Duration, *r.BackoffFactor, r.MaxBackoff.Duration, r.ResetAfter.Duration))
	}

	st := c.Status
	section(0, "Status")
	p(1, "Observed Generation", st.ObservedGeneration)
	p(1, "Replicas", fmt.Sprintf("%d desired, %d current, %d ready, %d updated", Desired(c), st.Replicas, st.ReadyReplicas, st.UpdatedReplicas))
	p(1, "Ready", ReadyColumn(c))
	if t := st.LastProgressTime; t != nil {
		p(1, "Last Progress", t.UTC().Format(time.RFC3339))
	}
	if m := st.Master; m != nil {
		p(1, "Master", fmt.Sprintf("%s (ordinal %d, task %s)", MasterAddress(m), m.Ordinal, orNone(m.TaskID)))
		p(1, "Epoch", m.Epoch)
	} else {
		p(1, "Master", none)
	}
	if e := d.Endpoints; e != nil {
		var members []string
		for _, m := range e.Members {
			members = append(members, endpointAddress(m))
		}
		p(1, "Endpoints", fmt.Sprintf("epoch %d: %s", e.Epoch, orNone(strings.Join(members, ", "))))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Tasks:")
	if len(st.Tasks) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		tasks := append([]v1alpha1.TaskStatus(nil), st.Tasks...)
		sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].Ordinal < tasks[j].Ordinal })
		tt := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tt, "  ORDINAL\tSTATE\tHOST\tPORTS\tID\tMESSAGE")
		for _, t := range tasks {
			var ports []string
			for _, pt := range t.Ports {
				ports = append(ports, strconv.Itoa(int(pt)))
			}
			fmt.Fprintf(tt, "  %d\t%s\t%s\t%s\t%s\t%s\n", t.Ordinal, t.State, orNone(t.Hostname),
				orNone(strings.Join(ports, ",")), t.ID, oneLine(t.Message))
		}
		if err := tt.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "Conditions:")
	if len(st.Conditions) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		ct := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(ct, "  TYPE\tSTATUS\tREASON\tGENERATION\tSINCE\tMESSAGE")
		for _, k := range st.Conditions {
			fmt.Fprintf(ct, "  %s\t%s\t%s\t%d\t%s\t%s\n", k.Type, k.Status, orNone(k.Reason),
				k.ObservedGeneration, Age(k.LastTransitionTime.Time, now), oneLine(k.Message))
		}
		if err := ct.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "Events:")
	if len(d.Events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	et := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(et, "  AGE\tTYPE\tREASON\tMESSAGE")
	for _, e := range d.Events {
		fmt.Fprintf(et, "  %s\t%s\t%s\t%s\n", Age(e.Time, now), e.Type, e.Reason, oneLine(e.Message))
	}
	return et.Flush()
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func kv(m map[string]string) string {
	if len(m) == 0 {
		return none
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}

// envNames lists the variable names only: values may be secrets.
func envNames(env map[string]string) string {
	if len(env) == 0 {
		return none
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ") + " (values not shown)"
}

func uris(us []v1alpha1.URI) string {
	if len(us) == 0 {
		return none
	}
	var parts []string
	for _, u := range us {
		var flags []string
		if u.Executable {
			flags = append(flags, "executable")
		}
		if u.Extract {
			flags = append(flags, "extract")
		}
		if u.Cache {
			flags = append(flags, "cache")
		}
		s := u.Value
		if len(flags) > 0 {
			s += " (" + strings.Join(flags, ", ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func resources(r v1alpha1.Resources) string {
	q := func(name string, v *resource.Quantity) string {
		if v == nil {
			return ""
		}
		return name + "=" + v.String()
	}
	var parts []string
	for _, s := range []string{q("cpus", r.CPUs), q("mem", r.Mem), q("disk", r.Disk)} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if r.Ports > 0 {
		parts = append(parts, fmt.Sprintf("ports=%d", r.Ports))
	}
	return orNone(strings.Join(parts, " "))
}

func endpointAddress(e store.Endpoint) string {
	if e.Port != 0 {
		return fmt.Sprintf("%s:%d", e.Hostname, e.Port)
	}
	return e.Hostname
}
