package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/converge-io/converge/kubeapi"
	"github.com/converge-io/converge/store"
)

// kubectlEnv is a converge dev started in-process (real embedded etcd, local
// Mesos running real processes, the controller, the Kubernetes API on a free
// port) and the real kubectl pointed at it with the kubeconfig dev wrote.
type kubectlEnv struct {
	*env
	kubeconfig string
	apiURL     string
}

func startDevForKubectl(t *testing.T) *kubectlEnv {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not on PATH: the Kubernetes API tests need the real kubectl")
	}
	return startDevWithAPI(t, 2)
}

// startDevWithAPI starts converge dev with agents local Mesos agents and its
// Kubernetes API.
func startDevWithAPI(t *testing.T, agents int) *kubectlEnv {
	t.Helper()
	etcdURL := freeURL(t)
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data-dir", data, "--etcd-client-url", etcdURL,
			"--mesos-listen", "127.0.0.1:0", "--http", "", "--api-listen", "127.0.0.1:0", "--agents", strconv.Itoa(agents)},
			streams{in: strings.NewReader(""), out: out, errOut: errOut})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("converge dev did not stop")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("converge dev exited %d:\n%s%s", code, out.String(), errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("converge dev did not start within 60s:\n%s%s", out.String(), errOut.String())
		}
	}
	kc := filepath.Join(data, "kubeconfig")
	if !strings.Contains(out.String(), "export KUBECONFIG="+kc) {
		t.Fatalf("dev does not tell how to use kubectl:\n%s", out.String())
	}
	url := ""
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "kubernetes" {
			url = f[1]
		}
	}
	st, err := store.New(context.Background(), store.Options{Endpoints: []string{etcdURL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &kubectlEnv{
		env:        &env{t: t, endpoint: etcdURL, prefix: store.DefaultPrefix, st: st, dir: t.TempDir()},
		kubeconfig: kc, apiURL: url,
	}
}

// kubectl runs the real kubectl; code is its exit code.
func (k *kubectlEnv) kubectl(ctx context.Context, stdin string, args ...string) result {
	k.t.Helper()
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig, "HOME="+k.dir)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		k.t.Fatalf("kubectl %v: %v", args, err)
	}
	r := result{code: code, out: out.String(), err: errOut.String()}
	k.t.Logf("$ kubectl %s\n%s", strings.Join(args, " "), r)
	return r
}

func (k *kubectlEnv) k(args ...string) result { k.t.Helper(); return k.kubectl(nil, "", args...) }

// kmanifest is manifest with quantities as the server stores them (100m, not
// 0.1): kubectl's three-way patch compares strings, so a quantity written
// otherwise is "configured" at every apply, as with Kubernetes' own objects.
func kmanifest(name string, replicas int) string {
	return strings.Replace(manifest(name, replicas, ""), "cpus: 0.1", "cpus: 100m", 1)
}

// eventsWatch is `kubectl events --for OBJ --watch` running, and a watch of
// the same events that allowed bookmarks: the server's bookmark ticks, seen.
type eventsWatch struct {
	k           *kubectlEnv
	out, errOut *syncBuffer
	done        chan error
	stop        context.CancelFunc
	ticks       watch.Interface
}

// startEventsWatch starts kubectl events --for obj --watch, for at most a
// minute (its context's deadline kills it).
func (k *kubectlEnv) startEventsWatch(obj string) *eventsWatch {
	k.t.Helper()
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	k.t.Cleanup(stop)
	cfg, err := clientcmd.BuildConfigFromFlags("", k.kubeconfig)
	if err != nil {
		k.t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		k.t.Fatal(err)
	}
	ticks, err := cs.CoreV1().Events("default").Watch(ctx, metav1.ListOptions{AllowWatchBookmarks: true})
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(ticks.Stop)
	e := &eventsWatch{k: k, out: &syncBuffer{}, errOut: &syncBuffer{}, done: make(chan error, 1), stop: stop, ticks: ticks}
	cmd := exec.CommandContext(ctx, "kubectl", "events", "--for", obj, "--watch")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig, "HOME="+k.dir)
	cmd.Stdout, cmd.Stderr = e.out, e.errOut
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	go func() { e.done <- cmd.Wait() }()
	return e
}

