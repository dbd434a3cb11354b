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
	f := fields{tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	describeMeta(f, d.Cluster, now)
	describeSpec(f, d.Cluster)
	describeStatus(f, d.Cluster, d.Endpoints)
	if err := f.tw.Flush(); err != nil {
		return err
	}
	st := d.Cluster.Status
	tasks := append([]v1alpha1.TaskStatus(nil), st.Tasks...)
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].Ordinal < tasks[j].Ordinal })
	err := table(w, "Tasks", "ORDINAL\tSTATE\tHOST\tPORTS\tID\tMESSAGE", len(tasks), func(tw io.Writer, i int) {
		t := tasks[i]
		var ports []string
		for _, pt := range t.Ports {
			ports = append(ports, strconv.Itoa(int(pt)))
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", t.Ordinal, t.State, orNone(t.Hostname),
			orNone(strings.Join(ports, ",")), t.ID, oneLine(t.Message))
	})
	if err != nil {
		return err
	}
	err = table(w, "Conditions", "TYPE\tSTATUS\tREASON\tGENERATION\tSINCE\tMESSAGE", len(st.Conditions), func(tw io.Writer, i int) {
		k := st.Conditions[i]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", k.Type, k.Status, orNone(k.Reason),
			k.ObservedGeneration, Age(k.LastTransitionTime.Time, now), oneLine(k.Message))
	})
	if err != nil {
		return err
	}
	return table(w, "Events", "AGE\tTYPE\tREASON\tMESSAGE", len(d.Events), func(tw io.Writer, i int) {
		e := d.Events[i]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", Age(e.Time, now), e.Type, e.Reason, oneLine(e.Message))
	})
}

// fields writes describe's "Key:  value" lines, values aligned, two spaces
// of indent a level.
type fields struct{ tw *tabwriter.Writer }

func (f fields) p(indent int, key string, val any) {
	fmt.Fprintf(f.tw, "%s%s:\t%v\n", strings.Repeat("  ", indent), key, val)
}

// section starts a nested group of fields.
func (f fields) section(indent int, key string) {
	fmt.Fprintf(f.tw, "%s%s:\n", strings.Repeat("  ", indent), key)
}

// describeMeta writes the object's metadata.
func describeMeta(f fields, c *v1alpha1.Cluster, now time.Time) {
	f.p(0, "Name", c.Name)
	f.p(0, "Namespace", c.Namespace)
	f.p(0, "Labels", kv(c.Labels))
	f.p(0, "Annotations", kv(c.Annotations))
	f.p(0, "UID", orNone(string(c.UID)))
	f.p(0, "Generation", c.Generation)
	f.p(0, "Resource Version", orNone(c.ResourceVersion))
	if !c.CreationTimestamp.IsZero() {
		f.p(0, "Created", fmt.Sprintf("%s (%s ago)", c.CreationTimestamp.UTC().Format(time.RFC3339), Age(c.CreationTimestamp.Time, now)))
	}
	if c.DeletionTimestamp != nil {
		f.p(0, "Deleting since", fmt.Sprintf("%s (waiting for finalizers: %s)", c.DeletionTimestamp.UTC().Format(time.RFC3339), strings.Join(c.Finalizers, ", ")))
	} else if len(c.Finalizers) > 0 {
		f.p(0, "Finalizers", strings.Join(c.Finalizers, ", "))
	}
}

// describeSpec writes the spec: env names only, optional groups only when
// set.
func describeSpec(f fields, c *v1alpha1.Cluster) {
	s := c.Spec
	f.section(0, "Spec")
	f.p(1, "Replicas", Desired(c))
	f.p(1, "Role", s.Role)
	f.section(1, "Task")
	f.p(2, "Command", orNone(s.Task.Command))
	f.p(2, "Env", envNames(s.Task.Env))
	f.p(2, "URIs", uris(s.Task.URIs))
	f.p(2, "Resources", resources(s.Task.Resources))
	if e := s.Task.Executor; e != nil {
		f.p(2, "Executor", e.Command)
		if len(e.URIs) > 0 {
			f.p(2, "Executor URIs", uris(e.URIs))
		}
	}
	f.section(1, "Placement")
	f.p(2, "Spread", orNone(s.Placement.Spread))
	var cons []string
	for _, k := range s.Placement.Constraints {
		cons = append(cons, strings.TrimSpace(k.Attribute+" "+k.Operator+" "+k.Value))
	}
	f.p(2, "Constraints", orNone(strings.Join(cons, "; ")))
	describeElection(f, s.Election)
	if u := s.Update; u.MaxUnavailable != nil || u.MinReadySeconds != nil || u.ProgressDeadline != nil {
		f.section(1, "Update")
		if u.MaxUnavailable != nil {
			f.p(2, "Max Unavailable", *u.MaxUnavailable)
		}
		if u.MinReadySeconds != nil {
			f.p(2, "Min Ready Seconds", *u.MinReadySeconds)
		}
		if u.ProgressDeadline != nil {
			f.p(2, "Progress Deadline", u.ProgressDeadline.Duration)
		}
	}
	if r := s.Restart; r.Backoff != nil && r.BackoffFactor != nil && r.MaxBackoff != nil && r.ResetAfter != nil {
		f.section(1, "Restart")
		f.p(2, "Back-off", fmt.Sprintf("%s, x%g per failure in a row, at most %s; reset after %s running",
			r.Backoff.Duration, *r.BackoffFactor, r.MaxBackoff.Duration, r.ResetAfter.Duration))
	}
}

// describeElection writes the spec's election, its commands when set.
func describeElection(f fields, e v1alpha1.Election) {
	f.section(1, "Election")
	f.p(2, "Strategy", e.Strategy)
	if e.Timeout != nil {
		f.p(2, "Timeout", e.Timeout.Duration)
	}
	if e.PositionCommand != "" {
		f.p(2, "Position Command", e.PositionCommand)
	}
	if e.PromoteCommand != "" {
		f.p(2, "Promote Command", e.PromoteCommand)
	}
}

// describeStatus writes the status's figures, the master and the published
// endpoints; the tasks and conditions follow as tables.
func describeStatus(f fields, c *v1alpha1.Cluster, ep *store.Endpoints) {
	st := c.Status
	f.section(0, "Status")
	f.p(1, "Observed Generation", st.ObservedGeneration)
	f.p(1, "Replicas", fmt.Sprintf("%d desired, %d current, %d ready, %d updated", Desired(c), st.Replicas, st.ReadyReplicas, st.UpdatedReplicas))
	f.p(1, "Ready", ReadyColumn(c))
	if t := st.LastProgressTime; t != nil {
		f.p(1, "Last Progress", t.UTC().Format(time.RFC3339))
	}
	if m := st.Master; m != nil {
		f.p(1, "Master", fmt.Sprintf("%s (ordinal %d, task %s)", MasterAddress(m), m.Ordinal, orNone(m.TaskID)))
		f.p(1, "Epoch", m.Epoch)
	} else {
		f.p(1, "Master", none)
	}
	if ep != nil {
		var members []string
		for _, m := range ep.Members {
			members = append(members, endpointAddress(m))
		}
		f.p(1, "Endpoints", fmt.Sprintf("epoch %d: %s", ep.Epoch, orNone(strings.Join(members, ", "))))
	}
}

// table writes a titled table of rows under a header, or "<none>" under
// the title when there are no rows.
func table(w io.Writer, title, header string, rows int, row func(tw io.Writer, i int)) error {
	fmt.Fprintln(w, title+":")
	if rows == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+header)
	for i := 0; i < rows; i++ {
		row(tw, i)
	}
	return tw.Flush()
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
