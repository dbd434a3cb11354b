package mesosbridge

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Calls to the master travel in lanes, each its own connection pool.
//
// One pool for everything dialled a new connection whenever more calls were in
// flight than it kept idle (a launch burst sends hundreds at once: election
// messages, ACCEPTs, ACKNOWLEDGEs), and closed it again on return: the CPU
// profile of a 30,000-task run spent 5% in Transport.dialConn. A lane bounds
// its connections (MaxConnsPerHost) and keeps all of them idle between calls,
// so calls queue for a connection instead of dialling one. Acknowledgements
// have their own lane, so they never wait behind launches and messages (an
// agent holds a task's next update until the previous one is acknowledged).
// The SUBSCRIBE stream has its own too: it holds its connection for hours.
const (
	laneCalls = iota
	laneAcks
	laneStream
	lanes
)

// laneConns bounds each lane's connections per master. Local calls take about
// a millisecond; 32 in flight keep a master busy.
var laneConns = [lanes]int{laneCalls: 32, laneAcks: 32, laneStream: 0}

var laneNames = [lanes]string{laneCalls: "calls", laneAcks: "acks", laneStream: "stream"}

type laneKey struct{}

// inLane marks ctx's requests for lane.
func inLane(ctx context.Context, lane int) context.Context {
	return context.WithValue(ctx, laneKey{}, lane)
}

func laneOf(req *http.Request) int {
	if l, ok := req.Context().Value(laneKey{}).(int); ok {
		return l
	}
	return laneCalls
}

// newLanes builds one transport per lane; dials counts the connections each
// dials (converge_mesos_dials_total{lane}).
func newLanes(tlsCfg *tls.Config, callTimeout time.Duration, dials *prometheus.CounterVec) [lanes]*http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var ts [lanes]*http.Transport
	for i := range ts {
		counter := dials.WithLabelValues(laneNames[i])
		ts[i] = &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				counter.Inc()
				return dialer.DialContext(ctx, network, addr)
			},
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxConnsPerHost:     laneConns[i],
			MaxIdleConnsPerHost: max(laneConns[i], 2),
			IdleConnTimeout:     90 * time.Second,
		}
		if i != laneStream {
			// The stream's headers come at once, its body for as long as it
			// lasts; a call's answer comes within CallTimeout.
			ts[i].ResponseHeaderTimeout = callTimeout
		}
	}
	return ts
}

// laneRoundTripper sends each request through its lane's transport.
func laneRoundTripper(ts [lanes]*http.Transport) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		return ts[laneOf(req)].RoundTrip(req)
	})
}
