package controller

import (
	"testing"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// TestImpliedExecutorURIIsCached: the `converge executor` binary the
// controller adds for position elections is fetched through the agents'
// fetcher cache (cache: true), so that a 50 MB binary is downloaded once per
// agent, not copied into every sandbox.
func TestImpliedExecutorURIIsCached(t *testing.T) {
	c := &Controller{cfg: Config{ExecutorURI: "/usr/bin/converge", ExecutorCommand: "./converge executor"}}
	spec := &v1alpha1.ClusterSpec{Election: v1alpha1.Election{Strategy: v1alpha1.ElectionPosition}}
	_, uris, _, ok := c.executorFor(spec)
	if !ok || len(uris) != 1 {
		t.Fatalf("executor URIs %v (ok %v), want the converge binary", uris, ok)
	}
	u := commandURIs(uris)[0]
	if u.GetValue() != "/usr/bin/converge" || !u.GetCache() || !u.GetExecutable() {
		t.Fatalf("executor URI %+v: want cache and executable", u)
	}
}
