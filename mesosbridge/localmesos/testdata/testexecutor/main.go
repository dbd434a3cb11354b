// Command testexecutor is a custom Mesos executor written against mesos-go's
// executor library, used by localmesos's tests: it reports TASK_RUNNING for each
// launched task, echoes framework messages ("echo:" + data), answers KILL with
// TASK_KILLED and exits once its last task is acknowledged terminal. A task whose
// data is "crash" makes it exit 3 right after TASK_RUNNING.
package main

import (
	"context"
	"crypto/rand"
	"log"
	"net/url"
	"os"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
)

func main() {
	cfg, err := config.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	codec := codecs.ByMediaType[codecs.MediaTypeProtobuf]
	if os.Getenv("TEST_EXECUTOR_CODEC") == "json" {
		codec = codecs.ByMediaType[codecs.MediaTypeJSON]
	}
	u := url.URL{Scheme: "http", Host: cfg.AgentEndpoint, Path: "/api/v1/executor"}
	cli := httpcli.New(httpcli.Endpoint(u.String()), httpcli.Codec(codec), httpcli.Do(httpcli.With(httpcli.Timeout(10*time.Second))))
	opts := executor.CallOptions{calls.Framework(cfg.FrameworkID), calls.Executor(cfg.ExecutorID)}
	sender := calls.SenderWith(httpexec.NewSender(cli.Send), opts...)
	subscriber := calls.SenderWith(httpexec.NewSender(cli.Send, httpcli.Close(true)), opts...)

	resp, err := subscriber.Send(context.Background(), calls.NonStreaming(calls.Subscribe(nil, nil)))
	if err != nil {
		log.Fatal("subscribe: ", err)
	}
	defer resp.Close()
	var execID mesos.ExecutorID
	live := map[string]bool{}
	terminal := map[string]bool{}
	send := func(c *executor.Call) {
		r, err := sender.Send(context.Background(), calls.NonStreaming(c))
		if r != nil {
			r.Close()
		}
		if err != nil {
			log.Fatal("send ", c.Type, ": ", err)
		}
	}
	update := func(id mesos.TaskID, st mesos.TaskState) {
		uuid := make([]byte, 16)
		_, _ = rand.Read(uuid)
		send(calls.Update(mesos.TaskStatus{TaskID: id, State: st.Enum(), Source: mesos.SOURCE_EXECUTOR.Enum(), ExecutorID: &execID, UUID: uuid}))
	}
	for {
		var e executor.Event
		if err := resp.Decode(&e); err != nil {
			log.Fatal("decode: ", err)
		}
		switch e.Type {
		case executor.Event_SUBSCRIBED:
			execID = e.Subscribed.ExecutorInfo.ExecutorID
			log.Printf("subscribed on agent %s", e.Subscribed.AgentInfo.GetID().GetValue())
		case executor.Event_LAUNCH:
			id := e.Launch.Task.TaskID
			live[id.Value] = true
			update(id, mesos.TASK_RUNNING)
			if string(e.Launch.Task.Data) == "crash" {
				os.Exit(3)
			}
		case executor.Event_KILL:
			if live[e.Kill.TaskID.Value] {
				terminal[e.Kill.TaskID.Value] = true
				update(e.Kill.TaskID, mesos.TASK_KILLED)
			}
		case executor.Event_ACKNOWLEDGED:
			id := e.Acknowledged.TaskID.Value
			if terminal[id] {
				delete(live, id)
				if len(live) == 0 {
					os.Exit(0)
				}
			}
		case executor.Event_MESSAGE:
			send(calls.Message(append([]byte("echo:"), e.Message.Data...)))
		case executor.Event_SHUTDOWN:
			os.Exit(0)
		case executor.Event_ERROR:
			log.Fatal("error event: ", e.Error.Message)
		}
	}
}
