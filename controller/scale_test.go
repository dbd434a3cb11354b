package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"os"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/localmesos"
)

// TestScaleSmoke converges many position-elected clusters on simulated agents
// and reports etcd writes per task (CONTROLLER_SCALE_CLUSTERS to make it bigger).
func TestScaleSmoke(t *testing.T) {
	clusters, replicas, agents := 30, 5, 30
	if v, err := strconv.Atoi(os.Getenv("CONTROLLER_SCALE_CLUSTERS")); err == nil {
		clusters, replicas, agents = v, 10, v
	}
	e := newEnv(t, localmesos.Options{Simulate: true, Agents: agents, AgentResources: "cpus:64;mem:262144;disk:65536;ports:[31000-31999]"})
	e.cfg.ResyncInterval = time.Minute
	if v, err := strconv.Atoi(os.Getenv("CONTROLLER_SCALE_WORKERS")); err == nil {
		e.cfg.Workers = v
	}
	e.start()
	kinds := map[string]int{}
	var kmu sync.Mutex
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	wch := e.etcd.Client().Watch(wctx, "/converge/", clientv3.WithPrefix())
	go func() {
		for resp := range wch {
			kmu.Lock()
			for _, ev := range resp.Events {
				k := strings.Split(strings.TrimPrefix(string(ev.Kv.Key), "/converge/"), "/")[0]
				if ev.Type == clientv3.EventTypePut && ev.Kv.Version == 1 && k == "clusters" {
					k = "clusters(create)"
				}
				kinds[k]++
			}
			kmu.Unlock()
		}
	}()
	start := time.Now()
	before := e.st.Stats()
	for i := 0; i < clusters; i++ {
		e.create(newCluster(fmt.Sprintf("c%d", i), int32(replicas), positional, func(c *v1alpha1.Cluster) {
			q := resource.MustParse("10m")
			c.Spec.Task.Resources.CPUs = &q
		}))
	}
	createWrites := e.st.Stats().Puts - before.Puts
	t.Logf("created in %s", time.Since(start).Round(time.Millisecond))
	for i := 0; i < clusters; i++ {
		e.waitFor(fmt.Sprintf("c%d", i), 60*time.Second, "Ready", clusterReady)
	}
	elapsed := time.Since(start)
	after := e.st.Stats()
	tasks := clusters * replicas
	puts := after.Puts - before.Puts - createWrites
	t.Logf("%d clusters x %d replicas: converged in %s; %d puts (%.2f per task), %d txns, %d creates",
		clusters, replicas, elapsed.Round(time.Millisecond), puts, float64(puts)/float64(tasks), after.Txns-before.Txns, createWrites)
	time.Sleep(500 * time.Millisecond)
	kmu.Lock()
	t.Logf("writes by key kind: %v", kinds)
	kmu.Unlock()
	if per := float64(puts) / float64(tasks); per > 5 {
		t.Errorf("%.2f etcd writes per task", per)
	}
}
