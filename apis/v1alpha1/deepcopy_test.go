package v1alpha1

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// full returns a Cluster with every field of this package's types set.
func full() *Cluster {
	one, two := int32(1), int32(2)
	c := valid()
	c.UID = "uid"
	c.ResourceVersion = "7"
	c.Generation = 2
	c.Annotations = map[string]string{"a": "b"}
	c.Finalizers = []string{Finalizer}
	now := metav1.NewTime(time.Unix(1700000000, 0))
	c.DeletionTimestamp = &now
	c.Spec.Role = "db"
	c.Spec.Task.URIs = []URI{{Value: "v", Executable: true, Extract: true, Cache: true}}
	c.Spec.Task.Executor = &ExecutorSpec{Command: "x", URIs: []URI{{Value: "e", Executable: true, Extract: true, Cache: true}}}
	c.Spec.Task.User = "postgres"
	c.Spec.Task.KillGracePeriod = &metav1.Duration{Duration: 30 * time.Second}
	d := &metav1.Duration{Duration: time.Second}
	three := int32(3)
	c.Spec.Task.HealthCheck = &Check{Type: CheckHTTP, Command: "c", HTTP: &HTTPCheck{PortIndex: 1, Path: "/p", Scheme: "https"},
		TCP: &TCPCheck{PortIndex: 1}, Delay: d, Interval: d, Timeout: d, GracePeriod: d, ConsecutiveFailures: &three}
	c.Spec.Task.ReadinessCheck = c.Spec.Task.HealthCheck.DeepCopy()
	c.Spec.Placement.Constraints = []Constraint{{Attribute: "rack", Operator: OpMaxPer, Value: "2"}}
	c.Spec.Placement.ReplaceAfter = &metav1.Duration{Duration: 5 * time.Minute}
	size := resource.MustParse("1Gi")
	c.Spec.Task.Volumes = []Volume{{Name: "data", ContainerPath: "data", Size: &size}}
	c.Spec.Election.FollowCommand = "follow"
	c.Spec.Election.DemoteCommand = "demote"
	c.Spec.Election.MaximumLagOnFailover = ptr(int64(1 << 20))
	yes := true
	c.Status = ClusterStatus{
		ObservedGeneration: 2, Replicas: 3, ReadyReplicas: 3, UpdatedReplicas: 3,
		Master: &MasterStatus{TaskID: "t", Ordinal: 1, Hostname: "h", Port: 1, Epoch: 1},
		Tasks:  []TaskStatus{{ID: "t", Ordinal: 1, State: "TASK_RUNNING", AgentID: "a", Hostname: "h", Ports: []int32{1}, Message: "m", Healthy: &yes, Ready: true}},
		Conditions: []metav1.Condition{{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "R", Message: "m",
			LastTransitionTime: now, ObservedGeneration: 2}},
		LastProgressTime: &now,
		Switchover:       &SwitchoverStatus{RequestedAt: "t", Phase: SwitchoverSucceeded, From: &one, To: &two, Epoch: 3, Message: "m"},
	}
	return c
}

// TestFixtureIsFull keeps full() honest: a field added to the types must be
// set there, so the aliasing test covers it.
func TestFixtureIsFull(t *testing.T) {
	var check func(v reflect.Value, path string)
	check = func(v reflect.Value, path string) {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				t.Errorf("%s is nil in full()", path)
				return
			}
			v = v.Elem()
		}
		if v.Kind() == reflect.Slice {
			if v.Len() == 0 {
				t.Errorf("%s is empty in full()", path)
				return
			}
			v = v.Index(0)
		}
		if v.Kind() != reflect.Struct || v.Type().PkgPath() != reflect.TypeOf(Cluster{}).PkgPath() {
			if v.IsZero() {
				t.Errorf("%s is zero in full()", path)
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Anonymous {
				continue // TypeMeta, ObjectMeta: apimachinery's own DeepCopy
			}
			check(v.Field(i), path+"."+f.Name)
		}
	}
	check(reflect.ValueOf(full()), "Cluster")
}

func TestDeepCopyNoAliasing(t *testing.T) {
	orig := full()
	cp := orig.DeepCopy()
	if !equality.Semantic.DeepEqual(orig, cp) {
		t.Fatalf("copy differs:\n%+v\n%+v", orig, cp)
	}
	noShared(t, reflect.ValueOf(orig), reflect.ValueOf(cp), "Cluster")

	list := &ClusterList{Items: []Cluster{*full()}}
	lcp := list.DeepCopy()
	if !equality.Semantic.DeepEqual(list, lcp) {
		t.Fatal("list copy differs")
	}
	noShared(t, reflect.ValueOf(list), reflect.ValueOf(lcp), "ClusterList")

	if (*Cluster)(nil).DeepCopy() != nil || (*ClusterList)(nil).DeepCopy() != nil || (*ClusterSpec)(nil).DeepCopy() != nil {
		t.Error("DeepCopy of nil is not nil")
	}
	if obj := orig.DeepCopyObject(); !equality.Semantic.DeepEqual(obj, orig) {
		t.Error("DeepCopyObject differs")
	}
}

// noShared fails when a and b share a map, slice or pointer target.
func noShared(t *testing.T, a, b reflect.Value, path string) {
	t.Helper()
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || a.Type() == reflect.TypeOf((*time.Location)(nil)) {
			return // time zones are shared by design
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: pointer shared", path)
			return
		}
		noShared(t, a.Elem(), b.Elem(), path)
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: map shared", path)
		}
		for _, k := range a.MapKeys() {
			noShared(t, a.MapIndex(k), b.MapIndex(k), path+"["+k.String()+"]")
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: slice shared", path)
		}
		for i := 0; i < a.Len(); i++ {
			noShared(t, a.Index(i), b.Index(i), path+"[]")
		}
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			noShared(t, a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)
		}
	case reflect.Interface:
		if !a.IsNil() {
			noShared(t, a.Elem(), b.Elem(), path)
		}
	}
}
