package masterstate

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestGet reads a local Mesos's /master/state over HTTP: through the
// non-leading master's 307 (Mesos's src/master/http.cpp Master::Http::state
// redirects when not elected), agents with their pid, and a clear error for a
// status other than 200.
func TestGet(t *testing.T) {
	m, err := localmesos.New(localmesos.Options{Listen: "127.0.0.1:0", Masters: 2, Agents: 2, Simulate: true, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	client := &http.Client{Timeout: 5 * time.Second}

	standby := m.URLs()[0]
	if standby == m.URL() {
		standby = m.URLs()[1]
	}
	st, err := Get(ctx, client, standby+"/")
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if _, err := Get(ctx, noFollow, standby); err == nil || !strings.Contains(err.Error(), "307") {
		t.Fatalf("standby without following redirects: err = %v, want its 307", err)
	}
	if len(st.Slaves) != 2 {
		t.Fatalf("slaves = %+v, want 2", st.Slaves)
	}
	a, ok := st.Agent(st.Slaves[1].ID)
	if !ok || !a.Active || !strings.Contains(a.PID, "@") || a.Hostname == "" {
		t.Fatalf("agent %s: %+v, %v", st.Slaves[1].ID, a, ok)
	}
	if _, ok := st.Framework("converge"); ok {
		t.Fatal("a framework before any subscribed")
	}

	_, err = Get(ctx, client, m.URL()+"/no-such-prefix")
	if err == nil || !strings.Contains(err.Error(), "/no-such-prefix/master/state: 404") {
		t.Fatalf("err = %v, want a 404 naming the URL", err)
	}
}

// TestTask finds a task in whichever list of whichever framework holds it.
func TestTask(t *testing.T) {
	st := &State{Frameworks: []Framework{
		{ID: "f1", Name: "other", Tasks: []Task{{ID: "a"}}},
		{ID: "f2", Name: "converge", UnreachableTasks: []Task{{ID: "b"}}, CompletedTasks: []Task{{ID: "c", State: "TASK_FINISHED", SlaveID: "s1"}}},
	}}
	for _, id := range []string{"a", "b", "c"} {
		if task, ok := st.Task(id); !ok || task.ID != id {
			t.Fatalf("Task(%q) = %+v, %v", id, task, ok)
		}
	}
	if task, _ := st.Task("c"); task.State != "TASK_FINISHED" || task.SlaveID != "s1" {
		t.Fatalf("Task(c) = %+v", task)
	}
	if _, ok := st.Task("d"); ok {
		t.Fatal("Task(d) found")
	}
	if f, ok := st.Framework("converge"); !ok || f.ID != "f2" {
		t.Fatalf("Framework(converge) = %+v, %v", f, ok)
	}
}
