package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// Output formats of get.
const (
	OutputTable = ""
	OutputWide  = "wide"
	OutputYAML  = "yaml"
	OutputJSON  = "json"
	OutputName  = "name"
)

// outputJSONPath prefixes -o jsonpath=TEMPLATE.
const outputJSONPath = "jsonpath="

// CheckOutput rejects an unknown -o value, or a jsonpath template that does
// not parse.
func CheckOutput(o string) error {
	switch o {
	case OutputTable, OutputWide, OutputYAML, OutputJSON, OutputName:
		return nil
	}
	if tmpl, ok := strings.CutPrefix(o, outputJSONPath); ok {
		if strings.TrimSpace(tmpl) == "" {
			return Usage("-o jsonpath= needs a template, e.g. -o jsonpath='{.status.master.hostname}'")
		}
		_, err := parseJSONPath(tmpl)
		return err
	}
	return Usage("unknown output format %q: use one of wide, yaml, json, name, jsonpath=TEMPLATE", o)
}

// IsJSONPath reports whether o is -o jsonpath=TEMPLATE.
func IsJSONPath(o string) bool { return strings.HasPrefix(o, outputJSONPath) }

// parseJSONPath parses a template as kubectl's -o jsonpath does
// (k8s.io/client-go/util/jsonpath; missing keys print nothing, as kubectl's
// default --allow-missing-template-keys).
func parseJSONPath(tmpl string) (*jsonpath.JSONPath, error) {
	j := jsonpath.New("out").AllowMissingKeys(true)
	if err := j.Parse(tmpl); err != nil {
		return nil, Usage("error parsing jsonpath %s: %v", tmpl, err)
	}
	return j, nil
}

// printJSONPath writes v through the template of o, over v as its JSON
// (kubectl prints no newline after it).
func printJSONPath(w io.Writer, o string, v any) error {
	j, err := parseJSONPath(strings.TrimPrefix(o, outputJSONPath))
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		return err
	}
	if err := j.Execute(w, data); err != nil {
		return fmt.Errorf("jsonpath %s: %w", strings.TrimPrefix(o, outputJSONPath), err)
	}
	return nil
}

// none is what kubectl prints for an empty cell.
const none = "<none>"

// TablePrinter prints clusters as get's table.
type TablePrinter struct {
	Wide          bool
	AllNamespaces bool
	NoHeaders     bool
	// ShowLabels adds a LABELS column, last (kubectl's --show-labels).
	ShowLabels bool
	// Now is the clock AGE is measured against (time.Now when zero).
	Now func() time.Time
}

// Header returns the column names.
func (p TablePrinter) Header() []string {
	var h []string
	if p.AllNamespaces {
		h = append(h, "NAMESPACE")
	}
	h = append(h, "NAME", "REPLICAS", "MASTER", "EPOCH", "READY", "AGE")
	if p.Wide {
		h = append(h, "GENERATION", "OBSERVED", "STRATEGY", "UPDATED")
	}
	if p.ShowLabels {
		h = append(h, "LABELS")
	}
	return h
}

// Row returns one cluster's cells.
func (p TablePrinter) Row(c *v1alpha1.Cluster) []string {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	var r []string
	if p.AllNamespaces {
		r = append(r, c.Namespace)
	}
	master, epoch := none, none
	if m := c.Status.Master; m != nil {
		master = MasterAddress(m)
		epoch = strconv.FormatInt(m.Epoch, 10)
	}
	r = append(r, c.Name,
		fmt.Sprintf("%d/%d", c.Status.ReadyReplicas, Desired(c)),
		master, epoch, ReadyColumn(c), Age(c.CreationTimestamp.Time, now()))
	if p.Wide {
		r = append(r,
			strconv.FormatInt(c.Generation, 10),
			strconv.FormatInt(c.Status.ObservedGeneration, 10),
			c.Spec.Election.Strategy,
			strconv.Itoa(int(c.Status.UpdatedReplicas)))
	}
	if p.ShowLabels {
		r = append(r, labels.FormatLabels(c.Labels)) // "k=v,..." sorted, or <none>
	}
	return r
}

// Print writes the table, header first unless NoHeaders.
func (p TablePrinter) Print(w io.Writer, items []*v1alpha1.Cluster) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if !p.NoHeaders {
		fmt.Fprintln(tw, strings.Join(p.Header(), "\t"))
	}
	for _, c := range items {
		fmt.Fprintln(tw, strings.Join(p.Row(c), "\t"))
	}
	return tw.Flush()
}

// TableStream prints a table whose rows arrive over time (get -w): columns
// keep the widths of what was printed before, so later rows line up under the
// header, growing only when a cell is wider than any before it.
type TableStream struct {
	P      TablePrinter
	widths []int
	header bool
}

