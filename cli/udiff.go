package cli

import (
	"fmt"
	"io"
	"strings"
)

// UnifiedDiff writes a unified diff (diff -u, 3 lines of context) of a and b,
// labelled fromName and toName, and reports whether they differ. Objects are
// small, so a quadratic longest-common-subsequence is plenty; beyond a size
// where it would not be, the whole text is shown as replaced.
func UnifiedDiff(w io.Writer, fromName, toName, a, b string) (bool, error) {
	if a == b {
		return false, nil
	}
	al, bl := splitLines(a), splitLines(b)
	ops := editScript(al, bl)
	if _, err := fmt.Fprintf(w, "--- %s\n+++ %s\n", fromName, toName); err != nil {
		return true, err
	}
	for _, h := range hunks(ops, 3) {
		if _, err := io.WriteString(w, h.render(al, bl)); err != nil {
			return true, err
		}
	}
	return true, nil
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

type edit struct {
	kind byte // ' ', '-', '+'
	a, b int  // line indexes in a and b (the one that applies)
}

const maxLCSCells = 16 << 20

func editScript(a, b []string) []edit {
	n, m := len(a), len(b)
	var ops []edit
	if n*m > maxLCSCells {
		for i := range a {
			ops = append(ops, edit{'-', i, 0})
		}
		for j := range b {
			ops = append(ops, edit{'+', n, j})
		}
		return ops
	}
	// l[i][j] = length of the LCS of a[i:] and b[j:].
	l := make([][]int32, n+1)
	for i := range l {
		l[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case a[i] == b[j]:
				l[i][j] = l[i+1][j+1] + 1
			case l[i+1][j] >= l[i][j+1]:
				l[i][j] = l[i+1][j]
			default:
				l[i][j] = l[i][j+1]
			}
		}
	}
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			ops = append(ops, edit{' ', i, j})
			i++
			j++
		case l[i+1][j] >= l[i][j+1]:
			ops = append(ops, edit{'-', i, j})
			i++
		default:
			ops = append(ops, edit{'+', i, j})
			j++
		}
	}
	for ; i < n; i++ {
		ops = append(ops, edit{'-', i, j})
	}
	for ; j < m; j++ {
		ops = append(ops, edit{'+', i, j})
	}
	return ops
}

type hunk struct{ ops []edit }

// hunks groups changes with ctx lines of context, merging neighbours whose
// context would overlap.
func hunks(ops []edit, ctx int) []hunk {
	var out []hunk
	start, end := -1, -1 // current hunk's op range [start, end)
	for k, op := range ops {
		if op.kind == ' ' {
			continue
		}
		lo := max(k-ctx, 0)
		if start >= 0 && lo <= end {
			end = min(k+ctx+1, len(ops))
			continue
		}
		if start >= 0 {
			out = append(out, hunk{ops[start:end]})
		}
		start, end = lo, min(k+ctx+1, len(ops))
	}
	if start >= 0 {
		out = append(out, hunk{ops[start:end]})
	}
	return out
}

func (h hunk) render(a, b []string) string {
	var aStart, bStart, aLen, bLen int
	aStart, bStart = h.ops[0].a, h.ops[0].b
	var sb strings.Builder
	for _, op := range h.ops {
		var line string
		switch op.kind {
		case ' ':
			aLen++
			bLen++
			line = a[op.a]
		case '-':
			aLen++
			line = a[op.a]
		case '+':
			bLen++
			line = b[op.b]
		}
		sb.WriteByte(op.kind)
		sb.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
	return fmt.Sprintf("@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen)) + sb.String()
}

// hunkRange is "start,len" with a 1-based start; an empty range names the
// line before it, as diff -u does.
func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}
