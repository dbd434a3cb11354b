package localmesos

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	execpb "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// fuzzFrameworkID is the id the fuzz targets' framework subscribes with (an
// unknown id is accepted as is), so seed bodies can name it.
const fuzzFrameworkID = "fuzz-framework-0000"

// fuzzStatuses are the answers the scheduler and executor APIs may give.
var fuzzStatuses = map[int]bool{
	http.StatusOK: true, http.StatusAccepted: true, http.StatusTemporaryRedirect: true,
	http.StatusBadRequest: true, http.StatusUnauthorized: true, http.StatusForbidden: true,
	http.StatusNotFound: true, http.StatusMethodNotAllowed: true, http.StatusNotAcceptable: true,
	http.StatusConflict: true, http.StatusUnsupportedMediaType: true, http.StatusNotImplemented: true,
	http.StatusServiceUnavailable: true,
}

// fuzzPost serves one request through the handler in-process. The request
// context is already cancelled, so that a SUBSCRIBE (a stream that lasts as
// long as its connection) answers and returns at once.
func fuzzPost(t *testing.T, h http.Handler, path string, jsonCT bool, stream string, body []byte) *httptest.ResponseRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)).WithContext(ctx)
	if jsonCT {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
	}
	if stream != "" {
		req.Header.Set(headerStreamID, stream)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if !fuzzStatuses[rec.Code] {
		t.Fatalf("%s answered %d: %q", path, rec.Code, rec.Body.String())
	}
	if rec.Code == http.StatusAccepted && rec.Body.Len() != 0 {
		t.Fatalf("%s answered 202 with a body: %q", path, rec.Body.String())
	}
	return rec
}

// fuzzSchedulerSeeds are valid calls of every kind, in both codecs, for the
// framework fuzzFrameworkID: the fuzzer mutates them into near-valid ones.
func fuzzSchedulerSeeds(t testing.TB) (pb, js [][]byte) {
	fw := calls.Framework(fuzzFrameworkID)
	agent := "fuzz-agent"
	tid := mesos.TaskID{Value: "default.db.0.x"}
	uuid := bytes.Repeat([]byte{7}, 16)
	list := []*scheduler.Call{
		calls.Subscribe(&mesos.FrameworkInfo{User: "u", Name: "fuzz", ID: &mesos.FrameworkID{Value: fuzzFrameworkID}}).With(calls.SubscribeTo(fuzzFrameworkID)),
		calls.Revive().With(fw),
		calls.Suppress().With(fw),
		calls.Decline(mesos.OfferID{Value: "o-1"}).With(fw),
		calls.Accept(calls.OfferOperations{calls.OpLaunch(mesos.TaskInfo{Name: "t", TaskID: tid, AgentID: mesos.AgentID{Value: agent}})}.WithOffers(mesos.OfferID{Value: "o-1"})).With(fw),
		calls.Kill(tid.Value, agent).With(fw),
		calls.Acknowledge(agent, tid.Value, uuid).With(fw),
		calls.Reconcile(calls.ReconcileTasks(map[string]string{tid.Value: agent})).With(fw),
		calls.Reconcile(calls.ReconcileTasks(nil)).With(fw),
		calls.Message(agent, tid.Value, []byte("position-query")).With(fw),
		calls.Shutdown(tid.Value, agent).With(fw),
		(&scheduler.Call{Type: scheduler.Call_TEARDOWN}).With(fw),
	}
	for _, c := range list {
		b, err := encode(pbCodec, c)
		if err != nil {
			t.Fatal(err)
		}
		pb = append(pb, b)
		if b, err = encode(jsonCodec, c); err != nil {
			t.Fatal(err)
		}
		js = append(js, b)
	}
	return pb, js
}

// FuzzSchedulerCall posts arbitrary bodies, in both codecs, with the stream
// id of a subscribed framework, none, or a wrong one, to POST
// /api/v1/scheduler: every answer is one the API documents, never a panic
// or a hang; a 202 has no body.
func FuzzSchedulerCall(f *testing.F) {
	pb, js := fuzzSchedulerSeeds(f)
	for _, b := range pb {
		f.Add(false, b, uint8(0))
	}
	for _, b := range js {
		f.Add(true, b, uint8(0))
	}
	f.Add(true, []byte(`{"type":"REVIVE","framework_id":{"value":"`+fuzzFrameworkID+`"}}`), uint8(1))
	f.Add(true, []byte(`{"type":"ACKNOWLEDGE","framework_id":{"value":"x"},"acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAAA"}}`), uint8(2))
	f.Add(false, []byte{0x08, 0x0b, 0x12, 0x00}, uint8(0))
	f.Add(true, []byte(`null`), uint8(0))

	w := &fuzzWorld{}
	f.Cleanup(w.close)
	f.Fuzz(func(t *testing.T, jsonCT bool, body []byte, streamSel uint8) {
		h, streamID := w.ensure(t)
		stream := ""
		switch streamSel % 3 {
		case 0:
			stream = streamID
		case 2:
			stream = "not-a-stream-" + strconv.Itoa(int(streamSel))
		}
		fuzzPost(t, h, "/api/v1/scheduler", jsonCT, stream, body)
	})
}

