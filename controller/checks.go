package controller

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/converge-io/converge/apis/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// healthCheckInfo is task.healthCheck as Mesos's TaskInfo.health_check: port
// indexes become the member's ports, and a command check gets the task's
// environment (Mesos runs it with the executor's environment plus its own).
func healthCheckInfo(c *v1alpha1.Check, ports []uint64, env []mesos.Environment_Variable) *mesos.HealthCheck {
	if c == nil {
		return nil
	}
	hc := &mesos.HealthCheck{
		DelaySeconds:       secs(c.Delay, v1alpha1.DefaultCheckDelay),
		IntervalSeconds:    secs(c.Interval, v1alpha1.DefaultCheckInterval),
		TimeoutSeconds:     secs(c.Timeout, v1alpha1.DefaultCheckTimeout),
		GracePeriodSeconds: secs(c.GracePeriod, v1alpha1.DefaultHealthGracePeriod),
	}
	n := uint32(v1alpha1.DefaultConsecutiveFailures)
	if c.ConsecutiveFailures != nil {
		n = uint32(*c.ConsecutiveFailures)
	}
	hc.ConsecutiveFailures = &n
	switch c.Type {
	case v1alpha1.CheckCommand:
		hc.Type, hc.Command = mesos.HealthCheck_COMMAND, checkCommand(c.Command, env)
	case v1alpha1.CheckHTTP:
		hc.Type = mesos.HealthCheck_HTTP
		hc.HTTP = &mesos.HealthCheck_HTTPCheckInfo{Port: portAt(ports, c.HTTP.PortIndex), Path: strOrNil(c.HTTP.Path), Scheme: strOrNil(c.HTTP.Scheme)}
	case v1alpha1.CheckTCP:
		hc.Type = mesos.HealthCheck_TCP
		hc.TCP = &mesos.HealthCheck_TCPCheckInfo{Port: portAt(ports, c.TCP.PortIndex)}
	}
	return hc
}

// checkInfo is task.readinessCheck as Mesos's TaskInfo.check.
func checkInfo(c *v1alpha1.Check, ports []uint64, env []mesos.Environment_Variable) *mesos.CheckInfo {
	if c == nil {
		return nil
	}
	ci := &mesos.CheckInfo{
		DelaySeconds:    secs(c.Delay, v1alpha1.DefaultCheckDelay),
		IntervalSeconds: secs(c.Interval, v1alpha1.DefaultCheckInterval),
		TimeoutSeconds:  secs(c.Timeout, v1alpha1.DefaultCheckTimeout),
	}
	switch c.Type {
	case v1alpha1.CheckCommand:
		ci.Type, ci.Command = mesos.CheckInfo_COMMAND, &mesos.CheckInfo_Command{Command: *checkCommand(c.Command, env)}
	case v1alpha1.CheckHTTP:
		ci.Type = mesos.CheckInfo_HTTP
		// CheckInfo.Http has no scheme: Mesos's checks are plain http.
		ci.HTTP = &mesos.CheckInfo_Http{Port: portAt(ports, c.HTTP.PortIndex), Path: strOrNil(c.HTTP.Path)}
	case v1alpha1.CheckTCP:
		ci.Type = mesos.CheckInfo_TCP
		ci.TCP = &mesos.CheckInfo_Tcp{Port: portAt(ports, c.TCP.PortIndex)}
	}
	return ci
}

func checkCommand(cmd string, env []mesos.Environment_Variable) *mesos.CommandInfo {
	shell := true
	return &mesos.CommandInfo{Shell: &shell, Value: &cmd, Environment: &mesos.Environment{Variables: env}}
}

func secs(d *metav1.Duration, def time.Duration) *float64 {
	v := def.Seconds()
	if d != nil {
		v = d.Duration.Seconds()
	}
	return &v
}

// portAt is the member's port at index i (validation keeps i in range).
func portAt(ports []uint64, i int32) uint32 {
	if int(i) < len(ports) && i >= 0 {
		return uint32(ports[i])
	}
	return 0
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
