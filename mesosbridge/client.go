package mesosbridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/converge-io/converge/store"
)

var (
	// ErrNotSubscribed: a call was made while no subscription is up. The caller
	// retries later (the controller's next reconcile).
	ErrNotSubscribed = errors.New("not subscribed to a Mesos master")
	// ErrFrameworkRemoved: the master removed the framework; Run returns it. Start a
	// new framework (Config.NewFramework) once an operator has decided to.
	ErrFrameworkRemoved = errors.New("mesos framework removed")
	// ErrUnauthenticated: the master refused the credentials (or demanded some);
	// Run returns it.
	ErrUnauthenticated = errors.New("mesos master refused authentication")
)

// Client is the production Bridge over mesos-go's httpsched client.
//
// How it behaves:
//   - Leader: SUBSCRIBE goes to the master believed to lead, then to every master
//     in turn; a 307 is followed (Location "//host:port/...") by the bridge itself,
//     and each leader gets its own httpsched caller, because mesos-go sends later
//     calls to the URL its client was built with. A call answered 307 moves the
//     bridge to the new leader and is retried there once.
//   - Liveness: no event for HeartbeatMisses heartbeat intervals drops the stream;
//     every reconnection waits a jittered exponential backoff.
//   - Framework id: loaded from State before the first SUBSCRIBE, saved before
//     EventSubscribed reports a new one; a removed framework stops Run.
//   - After every SUBSCRIBED: explicit reconciliation of Config.ReconcileTasks
//     (truncated exponential backoff until every task answered, then
//     EventReconciled); KILLs in flight are re-issued; implicit reconciliation
//     runs every ImplicitReconcileInterval.
type Client struct {
	cfg   Config
	log   logr.Logger
	m     *metrics
	codec encoding.Codec
	do    httpcli.DoFunc
	// transports carry the calls, one per lane (lanes.go); their idle
	// connections are dropped with a stream.
	transports [lanes]*http.Transport
	events     chan Event
	kills      *killTracker

	started atomic.Bool

	mu          sync.Mutex
	runCtx      context.Context // set by Run; used by deferred calls (revive, kill retries)
	frameworkID string          // current id ("" before the first SUBSCRIBED)
	savedID     string          // the id known to be durable in State
	leader      string          // scheduler endpoint of the master believed to lead
	sess        *session        // non-nil while subscribed
	sessChanged chan struct{}   // closed and replaced whenever sess changes
	suppressed  bool
	lastRevive  time.Time
	reviveTimer *time.Timer // a coalesced REVIVE waiting for the rate limit

	bg sync.WaitGroup // background calls
}

var _ Bridge = (*Client)(nil)

// session is one subscription: an httpsched caller bound to one master's endpoint.
type session struct {
	endpoint string
	caller   calls.Caller
	abort    context.CancelFunc // drops the stream
}

// New checks cfg and builds a Client; nothing is contacted until Run.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	codec := codecs.ByMediaType[codecs.MediaTypeProtobuf]
	if cfg.Codec == "json" {
		codec = codecs.ByMediaType[codecs.MediaTypeJSON]
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("mesosbridge: read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mesosbridge: no PEM certificate in %s", cfg.CACertFile)
		}
		tlsCfg.RootCAs = pool
	}
	// Our own transports (not httpcli.With) so idle connections can be dropped when a
	// stream dies: after a partition a pooled connection may lead nowhere.
	transports := newLanes(tlsCfg, cfg.CallTimeout, m.dials)
	rt := laneRoundTripper(transports)
	if cfg.Secret != "" {
		rt = basicAuth(rt, cfg.Principal, cfg.Secret)
	}
	hc := &http.Client{
		Transport: noteRedirects(rt),
		// mesos-go needs to see 307s: the bridge follows them itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &Client{
		cfg:         cfg,
		log:         cfg.Log.WithName("mesosbridge"),
		m:           m,
		codec:       codec,
		do:          hc.Do,
		transports:  transports,
		events:      make(chan Event, cfg.EventBuffer),
		kills:       newKillTracker(cfg.KillRetry, cfg.KillMaxRetry),
		sessChanged: make(chan struct{}),
		leader:      cfg.Masters[0],
		runCtx:      context.Background(),
	}
	return c, nil
}

