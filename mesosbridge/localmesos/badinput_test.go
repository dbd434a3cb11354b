package localmesos

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func rawPost(t *testing.T, url, ct, streamID string, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if streamID != "" {
		req.Header.Set("Mesos-Stream-Id", streamID)
	}
	cl := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func encodeCall(t *testing.T, c *scheduler.Call, json bool) []byte {
	t.Helper()
	codec := pbCodec
	if json {
		codec = jsonCodec
	}
	b, err := encode(codec, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInputStatusCodes(t *testing.T) {
	m := startMesos(t, testOptions())
	url := m.URL() + "/api/v1/scheduler"
	s := subscribe(t, m.URL(), pbCodec, frameworkInfo("fw"))
	streamID := ""
	m.mu.Lock()
	streamID = m.frameworks[s.fwID].stream.id
	m.mu.Unlock()

	revive := encodeCall(t, calls.Revive().With(calls.Framework(s.fwID)), false)
	reviveJSON := encodeCall(t, calls.Revive().With(calls.Framework(s.fwID)), true)

	// wrong method
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	cases := []struct {
		name, ct, sid string
		body          []byte
		want          int
		wantBody      string
	}{
		{"missing content type", "", streamID, revive, 400, "Content-Type"},
		{"wrong content type", "text/plain", streamID, revive, 415, ""},
		{"content type with params", "application/json; charset=utf-8", streamID, reviveJSON, 415, ""},
		{"bad protobuf", "application/x-protobuf", streamID, []byte{0xff, 0xff, 0xff}, 400, ""},
		{"bad json", "application/json", streamID, []byte(`{"type":`), 400, ""},
		{"quoted enum garbage", "application/json", streamID, []byte(`{"type":"NOPE"}`), 400, ""},
		{"no type", "application/json", streamID, []byte(`{"framework_id":{"value":"` + s.fwID + `"}}`), 400, "type"},
		{"unknown type", "application/json", streamID, []byte(`{"type":"UNKNOWN","framework_id":{"value":"` + s.fwID + `"}}`), 501, ""},
		{"no framework id", "application/json", streamID, []byte(`{"type":"REVIVE"}`), 400, "framework_id"},
		{"unknown framework", "application/json", streamID, []byte(`{"type":"REVIVE","framework_id":{"value":"nope"}}`), 400, "Framework cannot be found"},
		{"missing stream id", "application/x-protobuf", "", revive, 400, "Mesos-Stream-Id"},
		{"wrong stream id", "application/x-protobuf", "not-the-stream", revive, 400, "stream ID"},
		{"missing sub-message", "application/json", streamID, []byte(`{"type":"KILL","framework_id":{"value":"` + s.fwID + `"}}`), 400, "kill"},
		{"bad ack uuid", "application/x-protobuf", streamID, encodeCall(t, calls.Acknowledge("a", "t", []byte("short")).With(calls.Framework(s.fwID)), false), 400, "UUID"},
		{"ok protobuf", "application/x-protobuf", streamID, revive, 202, ""},
		{"ok json", "application/json", streamID, reviveJSON, 202, ""},
		{"subscribe with stream id", "application/json", streamID, encodeCall(t, calls.Subscribe(frameworkInfo("x")), true), 400, "Mesos-Stream-Id"},
	}
	for _, c := range cases {
		resp, body := rawPost(t, url, c.ct, c.sid, c.body)
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d (%s), want %d", c.name, resp.StatusCode, body, c.want)
			continue
		}
		if c.want == 202 && (body != "" || resp.Header.Get("Content-Type") != "") {
			t.Errorf("%s: 202 with body %q / content type %q", c.name, body, resp.Header.Get("Content-Type"))
		}
		if c.wantBody != "" && !strings.Contains(body, c.wantBody) {
			t.Errorf("%s: body %q lacks %q", c.name, body, c.wantBody)
		}
	}

	// UPDATE_FRAMEWORK: 200, empty body, no Content-Type.
	fi := frameworkInfo("fw")
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	resp, body := rawPost(t, url, "application/x-protobuf", streamID, encodeCall(t, calls.UpdateFramework(*fi).With(calls.Framework(s.fwID)), false))
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Type") != "" {
		t.Fatalf("UPDATE_FRAMEWORK: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}

	// A disconnected framework gets 403.
	s.close()
	waitFor(t, 2*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		fw := m.frameworks[s.fwID]
		return fw == nil || !fw.connected
	})
	m.mu.Lock()
	_, still := m.frameworks[s.fwID]
	m.mu.Unlock()
	resp, _ = rawPost(t, url, "application/x-protobuf", streamID, revive)
	if still && resp.StatusCode != 403 || !still && resp.StatusCode != 400 {
		t.Fatalf("disconnected framework: %d (still registered: %v)", resp.StatusCode, still)
	}
}

func TestSubscribeRawStream(t *testing.T) {
	m := startMesos(t, testOptions())
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/api/v1/scheduler", strings.NewReader(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"raw"}}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != -1 || resp.Header.Get("Mesos-Stream-Id") == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("subscribe response %d len %d headers %v", resp.StatusCode, resp.ContentLength, resp.Header)
	}
	buf := make([]byte, 4096)
	n, _ := io.ReadAtLeast(resp.Body, buf, 20)
	got := string(buf[:n])
	// RecordIO: "<len>\n{json}" with snake_case and numbers unquoted.
	if !strings.Contains(got, `"type":"SUBSCRIBED"`) || !strings.Contains(got, `"heartbeat_interval_seconds":0.2`) || !strings.Contains(got, "\n{") {
		t.Fatalf("first frame %q", got)
	}
}

func TestAcceptErrors(t *testing.T) {
	for _, pa := range []bool{true, false} {
		pa := pa
		name := "partition-aware"
		if !pa {
			name = "legacy"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := startMesos(t, testOptions())
			fi := frameworkInfo("fw")
			if pa {
				fi = frameworkInfo("fw", mesos.FrameworkInfo_Capability_PARTITION_AWARE)
			}
			s := subscribe(t, m.URL(), pbCodec, fi)
			offers := s.offers(3, 2*time.Second)
			o := offers[0]

			// Duplicate task ids within one launch: the first launches, the second is TASK_ERROR.
			s.mustCall(launch(o, cmdTask("dup", o, "sleep 100"), cmdTask("dup", o, "sleep 100")))
			st := s.update("dup", 2*time.Second, mesos.TASK_ERROR)
			if st.GetState() != mesos.TASK_ERROR || st.GetSource() != mesos.SOURCE_MASTER || len(st.UUID) != 0 || st.GetReason() != mesos.REASON_TASK_INVALID {
				t.Fatalf("duplicate: %v", st)
			}
			// The offer is used: using it again gives DROPPED (LOST without PARTITION_AWARE).
			s.mustCall(launch(o, cmdTask("again", o, "true")))
			st = s.update("again", 2*time.Second)
			want := mesos.TASK_DROPPED
			if !pa {
				want = mesos.TASK_LOST
			}
			if st.GetState() != want || st.GetReason() != mesos.REASON_INVALID_OFFERS || len(st.UUID) != 0 {
				t.Fatalf("reused offer: %v", st)
			}
			// Larger than the offer: TASK_ERROR.
			o2 := offers[1]
			s.mustCall(launch(o2, cmdTask("big", o2, "true", scalar("cpus", 100), scalar("mem", 10))))
			if st = s.update("big", 2*time.Second); st.GetState() != mesos.TASK_ERROR {
				t.Fatalf("too big: %v", st)
			}
			// Ports not in the offer: TASK_ERROR.
			o3 := offers[2]
			s.mustCall(launch(o3, cmdTask("port", o3, "true", scalar("cpus", 1), portsRes(80, 80))))
			if st = s.update("port", 2*time.Second); st.GetState() != mesos.TASK_ERROR {
				t.Fatalf("bad ports: %v", st)
			}
			// A task id already running: TASK_ERROR for the second launch.
			more := s.offers(1, 3*time.Second)
			s.mustCall(launch(more[0], cmdTask("live", more[0], "sleep 100")))
			s.ack(s.update("live", 2*time.Second, mesos.TASK_STARTING))
			more = s.offers(1, 3*time.Second)
			s.mustCall(launch(more[0], cmdTask("live", more[0], "sleep 100")))
			if st = s.update("live", 2*time.Second, mesos.TASK_ERROR, mesos.TASK_RUNNING); st.GetState() == mesos.TASK_RUNNING {
				s.ack(st)
				if st = s.update("live", 2*time.Second, mesos.TASK_ERROR); st.GetState() != mesos.TASK_ERROR {
					t.Fatalf("duplicate of a live task: %v", st)
				}
			}
		})
	}
}