var streamMinWidths = map[string]int{
	"REPLICAS": len("100/100"), "MASTER": len("127.0.0.1:31000"), "EPOCH": len("<none>"),
	"READY": len("Unknown"), "AGE": len("59m59s"),
}

// Print writes the header (the first time, unless NoHeaders) and the rows.
func (s *TableStream) Print(w io.Writer, items []*v1alpha1.Cluster) error {
	var rows [][]string
	if s.widths == nil {
		// Room for typical values from the start, so that rows that come
		// later rarely push columns right.
		for _, h := range s.P.Header() {
			s.widths = append(s.widths, max(len(h), streamMinWidths[h]))
		}
	}
	if !s.header && !s.P.NoHeaders {
		rows = append(rows, s.P.Header())
	}
	s.header = true
	for _, c := range items {
		rows = append(rows, s.P.Row(c))
	}
	for _, r := range rows {
		for i, cell := range r {
			if i >= len(s.widths) {
				s.widths = append(s.widths, 0)
			}
			s.widths[i] = max(s.widths[i], len(cell))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, cell := range r {
			b.WriteString(cell)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", s.widths[i]-len(cell)+3))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Desired is spec.replicas, or the default when unset.
func Desired(c *v1alpha1.Cluster) int32 {
	if c.Spec.Replicas == nil {
		return v1alpha1.DefaultReplicas
	}
	return *c.Spec.Replicas
}

// MasterAddress is "host:port" of the elected member, or its task id when it
// has no address yet.
func MasterAddress(m *v1alpha1.MasterStatus) string {
	switch {
	case m.Hostname != "" && m.Port != 0:
		return fmt.Sprintf("%s:%d", m.Hostname, m.Port)
	case m.Hostname != "":
		return m.Hostname
	case m.TaskID != "":
		return m.TaskID
	}
	return fmt.Sprintf("ordinal %d", m.Ordinal)
}

// ReadyColumn is get's READY cell: Terminating while deleting; "True" only when
// the Ready condition is True for the current generation; a condition about an
// older generation is "Unknown"; no condition yet is "Unknown".
func ReadyColumn(c *v1alpha1.Cluster) string {
	if c.DeletionTimestamp != nil {
		return "Terminating"
	}
	cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	if cond == nil || cond.ObservedGeneration != c.Generation {
		return "Unknown"
	}
	return string(cond.Status)
}

// Age prints a duration the way kubectl does (5s, 3m20s, 4h, 12d).
func Age(t, now time.Time) string {
	if t.IsZero() {
		return none
	}
	return duration.HumanDuration(now.Sub(t))
}

// typed returns a copy with apiVersion and kind set, as printed objects must
// carry them to apply back.
func typed(c *v1alpha1.Cluster) *v1alpha1.Cluster {
	if c.APIVersion == v1alpha1.APIVersion && c.Kind == v1alpha1.Kind {
		return c
	}
	cp := c.DeepCopy()
	cp.APIVersion, cp.Kind = v1alpha1.APIVersion, v1alpha1.Kind
	return cp
}

// List wraps items in a ClusterList.
func List(items []*v1alpha1.Cluster, rev int64) *v1alpha1.ClusterList {
	l := &v1alpha1.ClusterList{Items: make([]v1alpha1.Cluster, 0, len(items))}
	l.APIVersion, l.Kind = v1alpha1.APIVersion, v1alpha1.ListKind
	if rev > 0 {
		l.ResourceVersion = strconv.FormatInt(rev, 10)
	}
	for _, c := range items {
		l.Items = append(l.Items, *typed(c))
	}
	return l
}

// PrintObject writes v as YAML, JSON (kubectl's layout: JSON indented by
// four spaces, one document per object) or through a jsonpath template.
func PrintObject(w io.Writer, format string, v any) error {
	if c, ok := v.(*v1alpha1.Cluster); ok {
		v = typed(c)
	}
	if IsJSONPath(format) {
		return printJSONPath(w, format, v)
	}
	switch format {
	case OutputJSON:
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("cannot print objects as %q", format)
}

// PrintItems prints what get found: one object as itself when the user named
// exactly one, else a ClusterList; names with -o name; a table otherwise.
func PrintItems(w io.Writer, format string, items []*v1alpha1.Cluster, single bool, rev int64, tp TablePrinter) error {
	switch {
	case format == OutputYAML || format == OutputJSON || IsJSONPath(format):
		if single && len(items) == 1 {
			return PrintObject(w, format, items[0])
		}
		return PrintObject(w, format, List(items, rev))
	case format == OutputName:
		for _, c := range items {
			fmt.Fprintln(w, Ref(c.Name))
		}
		return nil
	}
	tp.Wide = format == OutputWide
	return tp.Print(w, items)
}

// SortClusters orders by namespace, then name.
func SortClusters(items []*v1alpha1.Cluster) {
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
}
