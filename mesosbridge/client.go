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

// runSession reads one subscription's events until it ends, and returns how
// long it was subscribed (0 if SUBSCRIBED never came) and why it ended.
func (c *Client) runSession(ctx context.Context, att *attempt) (lasted time.Duration, err error) {
	s := c.openSession(ctx, att)
	defer func() { lasted = s.close(err) }()
	return 0, s.loop()
}

// sessionLoop is one subscription: its stream's reader, and the timers its
// loop keeps (the heartbeat watchdog, the explicit reconciliation round,
// implicit reconciliation, kill retries). Only the loop's goroutine uses it.
type sessionLoop struct {
	c    *Client
	ctx  context.Context
	att  *attempt
	sess *session
	log  logr.Logger

	evCh       chan decoded
	readerDone chan struct{}
	sessDone   chan struct{} // closed when the loop ends, so the reader never blocks

	subscribedAt time.Time
	misses       time.Duration // HeartbeatMisses
	watchdog     time.Duration // no event for this long drops the stream
	hb           *time.Timer

	round      *reconcileRound
	roundStart time.Time
	reconTimer *time.Timer

	implicitTicker *time.Ticker // started at the first SUBSCRIBED
	implicit       <-chan time.Time
	kt             *time.Ticker // kill retries
}

// openSession starts reading att's stream and arms the session's timers.
func (c *Client) openSession(ctx context.Context, att *attempt) *sessionLoop {
	s := &sessionLoop{
		c: c, ctx: ctx, att: att,
		sess:       &session{endpoint: att.endpoint, caller: att.caller, abort: att.cancel},
		log:        c.log.WithValues("master", att.endpoint),
		evCh:       make(chan decoded),
		readerDone: make(chan struct{}),
		sessDone:   make(chan struct{}),
	}
	s.log.Info("subscription stream open")
	go s.read()

	s.misses = time.Duration(c.cfg.HeartbeatMisses)
	s.watchdog = s.misses * defaultHeartbeatInterval
	s.hb = time.NewTimer(s.watchdog)
	s.round = newReconcileRound(c.cfg.ReconcileBackoff, c.cfg.ReconcileMaxBackoff)
	s.reconTimer = time.NewTimer(time.Hour)
	s.reconTimer.Stop()
	killTick := c.cfg.KillRetry / 2
	if killTick > 500*time.Millisecond {
		killTick = 500 * time.Millisecond
	}
	s.kt = time.NewTicker(killTick)
	return s
}

// read decodes the stream's events for the loop until the stream fails
// (the error is the last thing sent) or the loop ends.
func (s *sessionLoop) read() {
	defer close(s.readerDone)
	for {
		var e scheduler.Event
		err := s.att.resp.Decode(&e)
		var d decoded
		if err != nil {
			d.err = err
		} else {
			d.ev = &e
		}
		select {
		case s.evCh <- d:
		case <-s.sessDone:
			return
		}
		if err != nil {
			return
		}
	}
}

// close stops the timers, drops the stream and waits for its reader, and,
// if the session was subscribed, reports the disconnection (err: why) and
// returns how long it lasted.
func (s *sessionLoop) close(err error) (lasted time.Duration) {
	c := s.c
	s.kt.Stop()
	if s.implicitTicker != nil {
		s.implicitTicker.Stop()
	}
	s.reconTimer.Stop()
	s.hb.Stop()
	close(s.sessDone)
	s.att.cancel()
	s.att.resp.Close()
	<-s.readerDone
	c.closeIdle()
	c.mu.Lock()
	wasUp := c.sess == s.sess
	if wasUp {
		c.setSessionLocked(nil)
	}
	c.mu.Unlock()
	if !wasUp {
		return 0
	}
	lasted = time.Since(s.subscribedAt)
	c.m.subscribed.Set(0)
	c.emit(s.ctx, Event{Type: EventDisconnected, FrameworkID: c.FrameworkID()})
	s.log.Info("disconnected from mesos master", "reason", errString(err))
	return lasted
}

