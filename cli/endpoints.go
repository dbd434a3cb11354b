package cli

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/converge-io/converge/store"
)

// PrintEndpoints writes a cluster's published endpoints: the epoch, then one
// row per member with its role and address (the master first).
func PrintEndpoints(w io.Writer, e *store.Endpoints) error {
	fmt.Fprintf(w, "cluster/%s (namespace %s), epoch %d\n", e.Cluster, e.Namespace, e.Epoch)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tORDINAL\tADDRESS\tTASK")
	members := append([]store.Endpoint(nil), e.Members...)
	sort.SliceStable(members, func(i, j int) bool { return members[i].Ordinal < members[j].Ordinal })
	if m := e.Master; m != nil {
		fmt.Fprintf(tw, "master\t%d\t%s\t%s\n", m.Ordinal, endpointAddress(*m), m.TaskID)
	}
	for _, m := range members {
		if e.Master != nil && m.TaskID == e.Master.TaskID {
			continue
		}
		role := "replica"
		if e.Master == nil {
			role = "member"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", role, m.Ordinal, endpointAddress(m), m.TaskID)
	}
	return tw.Flush()
}