// closeIdle drops every lane's idle connections.
func (c *Client) closeIdle() {
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
}

// Events delivers everything the master says, in order. Closed when Run returns.
func (c *Client) Events() <-chan Event { return c.events }

// FrameworkID is the current framework id ("" before the first SUBSCRIBED).
func (c *Client) FrameworkID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frameworkID
}

// Subscribed reports whether a stream is up.
func (c *Client) Subscribed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// Leader is the scheduler endpoint of the master the bridge believes leads.
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Run loads the framework id, subscribes, and keeps the subscription up (following
// the leading master, resubscribing after failures with jittered backoff) until ctx
// ends (nil), the framework is removed (ErrFrameworkRemoved) or the master refuses
// the credentials (ErrUnauthenticated). Events is closed when Run returns. Run may
// be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("mesosbridge: Run called twice")
	}
	defer close(c.events)
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.reviveTimer != nil {
			c.reviveTimer.Stop()
			c.reviveTimer = nil
		}
		c.mu.Unlock()
		c.bg.Wait()
	}()

	if c.cfg.NewFramework {
		c.log.Info("starting a new framework as asked; any stored framework id is ignored")
	} else {
		id, err := c.loadFrameworkID(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrFrameworkRemoved) {
				c.emit(ctx, Event{Type: EventFrameworkRemoved, Error: err.Error()})
			}
			return err
		}
		c.mu.Lock()
		c.frameworkID, c.savedID = id, id
		c.mu.Unlock()
		if id != "" {
			c.log.Info("loaded framework id", "frameworkID", id)
		}
	}

	bo := newBackoff(c.cfg.ReconnectBackoff, c.cfg.ReconnectMaxBackoff, 0.2)
	for {
		if ctx.Err() != nil {
			return nil
		}
		lasted, err := c.connectOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrFrameworkRemoved) || errors.Is(err, ErrUnauthenticated) {
			return err
		}
		if lasted >= c.cfg.ReconnectMaxBackoff {
			bo.Reset()
		}
		wait := bo.Next()
		if err != nil {
			c.log.Info("mesos subscription ended; reconnecting", "error", err.Error(), "after", wait.String())
		}
		if !sleepCtx(ctx.Done(), wait) {
			return nil
		}
	}
}

func (c *Client) loadFrameworkID(ctx context.Context) (string, error) {
	bo := newBackoff(c.cfg.ReconnectBackoff, c.cfg.ReconnectMaxBackoff, 0.2)
	for {
		lctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		id, err := c.cfg.State.LoadFrameworkID(lctx)
		cancel()
		if err == nil {
			return id, nil
		}
		if errors.Is(err, store.ErrFrameworkRemoved) || errors.Is(err, ErrFrameworkRemoved) {
			// Recorded earlier: say so again and stop; only the operator starts anew.
			c.m.frameworkRemoved.Set(1)
			c.log.Error(err, "THE MESOS MASTER REMOVED THIS FRAMEWORK EARLIER: start a new framework (converge serve --new-framework) once you have checked why")
			return "", fmt.Errorf("%w: %v", ErrFrameworkRemoved, err)
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("mesosbridge: load framework id: %w", err)
		}
		wait := bo.Next()
		c.log.Error(err, "cannot load the framework id; retrying", "after", wait.String())
		if !sleepCtx(ctx.Done(), wait) {
			return "", fmt.Errorf("mesosbridge: load framework id: %w", err)
		}
	}
}

// candidates lists the endpoints to try: the believed leader, then every master.
func (c *Client) candidates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []string{c.leader}
	for _, m := range c.cfg.Masters {
		if m != c.leader {
			out = append(out, m)
		}
	}
	return out
}

