package localmesos

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// A relative local path in a URI is fetched from under FrameworksHome (the
// agent's --frameworks_home), cached or not; without it, it fails to fetch.
func TestFetchRelativeURIUnderFrameworksHome(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "hooks", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := newFetcher(filepath.Join(t.TempDir(), "fetch"), 1<<20, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	f.home = home
	for _, cache := range []bool{false, true} {
		dir := t.TempDir()
		exe, c := true, cache
		if err := f.fetchAll([]mesos.CommandInfo_URI{{Value: "hooks/run.sh", Executable: &exe, Cache: &c}}, dir, ""); err != nil {
			t.Fatalf("cache %t: fetch a relative URI under the frameworks home: %v", cache, err)
		}
		st, err := os.Stat(filepath.Join(dir, "run.sh"))
		if err != nil || st.Mode()&0o111 == 0 {
			t.Fatalf("cache %t: fetched run.sh: %v, mode %v", cache, err, st)
		}
	}
	f.home = ""
	if err := f.fetchAll([]mesos.CommandInfo_URI{{Value: "hooks/run.sh"}}, t.TempDir(), ""); err == nil {
		t.Fatal("a relative URI was fetched without a frameworks home")
	}
}
