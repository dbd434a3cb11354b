package controller

import "testing"

func TestTaskIDs(t *testing.T) {
	id := NewTaskID("prod", "orders-db", 7)
	ns, name, ord, ok := ParseTaskID(id)
	if !ok || ns != "prod" || name != "orders-db" || ord != 7 || len(id) != len("prod.orders-db.7.")+8 {
		t.Fatalf("ParseTaskID(%q) = %q %q %d %v", id, ns, name, ord, ok)
	}
	if NewTaskID("prod", "orders-db", 7) == id {
		t.Fatalf("task ids repeat")
	}
	for _, bad := range []string{"", "a.b.c", "a.b.-1.x", "a.b.1.", "a..1.x", "a.b.1.x.y", "marathon-task-1", "a.b.x.y"} {
		if _, _, _, ok := ParseTaskID(bad); ok {
			t.Errorf("ParseTaskID(%q) accepted", bad)
		}
	}
	if got := TaskName("prod", "orders-db", 2); got != "prod/orders-db-2" {
		t.Fatalf("TaskName = %q", got)
	}
}