const maxRedirectHops = 4

// connectOnce tries the masters in turn (following redirects to the leader),
// runs the subscription it gets until it ends, and returns how long it was
// subscribed and why it ended.
func (c *Client) connectOnce(ctx context.Context) (time.Duration, error) {
	var errs []string
	for _, cand := range c.candidates() {
		ep := cand
		for hop := 0; hop <= maxRedirectHops; hop++ {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			att, err := c.subscribe(ctx, ep)
			if err == nil {
				return c.runSession(ctx, att)
			}
			var redir *redirectError
			if errors.As(err, &redir) {
				c.log.V(1).Info("master is not the leader; following the redirect", "master", ep, "leader", redir.leader)
				ep = redir.leader
				continue
			}
			if errors.Is(err, ErrUnauthenticated) {
				return 0, err
			}
			c.log.V(1).Info("cannot subscribe", "master", ep, "error", err.Error())
			errs = append(errs, err.Error())
			break
		}
	}
	return 0, fmt.Errorf("no Mesos master accepted the subscription: %s", strings.Join(errs, "; "))
}

// attempt is an established SUBSCRIBE stream not yet confirmed by SUBSCRIBED.
type attempt struct {
	endpoint string
	caller   calls.Caller
	resp     mesos.Response
	cancel   context.CancelFunc
}

// subscribe sends SUBSCRIBE to ep through a fresh httpsched caller bound to ep
// (mesos-go sends later calls to the URL a client was built with, so each leader
// gets its own client).
func (c *Client) subscribe(ctx context.Context, ep string) (*attempt, error) {
	c.m.reconnects.Inc()
	hc := httpcli.New(
		httpcli.Endpoint(ep),
		httpcli.Codec(c.codec),
		httpcli.Do(c.do),
	)
	caller := httpsched.NewCaller(hc,
		httpsched.MaxRedirects(0), // redirects are followed here, to track the leader
		httpsched.EndpointCandidates(func() string { return "" }),
	)
	call := calls.Subscribe(c.frameworkInfo())
	c.mu.Lock()
	if c.suppressed {
		call.Subscribe.SuppressedRoles = append([]string(nil), c.cfg.Roles...)
	}
	c.mu.Unlock()

	note := &callNote{}
	sctx, cancel := context.WithCancel(inLane(withNote(ctx, note), laneStream))
	resp, err := caller.Call(sctx, call)
	if loc := note.get(); loc != "" {
		cancel()
		if resp != nil {
			resp.Close()
		}
		c.m.calls.WithLabelValues("SUBSCRIBE", "redirect").Inc()
		leader, lerr := leaderFromLocation(loc, ep)
		if lerr != nil {
			return nil, fmt.Errorf("subscribe to %s: bad redirect: %w", ep, lerr)
		}
		return nil, &redirectError{leader: leader}
	}
	if err != nil {
		cancel()
		if resp != nil {
			resp.Close()
		}
		c.m.calls.WithLabelValues("SUBSCRIBE", "error").Inc()
		return nil, c.subscribeError(ep, err)
	}
	c.m.calls.WithLabelValues("SUBSCRIBE", "ok").Inc()
	return &attempt{endpoint: ep, caller: caller, resp: resp, cancel: cancel}, nil
}

func (c *Client) subscribeError(ep string, err error) error {
	switch {
	case apierrors.CodeNotAuthenticated.Matches(err):
		c.m.authenticationFails.Inc()
		if c.cfg.Secret == "" {
			return fmt.Errorf("%w: master %s requires authentication (HTTP 401): give a principal and a secret file: %v", ErrUnauthenticated, ep, err)
		}
		return fmt.Errorf("%w: master %s refused the credentials of principal %q (HTTP 401): check the principal and the secret file: %v", ErrUnauthenticated, ep, c.cfg.Principal, err)
	case apierrors.CodeUnsubscribed.Matches(err): // 403 on SUBSCRIBE: not authorized
		c.m.authenticationFails.Inc()
		return fmt.Errorf("%w: master %s does not authorize principal %q to subscribe (HTTP 403): %v", ErrUnauthenticated, ep, c.cfg.Principal, err)
	}
	return fmt.Errorf("subscribe to %s: %w", ep, err)
}