// setSessionLocked makes sess the current session (nil: none) and wakes
// the calls waiting for a change (c.mu held).
func (c *Client) setSessionLocked(sess *session) {
	c.sess = sess
	close(c.sessChanged)
	c.sessChanged = make(chan struct{})
}

// loop runs the session until the context ends, the heartbeat is lost, the
// stream fails or an event ends it.
func (s *sessionLoop) loop() error {
	c := s.c
	for {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()

		case <-s.hb.C:
			c.m.heartbeatTimeouts.Inc()
			s.log.Info("no event from the master for too long; dropping the stream", "missedHeartbeats", c.cfg.HeartbeatMisses, "watchdog", s.watchdog.String())
			return fmt.Errorf("heartbeat lost: no event from %s for %s", s.att.endpoint, s.watchdog)

		case d := <-s.evCh:
			if d.err != nil {
				return fmt.Errorf("event stream from %s: %w", s.att.endpoint, d.err)
			}
			if err := s.handle(d.ev); err != nil {
				return err
			}
			s.hb.Reset(s.watchdog)

		case <-s.reconTimer.C:
			if tasks := s.round.due(time.Now()); len(tasks) > 0 {
				s.log.Info("explicit reconciliation: asking again for tasks that have not answered", "tasks", len(tasks))
				c.background(s.ctx, "reconcile", func(cctx context.Context) error { return c.Reconcile(cctx, tasks) })
			}
			s.armRecon()

		case <-s.implicit:
			s.log.V(1).Info("implicit reconciliation")
			c.background(s.ctx, "reconcile", func(cctx context.Context) error { return c.Reconcile(cctx, nil) })

		case <-s.kt.C:
			if ks := c.kills.due(time.Now()); len(ks) > 0 {
				c.reissueKills(s.ctx, ks)
			}
		}
	}
}

// armRecon sets the reconciliation timer to the round's next retry, if any.
func (s *sessionLoop) armRecon() {
	if d, ok := s.round.until(time.Now()); ok {
		s.reconTimer.Reset(d)
	} else {
		s.reconTimer.Stop()
	}
}

// emit delivers ev to the controller; the error (the context's) ends the
// session.
func (s *sessionLoop) emit(ev Event) error {
	if !s.c.emit(s.ctx, ev) {
		return s.ctx.Err()
	}
	return nil
}

// handle turns one scheduler event into the bridge's Events; an error ends
// the session.
func (s *sessionLoop) handle(e *scheduler.Event) error {
	c := s.c
	c.m.events.WithLabelValues(e.GetType().String()).Inc()
	switch e.GetType() {
	case scheduler.Event_SUBSCRIBED:
		return s.subscribed(e.GetSubscribed())

	case scheduler.Event_HEARTBEAT:

	case scheduler.Event_OFFERS:
		if offers := e.GetOffers().GetOffers(); len(offers) > 0 {
			return s.emit(Event{Type: EventOffers, FrameworkID: c.FrameworkID(), Offers: offers})
		}

	case scheduler.Event_RESCIND:
		return s.emit(Event{Type: EventRescind, FrameworkID: c.FrameworkID(), OfferID: e.GetRescind().GetOfferID()})

	case scheduler.Event_UPDATE:
		return s.update(e.GetUpdate().GetStatus())

	case scheduler.Event_MESSAGE:
		msg := e.GetMessage()
		return s.emit(Event{Type: EventMessage, FrameworkID: c.FrameworkID(),
			AgentID: msg.AgentID.Value, ExecutorID: msg.ExecutorID.Value,
			Message: &Message{AgentID: msg.AgentID.Value, ExecutorID: msg.ExecutorID.Value, Data: msg.GetData()}})

	case scheduler.Event_FAILURE:
		f := e.GetFailure()
		ev := Event{Type: EventFailure, FrameworkID: c.FrameworkID(), AgentID: f.GetAgentID().GetValue(), ExecutorID: f.GetExecutorID().GetValue()}
		if f.Status != nil {
			status := *f.Status
			ev.ExitStatus = &status
		}
		return s.emit(ev)

	case scheduler.Event_ERROR:
		msg := e.GetError().GetMessage()
		if isFrameworkRemoved(msg) {
			return c.frameworkRemoved(s.ctx, msg)
		}
		s.log.Info("error event from the master", "message", msg)
		// mesos-go drops the stream after ERROR; the read loop ends next.
		return s.emit(Event{Type: EventError, FrameworkID: c.FrameworkID(), Error: msg})

	default:
		s.log.V(1).Info("ignoring event", "type", e.GetType().String())
	}
	return nil
}