// Odd but well-formed calls are answered, never crash the master.
func TestOddCallsDoNotCrash(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	url := m.URL() + "/api/v1/scheduler"
	sid := m.streamIDOf(s.fwID)
	fid := `"framework_id":{"value":"` + s.fwID + `"}`
	off := s.offers(1, 2*time.Second)[0]
	bodies := []string{
		`{"type":"ACCEPT",` + fid + `,"accept":{"offer_ids":[],"operations":[{"type":"LAUNCH"}]}}`,
		`{"type":"ACCEPT",` + fid + `,"accept":{"offer_ids":[{"value":"` + off.ID.Value + `"}],"operations":[{"type":"LAUNCH_GROUP"},{"type":"RESERVE"}],"filters":{"refuse_seconds":-3}}}`,
		`{"type":"DECLINE",` + fid + `,"decline":{"offer_ids":[{"value":"nope"}],"filters":{"refuse_seconds":1e300}}}`,
		`{"type":"KILL",` + fid + `,"kill":{"task_id":{"value":""}}}`,
		`{"type":"SHUTDOWN",` + fid + `,"shutdown":{"executor_id":{"value":"x"},"agent_id":{"value":"y"}}}`,
		`{"type":"RECONCILE",` + fid + `,"reconcile":{"tasks":[{"task_id":{"value":""}}]}}`,
		`{"type":"MESSAGE",` + fid + `,"message":{"agent_id":{"value":"a"},"executor_id":{"value":"e"},"data":"aGk="}}`,
		`{"type":"REQUEST",` + fid + `,"request":{"requests":[]}}`,
		`{"type":"ACKNOWLEDGE_OPERATION_STATUS",` + fid + `,"acknowledge_operation_status":{"agent_id":{"value":"a"},"uuid":"AAAAAAAAAAAAAAAAAAAAAA==","operation_id":{"value":"o"}}}`,
		`{"type":"SUPPRESS",` + fid + `}`,
		`{"type":"REVIVE",` + fid + `,"revive":{"roles":["nope"]}}`,
	}
	for _, b := range bodies {
		resp, body := rawPost(t, url, "application/json", sid, []byte(b))
		if resp.StatusCode != 202 {
			t.Errorf("%s: %d %s", b, resp.StatusCode, body)
		}
	}
	// A NaN or negative resource is an invalid task. (Rescind what is out
	// first: a REVIVE allocates at once, as Mesos's does.)
	m.RescindOffers()
	s.mustCall(calls.Revive())
	more := s.offers(1, 3*time.Second)[0]
	nan := cmdTask("nan", more, "true", mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: -1}})
	s.mustCall(launch(more, nan))
	if st := s.update("nan", 2*time.Second); st.GetState() != mesos.TASK_ERROR {
		t.Fatalf("negative cpus: %v", st)
	}
	if len(m.State().Slaves) != 3 {
		t.Fatal("state broken")
	}
}