// check waits until the watch printed want, then three of the server's
// bookmark intervals more (kubeapi.SetBookmarkInterval), stops it and
// checks what it printed: the events, and no bookmark (a line of
// "<unknown>": kubectl does not allow bookmarks and prints every Event it
// is sent), and that it had not ended by itself.
func (e *eventsWatch) check(want string) {
	t := e.k.t
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(e.out.String(), want) {
		select {
		case err := <-e.done:
			t.Fatalf("kubectl events --watch ended (%v) before printing %q:\n%s%s", err, want, e.out, e.errOut)
		case <-deadline:
			t.Fatalf("kubectl events --watch did not print %q within 30s:\n%s%s", want, e.out, e.errOut)
		case <-time.After(20 * time.Millisecond):
		}
	}
	for n := 0; n < 3; {
		select {
		case ev, ok := <-e.ticks.ResultChan():
			if !ok {
				t.Fatal("the bookmark watch ended")
			}
			if ev.Type == watch.Bookmark {
				n++
			}
		case err := <-e.done:
			t.Fatalf("kubectl events --watch ended by itself (%v):\n%s%s", err, e.out, e.errOut)
		case <-deadline:
			t.Fatal("no three bookmarks within 30s")
		}
	}
	e.stop()
	<-e.done
	out := e.out.String()
	t.Logf("$ kubectl events --watch\n%s%s", out, e.errOut)
	for _, s := range []string{"LAST SEEN", "Normal", "Launching", "Cluster/web", "launching task default.web.0.", want} {
		if !strings.Contains(out, s) {
			t.Fatalf("kubectl events --watch lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "<unknown>") || e.errOut.String() != "" {
		t.Fatalf("kubectl events --watch printed a bookmark or an error:\n%s%s", out, e.errOut)
	}
}

// TestKubectl walks kubectl through converge dev as a user would: discovery,
// apply (twice: unchanged), the converge CLI seeing the same object, wait for
// Ready (the real controller and processes), the controller's events
// through kubectl events and describe, get -w and events --watch streaming
// a scale (and no bookmark kubectl did not ask for),
// diff's exit codes, an unknown field refused by name, server-side apply with
// a conflict and --force-conflicts, delete, and an anonymous request refused.
func TestKubectl(t *testing.T) {
	// Bookmarks every 100ms, so that kubectl events --watch would print one
	// sent to it within a second.
	t.Cleanup(kubeapi.SetBookmarkInterval(100 * time.Millisecond))
	k := startDevForKubectl(t)

	// Anonymous: no client certificate, no token.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(k.apiURL + "/apis/converge.io/v1alpha1/clusters")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous request: got %s, want 401 Unauthorized", resp.Status)
	}

	expect(t, k.k("api-resources", "--api-group=converge.io"), 0, "clusters", "cl", "converge.io/v1alpha1", "Cluster")

	// converge kubeconfig prints the kubeconfig dev wrote (kubectl uses it
	// here); without one it says how to get one.
	want, err := os.ReadFile(k.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if r := k.run("", "kubeconfig", "--data-dir", filepath.Dir(k.kubeconfig)); r.code != 0 || r.out != string(want) {
		t.Fatalf("converge kubeconfig does not print %s:\n%s", k.kubeconfig, r)
	}
	if r := k.run("", "kubeconfig", "--data-dir", k.dir); r.code == 0 || !strings.Contains(r.err, "no kubeconfig at") {
		t.Fatalf("converge kubeconfig without one:\n%s", r)
	}

	// A quantity written otherwise than the server stores it (cpus: 0.1,
	// stored as 100m) reads "configured" at every apply while the spec stays
	// as it was (same generation), as kubectl does with Kubernetes' own objects: its three-way
	// patch compares strings (kubernetes/kubernetes#116135).
	quant := k.file("quant.yaml", manifest("quant", 0, ""))
	expect(t, k.k("apply", "-f", quant), 0, "cluster.converge.io/quant created")
	before := k.get("quant")
	expect(t, k.k("apply", "-f", quant), 0, "cluster.converge.io/quant configured")
	if after := k.get("quant"); after.Generation != before.Generation || after.Spec.Task.Resources.CPUs.String() != "100m" {
		t.Fatalf("re-applying cpus: 0.1 changed the spec: generation %d -> %d, cpus %s",
			before.Generation, after.Generation, after.Spec.Task.Resources.CPUs)
	}

	web := k.file("web.yaml", kmanifest("web", 1))
	expect(t, k.k("apply", "-f", web), 0, "cluster.converge.io/web created")
	expect(t, k.k("apply", "-f", web), 0, "cluster.converge.io/web unchanged")
	expect(t, k.k("diff", "-f", web), 0) // no difference: exit 0
	// One source of truth: the converge CLI sees what kubectl wrote.
	expect(t, k.run("", "get", "cluster", "web"), 0, "web")

	expect(t, k.k("wait", "--for=condition=Ready", "cluster/web", "--timeout=60s"), 0, "cluster.converge.io/web condition met")
	expect(t, k.k("get", "clusters"), 0, "REPLICAS", "MASTER", "EPOCH", "1/1", "True")

	// The controller's events, through core/v1 events: kubectl events --for
	// and the Events section of kubectl describe.
	expect(t, k.k("events", "--for", "cluster/web"), 0, "LAST SEEN", "Normal", "Launching", "Cluster/web", "launching task default.web.0.")
	expect(t, k.k("describe", "cluster", "web"), 0, "Name:", "web", "Events:", "Launching", "converge-controller", "launching task default.web.0.")

	// get -w streams the scale to 2, and events --watch its events.
	wctx, stopWatch := context.WithCancel(context.Background())
	watchOut := make(chan result, 1)
	go func() { watchOut <- k.kubectl(wctx, "", "get", "clusters", "-w", "--output-watch-events") }()
	evWatch := k.startEventsWatch("cluster/web")
	expect(t, k.k("scale", "cluster/web", "--replicas=2"), 0, "cluster.converge.io/web scaled")
	waitFor(t, func() bool { return *k.get("web").Spec.Replicas == 2 })
	expect(t, k.k("wait", "--for=jsonpath={.status.readyReplicas}=2", "cluster/web", "--timeout=60s"), 0, "condition met")
	stopWatch()
	w := <-watchOut
	if !strings.Contains(w.out, "MODIFIED") || !strings.Contains(w.out, "/2") {
		t.Fatalf("get -w did not stream the scale:\n%s", w)
	}
	evWatch.check("launching task default.web.1.")

	// diff: 1 now that the live object was scaled.
	expect(t, k.k("diff", "-f", web), 1, "replicas")

	// An unknown field is refused, naming it; nothing is written.
	bad := k.file("bad.yaml", strings.Replace(kmanifest("web", 3), "replicas:", "replicaz:", 1))
	expect(t, k.k("apply", "-f", bad), 1, `unknown field "spec.replicaz"`)

	// Server-side apply: created, then a second manager's change conflicts
	// until forced.
	api := k.file("api.yaml", kmanifest("api", 0))
	expect(t, k.k("apply", "--server-side", "-f", api), 0, "cluster.converge.io/api serverside-applied")
	other := k.file("api-other.yaml", kmanifest("api", 1))
	expect(t, k.k("apply", "--server-side", "--field-manager=other", "-f", other), 1, "conflict", ".spec.replicas")
	expect(t, k.k("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", other), 0, "serverside-applied")
	if r := *k.get("api").Spec.Replicas; r != 1 {
		t.Fatalf("after --force-conflicts: replicas %d, want 1", r)
	}
	expect(t, k.k("apply", "--server-side", "--dry-run=server", "-f", api), 1, "conflict")
	expect(t, k.k("delete", "cluster", "web", "--timeout=60s"), 0, `cluster.converge.io "web" deleted`)
	expect(t, k.k("get", "cluster", "web"), 1, "NotFound")
}