// fuzzWorld is a local Mesos with the framework fuzzFrameworkID subscribed
// over a real HTTP stream. An input that tears the framework down or takes
// its stream over would leave later inputs nothing to reach, so ensure
// starts a fresh world whenever the framework is no longer connected.
type fuzzWorld struct {
	m      *Mesos
	h      http.Handler
	stream string
	cancel context.CancelFunc
}

func (w *fuzzWorld) connected() bool {
	if w.m == nil {
		return false
	}
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	fw := w.m.frameworks[fuzzFrameworkID]
	return fw != nil && fw.connected && fw.stream != nil && fw.stream.id == w.stream
}

func (w *fuzzWorld) close() {
	if w.cancel != nil {
		w.cancel()
	}
	if w.m != nil {
		_ = w.m.Close()
	}
	w.m, w.h, w.cancel = nil, nil, nil
}

func (w *fuzzWorld) ensure(t *testing.T) (http.Handler, string) {
	if w.connected() {
		return w.h, w.stream
	}
	w.close()
	o := testOptions()
	o.WorkDir = filepath.Join(os.TempDir(), "localmesos-fuzz")
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	body, err := encode(pbCodec, calls.Subscribe(&mesos.FrameworkInfo{User: "u", Name: "fuzz", ID: &mesos.FrameworkID{Value: fuzzFrameworkID}}).With(calls.SubscribeTo(fuzzFrameworkID)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.URL()+"/api/v1/scheduler", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	go func() {
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	w.m, w.h, w.cancel = m, m.Handler(), cancel
	w.stream = resp.Header.Get(headerStreamID)
	if !w.connected() {
		t.Fatalf("fuzz framework not connected after SUBSCRIBE (%s)", resp.Status)
	}
	return w.h, w.stream
}

// FuzzExecutorCall posts arbitrary bodies, in both codecs, to an agent's
// POST /api/v1/executor.
func FuzzExecutorCall(f *testing.F) {
	fw := mesos.FrameworkID{Value: fuzzFrameworkID}
	ex := mesos.ExecutorID{Value: "default.db.0.x"}
	tid := mesos.TaskID{Value: "default.db.0.x"}
	uuid := bytes.Repeat([]byte{9}, 16)
	state := mesos.TASK_RUNNING
	list := []*execpb.Call{
		{Type: execpb.Call_SUBSCRIBE, FrameworkID: fw, ExecutorID: ex, Subscribe: &execpb.Call_Subscribe{}},
		{Type: execpb.Call_UPDATE, FrameworkID: fw, ExecutorID: ex, Update: &execpb.Call_Update{Status: mesos.TaskStatus{TaskID: tid, State: &state, UUID: uuid}}},
		{Type: execpb.Call_MESSAGE, FrameworkID: fw, ExecutorID: ex, Message: &execpb.Call_Message{Data: []byte("position")}},
	}
	for _, c := range list {
		b, err := encode(pbCodec, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(false, b)
		if b, err = encode(jsonCodec, c); err != nil {
			f.Fatal(err)
		}
		f.Add(true, b)
	}
	f.Add(true, []byte(`{"type":"UPDATE"}`))

	m := startMesos(f, testOptions())
	h := m.Handler()
	f.Fuzz(func(t *testing.T, jsonCT bool, body []byte) {
		fuzzPost(t, h, "/api/v1/executor", jsonCT, "", body)
	})
}

// TestWriteFuzzSeedCorpus regenerates testdata/fuzz from the seeds above
// (UPDATE_FUZZ_CORPUS=1 go test -run TestWriteFuzzSeedCorpus), so the corpus
// committed holds every call kind in both codecs.
func TestWriteFuzzSeedCorpus(t *testing.T) {
	if os.Getenv("UPDATE_FUZZ_CORPUS") == "" {
		t.Skip("set UPDATE_FUZZ_CORPUS=1 to rewrite testdata/fuzz")
	}
	pb, js := fuzzSchedulerSeeds(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzSchedulerCall")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, jsonCT bool, b []byte) {
		content := "go test fuzz v1\nbool(" + strconv.FormatBool(jsonCT) + ")\n[]byte(" + strconv.Quote(string(b)) + ")\nuint8(0)\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range pb {
		write("seed-pb-"+strconv.Itoa(i), false, b)
	}
	for i, b := range js {
		write("seed-json-"+strconv.Itoa(i), true, b)
	}
}
