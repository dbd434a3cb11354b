package cli

import (
	"bytes"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	cases := []struct {
		name, a, b, want string
	}{
		{"same", "x\ny\n", "x\ny\n", ""},
		{"change in middle", "a\nb\nc\nd\ne\nf\ng\nh\ni\n", "a\nb\nc\nd\nE\nf\ng\nh\ni\n",
			"--- L\n+++ R\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"},
		{"from empty", "", "x\ny\n", "--- L\n+++ R\n@@ -0,0 +1,2 @@\n+x\n+y\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n",
			"--- L\n+++ R\n@@ -1,3 +1,4 @@\n+0\n 1\n 2\n 3\n@@ -9,4 +10,3 @@\n 9\n 10\n 11\n-12\n"},
		{"no newline", "a", "b", "--- L\n+++ R\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			differ, err := UnifiedDiff(&buf, "L", "R", tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if differ != (tc.want != "") {
				t.Fatalf("differ = %v", differ)
			}
			if buf.String() != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", buf.String(), tc.want)
			}
		})
	}
}