func (c *Client) frameworkInfo() *mesos.FrameworkInfo {
	c.mu.Lock()
	id := c.frameworkID
	c.mu.Unlock()
	failover := c.cfg.FailoverTimeout.Seconds()
	checkpoint := c.cfg.Checkpoint || !c.cfg.DisableCheckpoint
	// MULTI_ROLE: offers for every role of cfg.Roles, each allocated to one
	// (Offer.allocation_info), so resources reserved for a cluster's role
	// reach it; RESERVE, CREATE and LAUNCH then use that offer's role.
	info := &mesos.FrameworkInfo{
		User:            c.cfg.User,
		Name:            c.cfg.FrameworkName,
		FailoverTimeout: &failover,
		Checkpoint:      &checkpoint,
		Roles:           append([]string(nil), c.cfg.Roles...),
		Capabilities: []mesos.FrameworkInfo_Capability{
			{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE},
			{Type: mesos.FrameworkInfo_Capability_MULTI_ROLE},
		},
	}
	if c.cfg.Hostname != "" {
		h := c.cfg.Hostname
		info.Hostname = &h
	}
	if c.cfg.Principal != "" {
		p := c.cfg.Principal
		info.Principal = &p
	}
	if id != "" {
		info.ID = &mesos.FrameworkID{Value: id}
	}
	return info
}

type decoded struct {
	ev  *scheduler.Event
	err error
}

