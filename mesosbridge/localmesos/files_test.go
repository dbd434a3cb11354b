package localmesos

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// TestFilesRead: an agent's GET /files/read serves its executors' sandboxes
// by their virtual path /frameworks/FID/executors/EID/runs/latest/FILE
// (apache/mesos src/slave/paths.cpp getExecutorVirtualPath) or their real
// path, as Mesos's files process does (src/files/files.cpp __read and _read;
// the cases of src/tests/files_tests.cpp ReadTest and ResolveTest): offset
// -1 answers the size, a read past the end answers nothing, a read is capped
// at 16 pages, bad parameters, directories and paths out of the sandbox are
// 400, what is not attached is 404.
func TestFilesRead(t *testing.T) {
	m := startMesos(t, realOptions(t))
	s := subscribe(t, m.URL(), jsonCodec, frameworkInfo("files"))
	p := &pool{s: s}
	off := p.launch("logger", `echo hello; echo oops >&2; head -c 70000 /dev/zero | tr '\0' x > big; ln -s /etc/passwd escape; echo done; exec sleep 60`)
	p.reach("logger", mesos.TASK_RUNNING)

	var agentURL, sandbox string
	for _, a := range m.State().Slaves {
		if a.ID == off.AgentID.Value {
			agentURL = "http://" + strings.TrimPrefix(a.PID, "slave(1)@")
		}
	}
	m.mu.Lock()
	sandbox = m.sandboxDir(m.agentsByID[off.AgentID.Value], s.fwID, "logger")
	m.mu.Unlock()
	virtual := "/frameworks/" + s.fwID + "/executors/logger/runs/latest"

	type reply struct {
		Data   string `json:"data"`
		Offset int64  `json:"offset"`
	}
	get := func(query string) (int, string, reply) {
		t.Helper()
		resp, err := http.Get(agentURL + "/files/read?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r reply
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("%s: %v: %s", query, err, b)
			}
		}
		return resp.StatusCode, string(b), r
	}
	q := func(path string, kv ...string) string {
		v := url.Values{"path": {path}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, r := get(q(virtual+"/stdout", "offset", "0")); code == 200 && r.Data == "hello\ndone\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stdout never read hello, done")
		}
		time.Sleep(50 * time.Millisecond)
	}
	page := int64(os.Getpagesize())

	tests := []struct {
		name   string
		query  string
		code   int
		body   string // the exact body of an error
		data   string
		offset int64
	}{
		{"no path", "", 400, "Expecting 'path=value' in query.\n", "", 0},
		{"bad offset", q(virtual+"/stdout", "offset", "hello"), 400, "Failed to parse offset: Failed to convert 'hello' to number.\n", "", 0},
		{"bad length", q(virtual+"/stdout", "length", "hello"), 400, "Failed to parse length: Failed to convert 'hello' to number.\n", "", 0},
		{"negative offset", q(virtual+"/stdout", "offset", "-2"), 400, "Negative offset provided: -2.\n", "", 0},
		{"negative length", q(virtual+"/stdout", "length", "-2"), 400, "Negative length provided: -2.\n", "", 0},
		{"stdout", q(virtual+"/stdout", "offset", "0"), 200, "", "hello\ndone\n", 0},
		{"stderr", q(virtual+"/stderr", "offset", "0", "length", "-1"), 200, "", "oops\n", 0},
		{"a range", q(virtual+"/stdout", "offset", "1", "length", "3"), 200, "", "ell", 1},
		{"the size (offset -1)", q(virtual + "/stdout"), 200, "", "", 11},
		{"past the end", q(virtual+"/stdout", "offset", "100"), 200, "", "", 100},
		{"the real path", q(sandbox+"/stdout", "offset", "0"), 200, "", "hello\ndone\n", 0},
		{"a trailing slash", q(virtual+"/stdout/", "offset", "0"), 200, "", "hello\ndone\n", 0},
		{"a directory", q(virtual, "offset", "0"), 400, "Cannot read a directory.\n", "", 0},
		{"missing file", q(virtual+"/nothing", "offset", "0"), 404, "", "", 0},
		{"unknown executor", q("/frameworks/"+s.fwID+"/executors/nobody/runs/latest/stdout", "offset", "0"), 404, "", "", 0},
		{"not attached", q("/etc/passwd", "offset", "0"), 404, "", "", 0},
		{"dot-dot out of the sandbox", q(virtual+strings.Repeat("/..", 40)+"/etc/passwd", "offset", "0"), 400, "", "", 0},
		{"dot-dot to nothing", q(virtual+"/../../nothing/stdout", "offset", "0"), 404, "", "", 0},
		{"a symlink out of the sandbox", q(virtual+"/escape", "offset", "0"), 400, "", "", 0},
	}
	for _, tt := range tests {
		code, body, r := get(tt.query)
		switch {
		case code != tt.code:
			t.Errorf("%s: %d %q, want %d", tt.name, code, body, tt.code)
		case tt.body != "" && body != tt.body:
			t.Errorf("%s: body %q, want %q", tt.name, body, tt.body)
		case code == 200 && (r.Data != tt.data || r.Offset != tt.offset):
			t.Errorf("%s: %+v, want data %q offset %d", tt.name, r, tt.data, tt.offset)
		case code == 200 && !strings.HasPrefix(body, `{"data":`):
			t.Errorf("%s: body %s, want Mesos's {\"data\":...,\"offset\":...}", tt.name, body)
		}
	}
	// One read is at most 16 pages; the rest comes from the next offset.
	code, _, r := get(q(virtual+"/big", "offset", "0"))
	if code != 200 || int64(len(r.Data)) != 16*page || strings.Trim(r.Data, "x") != "" {
		t.Fatalf("big: %d, %d bytes, want %d", code, len(r.Data), 16*page)
	}
	if _, _, r := get(q(virtual+"/big", "offset", "-1")); r.Offset != 70000 {
		t.Fatalf("big size: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(sandbox, "big")); err != nil {
		t.Fatal(err)
	}
}
