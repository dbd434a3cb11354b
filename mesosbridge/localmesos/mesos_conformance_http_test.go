package localmesos

// Expectations ported from Apache Mesos's own tests of the scheduler HTTP API
// (src/tests/scheduler_http_api_tests.cpp, master_validation_tests.cpp) and
// from the code they test (src/master/http.cpp Master::Http::scheduler,
// src/master/validation.cpp, src/master/master.cpp Master::subscribe), over
// real HTTP with the bodies a raw client or mesos-go v0.0.11 sends. Each test
// names the Mesos tests it ports.

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// rawCall posts a body to the scheduler endpoint with the given headers and
// returns the status and body (streams are read up to their first frame only
// by rawSubscribe).
func rawCall(t *testing.T, url, method string, hdr map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url+"/api/v1/scheduler", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// rawSubscribe posts a SUBSCRIBE that must be answered 200 and returns the
// first event of the stream (SUBSCRIBED, or the ERROR of a refused framework).
func rawSubscribe(t *testing.T, url string, codec encoding.Codec, fi *mesos.FrameworkInfo, suppressed ...string) *scheduler.Event {
	t.Helper()
	c := calls.Subscribe(fi)
	if fi.ID != nil {
		c = c.With(calls.SubscribeTo(fi.ID.Value))
	}
	c.Subscribe.SuppressedRoles = suppressed
	body, err := encode(codec, c)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/scheduler", bytes.NewReader(body))
	req.Header.Set("Content-Type", string(codec.Type))
	req.Header.Set("Accept", string(codec.Type))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.TransferEncoding == nil || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("SUBSCRIBE: %d %v, want 200 chunked", resp.StatusCode, resp.TransferEncoding)
	}
	frame, err := readRecordIO(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("first event: %v", err)
	}
	var ev scheduler.Event
	if err := decodeMessage(codec, frame, &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

// Ported: SchedulerHttpApiTest.{NoContentType, ValidJsonButInvalidProtobuf,
// MalformedContent, UnsupportedContentMediaType, GetRequest, NotAcceptable,
// SubscribeWithStreamId, TeardownWithoutStreamId, TeardownWrongStreamId,
// MalformedUUID} (scheduler_http_api_tests.cpp), and the messages of
// Master::Http::scheduler (http.cpp) and scheduler::call::validate
// (validation.cpp), required protobuf fields included.
func TestMesosSchedulerHTTPRequestErrors(t *testing.T) {
	m := startMesos(t, testOptions())
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("fw"))
	sid := m.streamIDOf(s.fwID)
	fid := `"framework_id":{"value":"` + s.fwID + `"}`
	sub := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}`
	js := map[string]string{"Content-Type": "application/json"}
	withSID := map[string]string{"Content-Type": "application/json", "Mesos-Stream-Id": sid}
	pb := map[string]string{"Content-Type": "application/x-protobuf"}
	// SUBSCRIBE{framework_info{name:"n"}}, no user: the encoder of a raw
	// client that skips required fields (mesos-go always writes them).
	pbNoUser := []byte{0x10, 0x01, 0x1a, 0x05, 0x0a, 0x03, 0x12, 0x01, 'n'}
	const invalid = "Failed to validate scheduler::Call: "
	cases := []struct {
		name, method string
		hdr          map[string]string
		body         string
		code         int
		want         string // the exact body; a trailing "*" matches a prefix
	}{
		{"GetRequest", http.MethodGet, nil, "", 405, "*"},
		{"NoContentType", http.MethodPost, nil, sub, 400, "Expecting 'Content-Type' to be present"},
		{"UnsupportedContentMediaType", http.MethodPost, map[string]string{"Content-Type": "application/unknown-media-type"}, sub, 415,
			"Expecting 'Content-Type' of application/json or application/x-protobuf"},
		{"MalformedContent/json", http.MethodPost, js, "MALFORMED_CONTENT", 400, "Failed to parse body into JSON: *"},
		{"MalformedContent/protobuf", http.MethodPost, pb, "MALFORMED_CONTENT", 400, "Failed to parse body into Call protobuf"},
		{"ValidJsonButInvalidProtobuf", http.MethodPost, js, `{"string":"valid_json"}`, 400, invalid + "Expecting 'type' to be present"},
		{"JSON not an object", http.MethodPost, js, `[1]`, 400, "Failed to convert JSON into Call protobuf: *"},
		{"unknown enum name", http.MethodPost, js, `{"type":"NOPE"}`, 400, "Failed to convert JSON into Call protobuf: *"},
		{"required fields missing (JSON)", http.MethodPost, js, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{}}}`, 400,
			"Failed to convert JSON into Call protobuf: Missing required fields: subscribe.framework_info.user, subscribe.framework_info.name"},
		{"required message missing (JSON)", http.MethodPost, js, `{"type":"SUBSCRIBE","subscribe":{}}`, 400,
			"Failed to convert JSON into Call protobuf: Missing required fields: subscribe.framework_info"},
		{"required fields of a task missing (JSON)", http.MethodPost, withSID,
			`{"type":"ACCEPT",` + fid + `,"accept":{"offer_ids":[{"value":"o"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"task_id":{"value":"t"}},{"name":"x","task_id":{},"agent_id":{"value":"a"}}]}}]}}`, 400,
			"Failed to convert JSON into Call protobuf: Missing required fields: accept.operations[0].launch.task_infos[0].name, accept.operations[0].launch.task_infos[0].agent_id, accept.operations[0].launch.task_infos[1].task_id.value"},
		{"required fields missing (protobuf)", http.MethodPost, pb, string(pbNoUser), 400, "Failed to parse body into Call protobuf"},
		{"SubscribeWithStreamId", http.MethodPost, withSID, sub, 400, "Subscribe calls should not include the 'Mesos-Stream-Id' header"},
		{"NotAcceptable", http.MethodPost, map[string]string{"Content-Type": "application/json", "Accept": "foo"}, sub, 406,
			"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"},
		{"SUBSCRIBE without subscribe", http.MethodPost, js, `{"type":"SUBSCRIBE"}`, 400, invalid + "Expecting 'subscribe' to be present"},
		{"framework_id differs from framework_info.id", http.MethodPost, js,
			`{"type":"SUBSCRIBE","framework_id":{"value":"a"},"subscribe":{"framework_info":{"user":"u","name":"n","id":{"value":"b"}}}}`, 400,
			invalid + "'framework_id' differs from 'subscribe.framework_info.id'"},
		{"framework_info.id without framework_id", http.MethodPost, js,
			`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","id":{"value":"b"}}}}`, 400,
			invalid + "'framework_id' differs from 'subscribe.framework_info.id'"},
		{"no framework_id", http.MethodPost, withSID, `{"type":"TEARDOWN"}`, 400, invalid + "Expecting 'framework_id' to be present"},
		{"ACCEPT without accept", http.MethodPost, withSID, `{"type":"ACCEPT",` + fid + `}`, 400, invalid + "Expecting 'accept' to be present"},
		{"MalformedUUID", http.MethodPost, withSID,
			`{"type":"ACKNOWLEDGE",` + fid + `,"acknowledge":{"agent_id":{"value":"agent-id"},"task_id":{"value":"task-id"},"uuid":"YmFkLXV1aWQ="}}`, 400,
			invalid + "Not a valid UUID"},
		{"UPDATE_FRAMEWORK for another id", http.MethodPost, withSID,
			`{"type":"UPDATE_FRAMEWORK",` + fid + `,"update_framework":{"framework_info":{"user":"u","name":"n","id":{"value":"other"}}}}`, 400,
			invalid + "'framework_id' differs from 'update_framework.framework_info.id'"},
		{"unknown framework", http.MethodPost, withSID, `{"type":"TEARDOWN","framework_id":{"value":"nope"}}`, 400, "Framework cannot be found"},
		{"TeardownWithoutStreamId", http.MethodPost, js, `{"type":"TEARDOWN",` + fid + `}`, 400,
			"All non-subscribe calls should include the 'Mesos-Stream-Id' header"},
		{"TeardownWrongStreamId", http.MethodPost, map[string]string{"Content-Type": "application/json", "Mesos-Stream-Id": "x"}, `{"type":"TEARDOWN",` + fid + `}`, 400,
			"The stream ID 'x' included in this request didn't match the stream ID currently associated with framework ID " + s.fwID},
		{"UNKNOWN is 501 with no body", http.MethodPost, withSID, `{"type":"UNKNOWN",` + fid + `}`, 501, ""},
	}
	for _, c := range cases {
		code, body := rawCall(t, m.URL(), c.method, c.hdr, []byte(c.body))
		body = strings.TrimSuffix(body, "\n")
		ok := code == c.code && body == c.want
		if p, prefix := strings.CutSuffix(c.want, "*"); prefix {
			ok = code == c.code && strings.HasPrefix(body, p)
		}
		if !ok {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.code, c.want)
		}
	}
	// None of this touched the subscribed framework.
	if err := s.call(calls.Revive()); err != nil {
		t.Fatalf("framework after the bad calls: %v", err)
	}
}