// runSession reads one subscription's events until it ends.
func (c *Client) runSession(ctx context.Context, att *attempt) (lasted time.Duration, err error) {
	sess := &session{endpoint: att.endpoint, caller: att.caller, abort: att.cancel}
	log := c.log.WithValues("master", att.endpoint)
	log.Info("subscription stream open")

	evCh := make(chan decoded)
	readerDone := make(chan struct{})
	sessDone := make(chan struct{}) // closed when this loop ends, so the reader never blocks
	go func() {
		defer close(readerDone)
		for {
			var e scheduler.Event
			err := att.resp.Decode(&e)
			var d decoded
			if err != nil {
				d.err = err
			} else {
				d.ev = &e
			}
			select {
			case evCh <- d:
			case <-sessDone:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var subscribedAt time.Time
	defer func() {
		close(sessDone)
		att.cancel()
		att.resp.Close()
		<-readerDone
		c.closeIdle()
		c.mu.Lock()
		wasUp := c.sess == sess
		if wasUp {
			c.sess = nil
			close(c.sessChanged)
			c.sessChanged = make(chan struct{})
		}
		c.mu.Unlock()
		if wasUp {
			lasted = time.Since(subscribedAt)
			c.m.subscribed.Set(0)
			c.emit(ctx, Event{Type: EventDisconnected, FrameworkID: c.FrameworkID()})
			log.Info("disconnected from mesos master", "reason", errString(err))
		}
	}()

	misses := time.Duration(c.cfg.HeartbeatMisses)
	watchdog := misses * defaultHeartbeatInterval
	hb := time.NewTimer(watchdog)
	defer hb.Stop()
	round := newReconcileRound(c.cfg.ReconcileBackoff, c.cfg.ReconcileMaxBackoff)
	reconTimer := time.NewTimer(time.Hour)
	reconTimer.Stop()
	defer reconTimer.Stop()
	var implicit <-chan time.Time
	var implicitTicker *time.Ticker
	defer func() {
		if implicitTicker != nil {
			implicitTicker.Stop()
		}
	}()
	killTick := c.cfg.KillRetry / 2
	if killTick > 500*time.Millisecond {
		killTick = 500 * time.Millisecond
	}
	kt := time.NewTicker(killTick)
	defer kt.Stop()
	var roundStart time.Time

	armRecon := func() {
		if d, ok := round.until(time.Now()); ok {
			reconTimer.Reset(d)
		} else {
			reconTimer.Stop()
		}
	}

	for {
		select {
		case <-ctx.Done():
			return lasted, ctx.Err()

		case <-hb.C:
			c.m.heartbeatTimeouts.Inc()
			log.Info("no event from the master for too long; dropping the stream", "missedHeartbeats", c.cfg.HeartbeatMisses, "watchdog", watchdog.String())
			return lasted, fmt.Errorf("heartbeat lost: no event from %s for %s", att.endpoint, watchdog)

		case d := <-evCh:
			if d.err != nil {
				return lasted, fmt.Errorf("event stream from %s: %w", att.endpoint, d.err)
			}
			e := d.ev
			c.m.events.WithLabelValues(e.GetType().String()).Inc()
			switch e.GetType() {
			case scheduler.Event_SUBSCRIBED:
				sub := e.GetSubscribed()
				if iv := sub.GetHeartbeatIntervalSeconds(); iv > 0 {
					watchdog = misses * time.Duration(iv*float64(time.Second))
				}
				fid := sub.GetFrameworkID().GetValue()
				if err := c.persistFrameworkID(ctx, fid); err != nil {
					return lasted, err
				}
				c.mu.Lock()
				c.frameworkID = fid
				if c.leader != att.endpoint {
					c.m.leaderChanges.Inc()
					c.leader = att.endpoint
				}
				c.sess = sess
				close(c.sessChanged)
				c.sessChanged = make(chan struct{})
				c.mu.Unlock()
				subscribedAt = time.Now()
				c.m.subscribed.Set(1)
				log.Info("subscribed", "frameworkID", fid, "heartbeatInterval", sub.GetHeartbeatIntervalSeconds())
				if !c.emit(ctx, Event{Type: EventSubscribed, FrameworkID: fid}) {
					return lasted, ctx.Err()
				}

				// Explicit reconciliation of the ledger's non-terminal tasks.
				roundStart = time.Now()
				tasks := round.begin(roundStart, c.cfg.ReconcileTasks())
				if len(tasks) == 0 {
					c.m.reconcileRounds.Inc()
					c.m.reconcileDuration.Observe(0)
					if !c.emit(ctx, Event{Type: EventReconciled, FrameworkID: fid}) {
						return lasted, ctx.Err()
					}
				} else {
					log.Info("explicit reconciliation started", "tasks", len(tasks))
					c.background(ctx, "reconcile", func(cctx context.Context) error { return c.Reconcile(cctx, tasks) })
					armRecon()
				}
				// Kills in flight are re-issued to this master at once.
				if ks := c.kills.restart(time.Now()); len(ks) > 0 {
					c.reissueKills(ctx, ks)
				}
				if implicitTicker == nil {
					implicitTicker = time.NewTicker(c.cfg.ImplicitReconcileInterval)
					implicit = implicitTicker.C
				}

			case scheduler.Event_HEARTBEAT:

			case scheduler.Event_OFFERS:
				offers := e.GetOffers().GetOffers()
				if len(offers) > 0 && !c.emit(ctx, Event{Type: EventOffers, FrameworkID: c.FrameworkID(), Offers: offers}) {
					return lasted, ctx.Err()
				}

			case scheduler.Event_RESCIND:
				if !c.emit(ctx, Event{Type: EventRescind, FrameworkID: c.FrameworkID(), OfferID: e.GetRescind().GetOfferID()}) {
					return lasted, ctx.Err()
				}

			case scheduler.Event_UPDATE:
				st := e.GetUpdate().GetStatus()
				taskID := st.TaskID.Value
				// TASK_UNKNOWN: the master knows neither the task nor its agent
				// (the answer to a KILL of such a task); no KILL can reach it.
				if (IsTerminal(st.GetState()) || st.GetState() == mesos.TASK_UNKNOWN) && c.kills.done(taskID) {
					c.m.killsOutstanding.Set(float64(c.kills.len()))
				}
				completed := round.observe(taskID)
				if !c.emit(ctx, Event{Type: EventUpdate, FrameworkID: c.FrameworkID(), Status: &st, AgentID: st.GetAgentID().GetValue()}) {
					return lasted, ctx.Err()
				}
				if completed {
					dur := time.Since(roundStart)
					c.m.reconcileRounds.Inc()
					c.m.reconcileDuration.Observe(dur.Seconds())
					log.Info("explicit reconciliation finished", "duration", dur.String())
					armRecon()
					if !c.emit(ctx, Event{Type: EventReconciled, FrameworkID: c.FrameworkID()}) {
						return lasted, ctx.Err()
					}
				}

			case scheduler.Event_MESSAGE:
				msg := e.GetMessage()
				if !c.emit(ctx, Event{Type: EventMessage, FrameworkID: c.FrameworkID(),
					AgentID: msg.AgentID.Value, ExecutorID: msg.ExecutorID.Value,
					Message: &Message{AgentID: msg.AgentID.Value, ExecutorID: msg.ExecutorID.Value, Data: msg.GetData()}}) {
					return lasted, ctx.Err()
				}

			case scheduler.Event_FAILURE:
				f := e.GetFailure()
				ev := Event{Type: EventFailure, FrameworkID: c.FrameworkID(), AgentID: f.GetAgentID().GetValue(), ExecutorID: f.GetExecutorID().GetValue()}
				if f.Status != nil {
					s := *f.Status
					ev.ExitStatus = &s
				}
				if !c.emit(ctx, ev) {
					return lasted, ctx.Err()
				}

			case scheduler.Event_ERROR:
				msg := e.GetError().GetMessage()
				if isFrameworkRemoved(msg) {
					return lasted, c.frameworkRemoved(ctx, msg)
				}
				log.Info("error event from the master", "message", msg)
				if !c.emit(ctx, Event{Type: EventError, FrameworkID: c.FrameworkID(), Error: msg}) {
					return lasted, ctx.Err()
				}
				// mesos-go drops the stream after ERROR; the read loop ends next.

			default:
				log.V(1).Info("ignoring event", "type", e.GetType().String())
			}
			hb.Reset(watchdog)

		case <-reconTimer.C:
			if tasks := round.due(time.Now()); len(tasks) > 0 {
				log.Info("explicit reconciliation: asking again for tasks that have not answered", "tasks", len(tasks))
				c.background(ctx, "reconcile", func(cctx context.Context) error { return c.Reconcile(cctx, tasks) })
			}
			armRecon()

		case <-implicit:
			log.V(1).Info("implicit reconciliation")
			c.background(ctx, "reconcile", func(cctx context.Context) error { return c.Reconcile(cctx, nil) })

		case <-kt.C:
			if ks := c.kills.due(time.Now()); len(ks) > 0 {
				c.reissueKills(ctx, ks)
			}
		}
	}
}

func (c *Client) persistFrameworkID(ctx context.Context, fid string) error {
	if fid == "" {
		return errors.New("SUBSCRIBED without a framework id")
	}
	c.mu.Lock()
	saved := c.savedID
	c.mu.Unlock()
	if fid == saved {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	if err := c.cfg.State.SaveFrameworkID(sctx, fid); err != nil {
		// Keep the id in memory: the next SUBSCRIBE uses it, so the framework (and its
		// tasks) survive; it is reported only once it is durable.
		c.mu.Lock()
		c.frameworkID = fid
		c.mu.Unlock()
		return fmt.Errorf("persist framework id %s: %w", fid, err)
	}
	c.mu.Lock()
	c.savedID = fid
	c.mu.Unlock()
	c.log.Info("framework id persisted", "frameworkID", fid)
	return nil
}

func (c *Client) frameworkRemoved(ctx context.Context, msg string) error {
	fid := c.FrameworkID()
	c.m.frameworkRemoved.Set(1)
	c.log.Error(ErrFrameworkRemoved, "THE MESOS MASTER REMOVED THIS FRAMEWORK: its tasks are gone; start a new framework (converge serve --new-framework) once you have checked why",
		"frameworkID", fid, "message", msg)
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.CallTimeout)
	defer cancel()
	if err := c.cfg.State.MarkFrameworkRemoved(mctx, msg); err != nil {
		c.log.Error(err, "cannot record that the framework was removed", "frameworkID", fid)
	}
	c.emit(ctx, Event{Type: EventFrameworkRemoved, FrameworkID: fid, Error: msg})
	return fmt.Errorf("%w: framework %s: %s", ErrFrameworkRemoved, fid, msg)
}

// isFrameworkRemoved recognises the master's ERROR messages for a removed
// framework ("Framework has been removed", torn down, ...), not a failover.
func isFrameworkRemoved(msg string) bool {
	m := strings.ToLower(msg)
	if strings.Contains(m, "failed over") {
		return false
	}
	return strings.Contains(m, "framework") &&
		(strings.Contains(m, "removed") || strings.Contains(m, "torn down") || strings.Contains(m, "teardown"))
}

// emit delivers ev unless ctx ends first.
func (c *Client) emit(ctx context.Context, ev Event) bool {
	select {
	case c.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// background runs a call off the session loop; errors are logged.
func (c *Client) background(ctx context.Context, what string, f func(context.Context) error) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		if err := f(ctx); err != nil && ctx.Err() == nil {
			c.log.Info("background call failed", "call", what, "error", err.Error())
		}
	}()
}

func (c *Client) reissueKills(ctx context.Context, ks []pendingKill) {
	c.background(ctx, "kill", func(cctx context.Context) error {
		var errs []error
		for _, k := range ks {
			if !c.kills.tracked(k.TaskID) {
				continue // terminal meanwhile
			}
			c.log.V(1).Info("re-issuing KILL", "taskID", k.TaskID, "agentID", k.AgentID)
			if err := c.send(cctx, calls.Kill(k.TaskID, k.AgentID)); err != nil {
				errs = append(errs, fmt.Errorf("kill %s: %w", k.TaskID, err))
			}
		}
		return errors.Join(errs...)
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// redirectError: the master answered 307; leader is the endpoint to use.
type redirectError struct{ leader string }

func (e *redirectError) Error() string { return "redirected to the leading master " + e.leader }

// callNote carries, through a request's context, the Location of a 307 answer
// (mesos-go turns a redirect into an error whose URL it does not expose).
type callNote struct {
	mu       sync.Mutex
	location string
}

func (n *callNote) set(loc string) {
	n.mu.Lock()
	n.location = loc
	n.mu.Unlock()
}

func (n *callNote) get() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.location
}

type noteKey struct{}

func withNote(ctx context.Context, n *callNote) context.Context {
	return context.WithValue(ctx, noteKey{}, n)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// basicAuth adds HTTP basic credentials to every request (on a copy: a
// RoundTripper must not change the caller's request).
func basicAuth(rt http.RoundTripper, user, secret string) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		r := req.Clone(req.Context())
		r.SetBasicAuth(user, secret)
		return rt.RoundTrip(r)
	})
}

// noteRedirects records a 307's Location in the request's callNote.
func noteRedirects(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		res, err := rt.RoundTrip(req)
		if err == nil && res.StatusCode == http.StatusTemporaryRedirect {
			if n, ok := req.Context().Value(noteKey{}).(*callNote); ok {
				if loc := res.Header.Get("Location"); loc != "" {
					n.set(loc)
				}
			}
		}
		return res, err
	})
}