// subscribed takes SUBSCRIBED: the framework id is made durable before it
// is reported, calls go to this master from now on, and the ledger's tasks
// are reconciled and the kills in flight re-issued here.
func (s *sessionLoop) subscribed(sub *scheduler.Event_Subscribed) error {
	c := s.c
	if iv := sub.GetHeartbeatIntervalSeconds(); iv > 0 {
		s.watchdog = s.misses * time.Duration(iv*float64(time.Second))
	}
	fid := sub.GetFrameworkID().GetValue()
	if err := c.persistFrameworkID(s.ctx, fid); err != nil {
		return err
	}
	c.mu.Lock()
	c.frameworkID = fid
	if c.leader != s.att.endpoint {
		c.m.leaderChanges.Inc()
		c.leader = s.att.endpoint
	}
	c.setSessionLocked(s.sess)
	c.mu.Unlock()
	s.subscribedAt = time.Now()
	c.m.subscribed.Set(1)
	s.log.Info("subscribed", "frameworkID", fid, "heartbeatInterval", sub.GetHeartbeatIntervalSeconds())
	if err := s.emit(Event{Type: EventSubscribed, FrameworkID: fid}); err != nil {
		return err
	}
	if err := s.reconcileAll(fid); err != nil {
		return err
	}
	// Kills in flight are re-issued to this master at once.
	if ks := c.kills.restart(time.Now()); len(ks) > 0 {
		c.reissueKills(s.ctx, ks)
	}
	if s.implicitTicker == nil {
		s.implicitTicker = time.NewTicker(c.cfg.ImplicitReconcileInterval)
		s.implicit = s.implicitTicker.C
	}
	return nil
}

// reconcileAll starts the explicit reconciliation of the ledger's
// non-terminal tasks; with none, the cluster is reconciled at once.
func (s *sessionLoop) reconcileAll(fid string) error {
	c := s.c
	s.roundStart = time.Now()
	tasks := s.round.begin(s.roundStart, c.cfg.ReconcileTasks())
	if len(tasks) == 0 {
		c.m.reconcileRounds.Inc()
		c.m.reconcileDuration.Observe(0)
		return s.emit(Event{Type: EventReconciled, FrameworkID: fid})
	}
	s.log.Info("explicit reconciliation started", "tasks", len(tasks))
	c.background(s.ctx, "reconcile", func(cctx context.Context) error { return c.Reconcile(cctx, tasks) })
	s.armRecon()
	return nil
}

// update takes a task's status update: a terminal one ends its kill
// retries, and the last answer of an explicit round reports the
// reconciliation done, after the update itself.
func (s *sessionLoop) update(st mesos.TaskStatus) error {
	c := s.c
	taskID := st.TaskID.Value
	// TASK_UNKNOWN: the master knows neither the task nor its agent
	// (the answer to a KILL of such a task); no KILL can reach it.
	if (IsTerminal(st.GetState()) || st.GetState() == mesos.TASK_UNKNOWN) && c.kills.done(taskID) {
		c.m.killsOutstanding.Set(float64(c.kills.len()))
	}
	completed := s.round.observe(taskID)
	if err := s.emit(Event{Type: EventUpdate, FrameworkID: c.FrameworkID(), Status: &st, AgentID: st.GetAgentID().GetValue()}); err != nil {
		return err
	}
	if !completed {
		return nil
	}
	dur := time.Since(s.roundStart)
	c.m.reconcileRounds.Inc()
	c.m.reconcileDuration.Observe(dur.Seconds())
	s.log.Info("explicit reconciliation finished", "duration", dur.String())
	s.armRecon()
	return s.emit(Event{Type: EventReconciled, FrameworkID: c.FrameworkID()})
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
