package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/converge-io/converge/apis/v1alpha1"
	"github.com/converge-io/converge/mesosbridge/masterstate"
	"github.com/converge-io/converge/store"
)

// LogsOptions says where and what converge logs reads.
type LogsOptions struct {
	// Master is a Mesos master's URL (http(s)://host:port); a non-leading
	// master redirects to the leader.
	Master string
	// Stderr reads the member's stderr instead of its stdout.
	Stderr bool
	// Follow keeps reading what the member writes until ctx ends.
	Follow bool
	// Poll is how often a followed file is read again (default 1s).
	Poll time.Duration
	// Client makes the HTTP requests (default: a client with a 10s timeout).
	Client *http.Client
}

// Logs writes the stdout (or stderr) of the cluster's member with the given
// ordinal to w. It finds the member's task in the cluster's status, its
// framework, executor and agent in the Mesos master's /master/state, and
// reads the file from the agent's files API (GET /files/read on the agent,
// path /frameworks/FID/executors/EID/runs/latest/stdout: the agent's virtual
// path of the executor's sandbox), as Mesos's own CLI and web UI do.
func Logs(ctx context.Context, st *store.Store, ns, name string, ordinal int32, o LogsOptions, w io.Writer) error {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	c, err := st.Get(ctx, ns, name)
	if store.IsNotFound(err) {
		return fmt.Errorf("%s not found in namespace %s", Ref(name), ns)
	} else if err != nil {
		return err
	}
	task, err := memberTask(c, ordinal)
	if err != nil {
		return err
	}
	agent, path, err := locateSandbox(ctx, o, task)
	if err != nil {
		return err
	}
	file := "stdout"
	if o.Stderr {
		file = "stderr"
	}
	return tailFile(ctx, o, agent, path+"/"+file, w)
}

// memberTask returns the task id of the cluster's member with ordinal (the
// newest, should a replacement be starting beside a dying one).
func memberTask(c *v1alpha1.Cluster, ordinal int32) (string, error) {
	id := ""
	var ords []string
	for _, t := range c.Status.Tasks {
		ords = append(ords, strconv.Itoa(int(t.Ordinal)))
		if t.Ordinal == ordinal && (id == "" || !strings.HasPrefix(t.Message, "killing")) {
			id = t.ID
		}
	}
	if id != "" {
		return id, nil
	}
	if len(ords) == 0 {
		return "", fmt.Errorf("%s has no members running", Ref(c.Name))
	}
	sort.Strings(ords)
	return "", fmt.Errorf("%s has no member with ordinal %d (members: %s)", Ref(c.Name), ordinal, strings.Join(ords, ", "))
}

// locateSandbox returns the agent's base URL and the virtual path of the
// task's executor run directory.
func locateSandbox(ctx context.Context, o LogsOptions, taskID string) (string, string, error) {
	base := strings.TrimSuffix(o.Master, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", Usage("--mesos-master %q: want http://host:port or https://host:port", o.Master)
	}
	ms, err := masterstate.Get(ctx, o.Client, base)
	if err != nil {
		return "", "", fmt.Errorf("read the Mesos master's state: %w", err)
	}
	task, ok := ms.Task(taskID)
	if !ok {
		return "", "", fmt.Errorf("task %s is not known to the Mesos master at %s", taskID, base)
	}
	exec := task.ExecutorID
	if exec == "" {
		exec = task.ID // the command executor's id is its task's
	}
	a, ok := ms.Agent(task.SlaveID)
	if !ok {
		return "", "", fmt.Errorf("agent %s of task %s is not in the Mesos master's state", task.SlaveID, taskID)
	}
	_, hostport, ok := strings.Cut(a.PID, "@")
	if !ok || hostport == "" {
		return "", "", fmt.Errorf("agent %s (%s) has no address in the master's state (pid %q)", a.ID, a.Hostname, a.PID)
	}
	return u.Scheme + "://" + hostport, "/frameworks/" + task.FrameworkID + "/executors/" + exec + "/runs/latest", nil
}

// tailFile copies the file from the agent's files API to w, from its start;
// following, it reads again every o.Poll until ctx ends.
func tailFile(ctx context.Context, o LogsOptions, agent, path string, w io.Writer) error {
	offset := int64(0)
	for {
		var chunk struct {
			Data   string `json:"data"`
			Offset int64  `json:"offset"`
		}
		q := url.Values{"path": {path}, "offset": {strconv.FormatInt(offset, 10)}}
		if err := getJSON(ctx, o.Client, agent+"/files/read?"+q.Encode(), &chunk); err != nil {
			if ctx.Err() != nil && o.Follow {
				return nil // interrupted: following ends normally
			}
			return fmt.Errorf("read %s from the agent at %s: %w", path, agent, err)
		}
		if chunk.Data != "" {
			if _, err := io.WriteString(w, chunk.Data); err != nil {
				return err
			}
			offset += int64(len(chunk.Data))
			continue
		}
		if !o.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Poll):
		}
	}
}

// getJSON GETs url and decodes its JSON body; any other status is an error
// quoting the body.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errors.New("404 Not Found (gone, or its sandbox was garbage-collected)")
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}
