package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsCitationsResolve: the repository documents itself. Comments and
// docs cite docs/design.md by section, and every cited section exists there;
// none cites a design document outside the repository (DESIGN.md,
// MESOS-PROTOCOL.md), which a reader of the code does not have.
func TestDocsCitationsResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	design, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatalf("the design doc the code cites: %v", err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,3} (\d+)\.`).FindAllStringSubmatch(string(design), -1) {
		sections[m[1]] = true
	}
	outside := regexp.MustCompile(`DESIGN\.md|MESOS-PROTOCOL\.md`)
	cite := regexp.MustCompile(`docs/design\.md,? sections? (\d+)(?: (?:to|and) (\d+))?`)
	cited := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if loc := outside.FindIndex(b); loc != nil && rel != filepath.Join("cmd", "converge", "docs_test.go") {
			t.Errorf("%s cites %s, which is not in the repository: cite docs/design.md", rel, b[loc[0]:loc[1]])
		}
		for _, m := range cite.FindAllStringSubmatch(string(b), -1) {
			cited++
			for _, n := range m[1:] {
				if n != "" && !sections[n] {
					t.Errorf("%s cites docs/design.md section %s, which it does not have", rel, n)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cited == 0 {
		t.Fatal("no citation of docs/design.md found: the walk missed the source tree")
	}
}