// Ported: SchedulerHttpApiTest.{Subscribe, NoAcceptHeader, DefaultAccept}
// (scheduler_http_api_tests.cpp): 200, chunked, Content-Type by Accept
// (none and */* mean JSON), SUBSCRIBED then HEARTBEAT.
func TestMesosSchedulerHTTPSubscribe(t *testing.T) {
	m := startMesos(t, testOptions())
	body := []byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}`)
	for _, accept := range []string{"", "*/*", "application/json"} {
		req, _ := http.NewRequest(http.MethodPost, m.URL()+"/api/v1/scheduler", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(resp.Body)
		var types []string
		for i := 0; i < 2; i++ {
			frame, err := readRecordIO(rd)
			if err != nil {
				t.Fatal(err)
			}
			var ev scheduler.Event
			if err := decodeMessage(jsonCodec, frame, &ev); err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type.String())
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || len(resp.TransferEncoding) == 0 ||
			strings.Join(types, ",") != "SUBSCRIBED,HEARTBEAT" {
			t.Errorf("Accept %q: %d %q %v events %v", accept, resp.StatusCode, resp.Header.Get("Content-Type"), resp.TransferEncoding, types)
		}
	}
}

// Ported: SchedulerHttpApiTest.RejectFrameworkWithInvalidRole
// (scheduler_http_api_tests.cpp); FrameworkInfoValidationTest.{ValidateRoles,
// ValidateFrameworkID, MissingMultiRoleCapability} (master_validation_tests.cpp);
// suppressed roles as validateSuppressedRoles (validation.cpp): a refused
// FrameworkInfo gets a 200 stream with one ERROR event.
func TestMesosSubscribeValidation(t *testing.T) {
	m := startMesos(t, testOptions())
	multi := func(roles ...string) *mesos.FrameworkInfo {
		fi := frameworkInfo("fw", mesos.FrameworkInfo_Capability_MULTI_ROLE)
		fi.Roles = roles
		return fi
	}
	role := func(r string) *mesos.FrameworkInfo {
		fi := frameworkInfo("fw")
		fi.Role = &r
		return fi
	}
	withID := func(id string) *mesos.FrameworkInfo {
		fi := frameworkInfo("fw")
		fi.ID = &mesos.FrameworkID{Value: id}
		return fi
	}
	star := "*"
	bothFields := multi("a")
	bothFields.Role = &star
	cases := []struct {
		name       string
		fi         *mesos.FrameworkInfo
		suppressed []string
		want       string
	}{
		{"RejectFrameworkWithInvalidRole", multi("/test/test1"), nil,
			"'FrameworkInfo.roles' contains invalid role: Role '/test/test1' cannot start with a slash"},
		{"ValidateRoles: trailing slash", role("a/"), nil, "'FrameworkInfo.role' is not a valid role: Role 'a/' cannot end with a slash"},
		{"ValidateRoles: adjacent slashes", role("a//b"), nil, "'FrameworkInfo.role' is not a valid role: Role 'a//b' cannot contain two adjacent slashes"},
		{"ValidateRoles: dot component", role("a/./b"), nil, "'FrameworkInfo.role' is not a valid role: Role 'a/./b' cannot include '.' as a component"},
		{"ValidateRoles: star component", role("a/*"), nil, "'FrameworkInfo.role' is not a valid role: Role 'a/*' cannot include '*' as a component"},
		{"ValidateRoles: dash", role("-a"), nil, "'FrameworkInfo.role' is not a valid role: Role component '-a' is invalid because it starts with a dash"},
		{"ValidateRoles: space", role("a b"), nil, "'FrameworkInfo.role' is not a valid role: Role component 'a b' is invalid because it contains backspace or whitespace"},
		{"ValidateRoles: empty", role(""), nil, "'FrameworkInfo.role' is not a valid role: Role names cannot be the empty string"},
		{"ValidateRoles: duplicates", multi("a", "b", "a"), nil, "'FrameworkInfo.roles' contains duplicate items: { a }"},
		{"MissingMultiRoleCapability", func() *mesos.FrameworkInfo { fi := frameworkInfo("fw"); fi.Roles = []string{"a"}; return fi }(), nil,
			"'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"},
		{"role with MULTI_ROLE", bothFields, nil, "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"},
		{"ValidateFrameworkID: slash", withID("a/b"), nil, "'a/b' contains invalid characters"},
		{"ValidateFrameworkID: dot dot", withID(".."), nil, "'..' is disallowed"},
		{"suppressed role not subscribed", multi("a"), []string{"a", "b"}, "Suppressed roles { b } are not contained in the set of roles"},
	}
	for _, c := range cases {
		ev := rawSubscribe(t, m.URL(), jsonCodec, c.fi, c.suppressed...)
		if ev.Type != scheduler.Event_ERROR || ev.Error.Message != c.want {
			t.Errorf("%s: %v, want ERROR %q", c.name, ev, c.want)
		}
	}
	if n := len(m.State().Frameworks); n != 0 {
		t.Errorf("%d frameworks registered by refused subscriptions", n)
	}
	// Valid hierarchical roles and suppressing a subscribed role are fine.
	if ev := rawSubscribe(t, m.URL(), pbCodec, multi("eng/dev", "a"), "a"); ev.Type != scheduler.Event_SUBSCRIBED {
		t.Errorf("valid MULTI_ROLE subscription: %v", ev)
	}
}

// Ported: FrameworkInfoValidationTest.ValidateUpdate
// (master_validation_tests.cpp) and Master::_subscribe (master.cpp): a
// re-SUBSCRIBE keeps the framework's user and checkpoint
// (preserveImmutableFields) and is refused if it changes the principal;
// UPDATE_FRAMEWORK refuses all three (Master::updateFramework's messages).
func TestMesosResubscribeKeepsImmutableFields(t *testing.T) {
	m := startMesos(t, testOptions())
	yes, p := true, "alice"
	fi := frameworkInfo("fw")
	fi.User, fi.Checkpoint, fi.Principal = "u1", &yes, &p
	first := rawSubscribe(t, m.URL(), jsonCodec, fi)
	if first.Type != scheduler.Event_SUBSCRIBED {
		t.Fatalf("subscribe: %v", first)
	}
	id := first.Subscribed.FrameworkID.Value

	again := frameworkInfo("fw2")
	no, timeout := false, 60.0
	again.ID, again.User, again.Checkpoint, again.Principal, again.FailoverTimeout = &mesos.FrameworkID{Value: id}, "u2", &no, &p, &timeout
	if ev := rawSubscribe(t, m.URL(), pbCodec, again); ev.Type != scheduler.Event_SUBSCRIBED || ev.Subscribed.FrameworkID.Value != id {
		t.Fatalf("re-subscribe: %v", ev)
	}
	fs := m.State().Frameworks[0]
	if fs.User != "u1" || !fs.Checkpoint || fs.Name != "fw2" || fs.FailoverTimeout != 60 {
		t.Errorf("after re-subscribe: user %q checkpoint %v name %q failover_timeout %v; want u1, true, fw2, 60", fs.User, fs.Checkpoint, fs.Name, fs.FailoverTimeout)
	}

	mallory := "mallory"
	again.Principal = &mallory
	if ev := rawSubscribe(t, m.URL(), jsonCodec, again); ev.Type != scheduler.Event_ERROR || ev.Error.Message != "Changing framework's principal is not allowed." {
		t.Errorf("re-subscribe with another principal: %v", ev)
	}

	// UPDATE_FRAMEWORK from a live subscription.
	again.Principal = &p
	s := subscribe(t, m.URL(), jsonCodec, again)
	sid := m.streamIDOf(s.fwID)
	update := func(fi mesos.FrameworkInfo, suppressed ...string) (int, string) {
		c := calls.UpdateFramework(fi).With(calls.Framework(s.fwID))
		c.UpdateFramework.SuppressedRoles = suppressed
		return rawCall(t, m.URL(), http.MethodPost, map[string]string{"Content-Type": "application/x-protobuf", "Mesos-Stream-Id": sid}, encodeCall(t, c, false))
	}
	cur := m.State().Frameworks[0]
	base := *again
	base.User, base.Checkpoint = cur.User, &yes
	for _, c := range []struct {
		name   string
		change func(*mesos.FrameworkInfo)
		supp   []string
		want   string
	}{
		{"user", func(fi *mesos.FrameworkInfo) { fi.User = "u3" }, nil,
			"FrameworkInfo update is not valid: Updating 'FrameworkInfo.user' is unsupported; attempted to update from 'u1' to 'u3'"},
		{"checkpoint", func(fi *mesos.FrameworkInfo) { fi.Checkpoint = &no }, nil,
			"FrameworkInfo update is not valid: Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update from 'true' to 'false'"},
		{"principal", func(fi *mesos.FrameworkInfo) { fi.Principal = nil }, nil,
			"FrameworkInfo update is not valid: Changing framework's principal is not allowed."},
		{"roles", func(fi *mesos.FrameworkInfo) { r := "/x"; fi.Role = &r }, nil,
			"Supplied FrameworkInfo is not valid: 'FrameworkInfo.role' is not a valid role: Role '/x' cannot start with a slash"},
		{"suppressed roles", func(*mesos.FrameworkInfo) {}, []string{"other"},
			"'UpdateFramework' call is not valid: Suppressed roles { other } are not contained in the set of roles"},
	} {
		fi := base
		c.change(&fi)
		if code, body := update(fi, c.supp...); code != 400 || strings.TrimSpace(body) != c.want {
			t.Errorf("UPDATE_FRAMEWORK %s: %d %q, want 400 %q", c.name, code, body, c.want)
		}
	}
	if code, body := update(base); code != 200 || body != "" {
		t.Errorf("valid UPDATE_FRAMEWORK: %d %q", code, body)
	}
}

// Ported: SchedulerTest.SchedulerFailover (scheduler_tests.cpp): a second
// scheduler subscribing with the framework's id takes over; the first gets an
// ERROR event and its stream closes; the second is SUBSCRIBED with the same id.
func TestMesosSchedulerFailover(t *testing.T) {
	m := startMesos(t, testOptions())
	fi := frameworkInfo("fw")
	timeout := 7 * 24 * 3600.0
	fi.FailoverTimeout = &timeout
	first := subscribe(t, m.URL(), pbCodec, fi)
	fi.ID = &mesos.FrameworkID{Value: first.fwID}
	if ev := rawSubscribe(t, m.URL(), jsonCodec, fi); ev.Type != scheduler.Event_SUBSCRIBED || ev.Subscribed.FrameworkID.Value != first.fwID {
		t.Fatalf("second scheduler: %v", ev)
	}
	if ev := first.next(scheduler.Event_ERROR, 2*time.Second); ev.Error.Message != "Framework failed over" {
		t.Errorf("first scheduler: %v", ev.Error)
	}
	select {
	case <-first.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("the first scheduler's stream is still open")
	}
}
