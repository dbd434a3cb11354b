package cli

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseNames(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		names []string
		code  int // 0: ok
	}{
		{[]string{"clusters"}, []string{}, 0},
		{[]string{"cl", "a", "b"}, []string{"a", "b"}, 0},
		{[]string{"cluster/a", "clusters/b"}, []string{"a", "b"}, 0},
		{[]string{"Cluster"}, []string{}, 0},
		{nil, nil, ExitUsage},
		{[]string{"pods"}, nil, ExitUsage},
		{[]string{"pod/a"}, nil, ExitUsage},
		{[]string{"cluster/a", "b"}, nil, ExitUsage},
		{[]string{"cluster", "cluster/a"}, nil, ExitUsage},
		{[]string{"cluster/"}, nil, ExitUsage},
	} {
		names, err := ParseNames(tc.args)
		if tc.code != 0 {
			if ExitCode(err) != tc.code {
				t.Errorf("%v: err %v, want exit %d", tc.args, err, tc.code)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(append([]string{}, names...), tc.names) {
			t.Errorf("%v: %v %v, want %v", tc.args, names, err, tc.names)
		}
	}
}

func TestParseWaitFor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want WaitFor
		bad  bool
	}{
		{"delete", WaitFor{Delete: true}, false},
		{"condition=Ready", WaitFor{Condition: "Ready", Status: metav1.ConditionTrue}, false},
		{"condition=Stalled=False", WaitFor{Condition: "Stalled", Status: metav1.ConditionFalse}, false},
		{"condition=Ready=unknown", WaitFor{Condition: "Ready", Status: metav1.ConditionUnknown}, false},
		{"condition=", WaitFor{}, true},
		{"condition==True", WaitFor{}, true},
		{"condition=Ready=maybe", WaitFor{}, true},
		{"Ready", WaitFor{}, true},
	} {
		got, err := ParseWaitFor(tc.in)
		if tc.bad {
			if ExitCode(err) != ExitUsage {
				t.Errorf("%q: err %v, want a usage error", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}
