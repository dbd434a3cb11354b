package kubeapi

import (
	"context"
	corev1 "k8s.io/api/core/v1"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta/table"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/cli"
)

// tableConvertor renders clusters as kubectl get prints them: the columns of
// `converge get clusters` (-o wide adds the priority 1 columns), computed by
// the same functions.
type tableConvertor struct{}

var clusterColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "metadata.name"},
	{Name: "Replicas", Type: "string", Description: "ready members / spec.replicas"},
	{Name: "Master", Type: "string", Description: "host:port of the elected master"},
	{Name: "Epoch", Type: "string", Description: "election epoch of the master"},
	{Name: "Ready", Type: "string", Description: "the Ready condition for the current generation"},
	{Name: "Age", Type: "string", Description: "time since metadata.creationTimestamp"},
	{Name: "Generation", Type: "integer", Priority: 1, Description: "metadata.generation"},
	{Name: "Observed", Type: "integer", Priority: 1, Description: "status.observedGeneration"},
	{Name: "Strategy", Type: "string", Priority: 1, Description: "spec.election.strategy"},
	{Name: "Updated", Type: "integer", Priority: 1, Description: "members running the current template"},
}

func (tableConvertor) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	t := &metav1.Table{ColumnDefinitions: clusterColumns}
	if l, ok := obj.(*v1alpha1.ClusterList); ok {
		t.ResourceVersion = l.ResourceVersion
	}
	now := time.Now()
	rows, err := table.MetaToTableRow(obj, func(o runtime.Object, _ metav1.Object, name, _ string) ([]any, error) {
		c := o.(*v1alpha1.Cluster)
		master, epoch := "<none>", "<none>"
		if m := c.Status.Master; m != nil {
			master, epoch = cli.MasterAddress(m), strconv.FormatInt(m.Epoch, 10)
		}
		return []any{name,
			strconv.Itoa(int(c.Status.ReadyReplicas)) + "/" + strconv.Itoa(int(cli.Desired(c))),
			master, epoch, cli.ReadyColumn(c), cli.Age(c.CreationTimestamp.Time, now),
			c.Generation, c.Status.ObservedGeneration, c.Spec.Election.Strategy, int64(c.Status.UpdatedReplicas)}, nil
	})
	if err != nil {
		return nil, err
	}
	t.Rows = rows
	return t, nil
}

// eventTable renders events as kubectl get events prints them from
// kube-apiserver: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.
type eventTable struct{}

var eventColumns = []metav1.TableColumnDefinition{
	{Name: "Last Seen", Type: "string", Description: "time since lastTimestamp"},
	{Name: "Type", Type: "string", Description: "Normal or Warning"},
	{Name: "Reason", Type: "string", Description: "why the event happened, one word"},
	{Name: "Object", Type: "string", Description: "the object involved"},
	{Name: "Message", Type: "string", Description: "what happened"},
	{Name: "Name", Type: "string", Format: "name", Priority: 1, Description: "metadata.name"},
}

func (eventTable) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	t := &metav1.Table{ColumnDefinitions: eventColumns}
	if l, ok := obj.(*corev1.EventList); ok {
		t.ResourceVersion = l.ResourceVersion
	}
	now := time.Now()
	rows, err := table.MetaToTableRow(obj, func(o runtime.Object, _ metav1.Object, name, _ string) ([]any, error) {
		e := o.(*corev1.Event)
		return []any{cli.Age(e.LastTimestamp.Time, now), e.Type, e.Reason,
			strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name, e.Message, name}, nil
	})
	if err != nil {
		return nil, err
	}
	t.Rows = rows
	return t, nil
}
