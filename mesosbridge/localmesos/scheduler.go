package localmesos

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

const (
	headerStreamID = "Mesos-Stream-Id"
	maxBodyBytes   = 64 << 20
)

// serveScheduler is POST /api/v1/scheduler, answering as src/master/http.cpp does.
func (m *Mesos) serveScheduler(ms *master, w http.ResponseWriter, r *http.Request) {
	if !postOnly(w, r) {
		return
	}
	if ms != nil && !m.redirectIfNotLeader(ms, w) {
		return
	}
	var call scheduler.Call
	codec, body, ok := m.readCall(w, r, &call)
	if !ok {
		return
	}
	msg := ""
	if _, known := scheduler.Call_Type_name[int32(call.Type)]; !known || !hasField(codec, body, "type", 2) {
		// proto2 keeps an unknown enum number as an unknown field: no type
		msg = "Expecting 'type' to be present"
	} else {
		msg = validateCall(&call)
	}
	if msg != "" {
		http.Error(w, "Failed to validate scheduler::Call: "+msg, http.StatusBadRequest)
		return
	}
	if call.Type == scheduler.Call_SUBSCRIBE {
		m.serveSubscribe(w, r, &call, codec)
		return
	}
	m.mu.Lock()
	fw := m.frameworks[call.FrameworkID.Value]
	switch {
	case fw == nil:
		m.mu.Unlock()
		http.Error(w, "Framework cannot be found", http.StatusBadRequest)
		return
	case !fw.connected:
		m.mu.Unlock()
		http.Error(w, "Framework is not subscribed", http.StatusForbidden)
		return
	}
	sid := r.Header.Get(headerStreamID)
	if sid == "" {
		m.mu.Unlock()
		http.Error(w, "All non-subscribe calls should include the 'Mesos-Stream-Id' header", http.StatusBadRequest)
		return
	}
	if sid != fw.stream.id {
		m.mu.Unlock()
		http.Error(w, fmt.Sprintf("The stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s", sid, fw.id), http.StatusBadRequest)
		return
	}
	code, msg := m.handleCall(fw, &call)
	m.mu.Unlock()
	switch code {
	case http.StatusAccepted:
		w.WriteHeader(http.StatusAccepted)
	case http.StatusOK:
		w.WriteHeader(http.StatusOK)
	case http.StatusNotImplemented:
		w.WriteHeader(code)
	default:
		http.Error(w, msg, code)
	}
}

// redirectIfNotLeader answers 307 from a non-leading master; true if ms leads.
func (m *Mesos) redirectIfNotLeader(ms *master, w http.ResponseWriter) bool {
	m.mu.Lock()
	leader := m.masters[m.leader]
	m.mu.Unlock()
	if leader == ms {
		return true
	}
	w.Header().Set("Location", "//"+leader.hostport()+"/api/v1/scheduler")
	w.WriteHeader(http.StatusTemporaryRedirect)
	return false
}

// postOnly answers a request that is not a POST with 405, as Mesos's
// API endpoints do, and reports whether it was one.
func postOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", "POST")
	http.Error(w, "Expecting a 'POST' request, received '"+r.Method+"'", http.StatusMethodNotAllowed)
	return false
}

// readCall authenticates a master API call, reads its body and parses it
// into call; on failure it has answered (401, 400, 415).
func (m *Mesos) readCall(w http.ResponseWriter, r *http.Request, call encoding.Unmarshaler) (encoding.Codec, []byte, bool) {
	if !m.authorized(w, r) {
		return encoding.Codec{}, nil, false
	}
	codec, body, ok := readBody(w, r)
	if !ok {
		return encoding.Codec{}, nil, false
	}
	if msg := parseCall(codec, body, call); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return encoding.Codec{}, nil, false
	}
	return codec, body, true
}

func (m *Mesos) authorized(w http.ResponseWriter, r *http.Request) bool {
	if m.opts.Principal == "" && m.opts.Secret == "" {
		return true
	}
	u, p, ok := r.BasicAuth()
	if ok && subtle.ConstantTimeCompare([]byte(u), []byte(m.opts.Principal)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(m.opts.Secret)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="mesos"`)
	http.Error(w, "Unauthorized", http.StatusUnauthorized)
	return false
}

// readBody checks Content-Type (missing 400, not exactly one of the two media types
// 415) and reads the body.
func readBody(w http.ResponseWriter, r *http.Request) (encoding.Codec, []byte, bool) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		http.Error(w, "Expecting 'Content-Type' to be present", http.StatusBadRequest)
		return encoding.Codec{}, nil, false
	}
	codec, ok := codecs.ByMediaType[encoding.MediaType(ct)]
	if !ok {
		http.Error(w, fmt.Sprintf("Expecting 'Content-Type' of %s or %s", codecs.MediaTypeJSON, codecs.MediaTypeProtobuf), http.StatusUnsupportedMediaType)
		return encoding.Codec{}, nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		http.Error(w, "Failed to read body: "+err.Error(), http.StatusBadRequest)
		return encoding.Codec{}, nil, false
	}
	return codec, body, true
}

func decodeMessage(codec encoding.Codec, body []byte, u encoding.Unmarshaler) (err error) {
	if len(bytes.TrimSpace(body)) == 0 && codec.Type == codecs.MediaTypeJSON {
		return fmt.Errorf("empty body")
	}
	// mesos-go's generated protobuf decoders panic on some malformed input (a
	// length varint that overflows to a negative slice bound); a master answers
	// such a body with 400, never by dying.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed %s body: %v", codec.Type, p)
		}
	}()
	return codec.NewDecoder(encoding.SourceReader(bytes.NewReader(body))).Decode(u)
}

// parseCall decodes a call body (a scheduler::Call, or a master::Call of the
// operator API) as Master::Http::scheduler and Master::Http::api do, with their
// messages: a protobuf body that does not parse (required fields included) is
// "Failed to parse body into Call protobuf"; a JSON one is either not JSON or
// does not convert into a Call (a wrong type, an unknown enum name, a required
// field missing).
func parseCall(codec encoding.Codec, body []byte, call encoding.Unmarshaler) string {
	if codec.Type == codecs.MediaTypeProtobuf {
		if decodeMessage(codec, body, call) != nil {
			return "Failed to parse body into Call protobuf"
		}
		return ""
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "Failed to parse body into JSON: " + err.Error()
	}
	if _, ok := v.(map[string]any); !ok {
		return "Failed to convert JSON into Call protobuf: Expecting a JSON object"
	}
	if err := decodeMessage(codec, body, call); err != nil {
		return "Failed to convert JSON into Call protobuf: " + err.Error()
	}
	if missing := missingRequired(reflect.TypeOf(call), body); len(missing) > 0 {
		return "Failed to convert JSON into Call protobuf: Missing required fields: " + strings.Join(missing, ", ")
	}
	return ""
}

// hasField tells a missing field from one set to its zero value (an explicit UNKNOWN).
func hasField(codec encoding.Codec, body []byte, jsonName string, num uint64) bool {
	if codec.Type == codecs.MediaTypeJSON {
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			return false
		}
		v, ok := obj[jsonName]
		return ok && string(v) != "null"
	}
	b := body
	for len(b) > 0 {
		key, n := proto.DecodeVarint(b)
		if n == 0 {
			return false
		}
		b = b[n:]
		if key>>3 == num {
			return true
		}
		switch key & 7 {
		case 0:
			_, n = proto.DecodeVarint(b)
			if n == 0 {
				return false
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return false
			}
			b = b[8:]
		case 2:
			l, n := proto.DecodeVarint(b)
			if n == 0 || uint64(len(b)-n) < l {
				return false
			}
			b = b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return false
			}
			b = b[4:]
		default:
			return false
		}
	}
	return false
}

// negotiate picks the event encoding from Accept: JSON if acceptable, else protobuf;
// no Accept means JSON.
func negotiate(r *http.Request) (encoding.Codec, bool) {
	accepts := r.Header.Values("Accept")
	if len(accepts) == 0 {
		return codecs.ByMediaType[codecs.MediaTypeJSON], true
	}
	var json, pb bool
	for _, h := range accepts {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
				continue
			}
			switch mt {
			case "application/json", "application/*", "*/*":
				json = true
			case "application/x-protobuf":
				pb = true
			}
		}
	}
	switch {
	case json:
		return codecs.ByMediaType[codecs.MediaTypeJSON], true
	case pb:
		return codecs.ByMediaType[codecs.MediaTypeProtobuf], true
	}
	return encoding.Codec{}, false
}

func hasCapability(fi *mesos.FrameworkInfo, c mesos.FrameworkInfo_Capability_Type) bool {
	for _, x := range fi.Capabilities {
		if x.Type == c {
			return true
		}
	}
	return false
}

func frameworkRoles(fi *mesos.FrameworkInfo) []string {
	if hasCapability(fi, mesos.FrameworkInfo_Capability_MULTI_ROLE) {
		return append([]string(nil), fi.Roles...)
	}
	if fi.Role != nil {
		return []string{*fi.Role}
	}
	return []string{"*"}
}

// serveSubscribe answers SUBSCRIBE: a 200 RecordIO stream, even when the framework
// is rejected (then the stream carries one ERROR event and closes).
func (m *Mesos) serveSubscribe(w http.ResponseWriter, r *http.Request, call *scheduler.Call, _ encoding.Codec) {
	fi := call.Subscribe.FrameworkInfo
	if p := m.opts.Principal; p != "" {
		// validation::scheduler::call::validate; an authenticated framework
		// without a principal gets the authenticated one (Master::Http::scheduler).
		if fi.Principal != nil && *fi.Principal != p {
			http.Error(w, fmt.Sprintf("Failed to validate scheduler::Call: Authenticated principal '%s' does not match principal '%s' set in `FrameworkInfo`", p, *fi.Principal), http.StatusBadRequest)
			return
		}
		fi.Principal = &p
	}
	out, ok := negotiate(r)
	if !ok {
		http.Error(w, "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'", http.StatusNotAcceptable)
		return
	}
	if r.Header.Get(headerStreamID) != "" {
		http.Error(w, "Subscribe calls should not include the 'Mesos-Stream-Id' header", http.StatusBadRequest)
		return
	}
	s := newStream(uuidString(newUUID()), out)
	s.interval = m.opts.HeartbeatInterval
	s.heartbeat = func() encoding.Marshaler { return &scheduler.Event{Type: scheduler.Event_HEARTBEAT} }

	m.mu.Lock()
	fw := m.subscribe(s, fi, call.Subscribe.SuppressedRoles)
	m.mu.Unlock()

	w.Header().Set("Content-Type", out.Type.ContentType())
	w.Header().Set(headerStreamID, s.id)
	w.Header().Set("Cache-Control", "no-cache")
	s.serve(w, r, m.stop)

	if fw != nil {
		m.mu.Lock()
		m.streamEnded(fw, s)
		m.mu.Unlock()
	}
}

// subscribe registers or fails over a framework onto stream s. It returns nil when
// the framework is rejected (s then carries one ERROR event and closes).
func (m *Mesos) subscribe(s *stream, fi *mesos.FrameworkInfo, suppressed []string) *framework {
	reject := func(msg string) *framework {
		s.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: msg}})
		s.close()
		return nil
	}
	if msg := validateFrameworkInfo(fi); msg != "" {
		return reject(msg)
	}
	var fw *framework
	if fi.ID != nil && fi.ID.Value != "" {
		if _, gone := m.removed[fi.ID.Value]; gone {
			return reject("Framework has been removed")
		}
		fw = m.frameworks[fi.ID.Value]
	}
	if msg := validateSuppressedRoles(fi, suppressed); msg != "" {
		return reject(msg)
	}
	info := *fi
	if fw != nil {
		// Master::_subscribe: user and checkpoint are kept, a new principal
		// is refused.
		preserveImmutableFields(fw.info, &info)
		if msg := validateFrameworkUpdate(&fw.info, &info); msg != "" {
			return reject(msg)
		}
	}
	if fw == nil {
		id := ""
		if fi.ID != nil && fi.ID.Value != "" {
			id = fi.ID.Value // an id this master does not know: accepted as is
		} else {
			id = fmt.Sprintf("%s-%04d", m.masters[m.leader].id, m.nextFw)
			m.nextFw++
		}
		info.ID = &mesos.FrameworkID{Value: id}
		fw = &framework{
			id:           id,
			tasks:        map[string]*task{},
			suppressed:   map[string]bool{},
			filters:      map[string]filter{},
			offers:       map[string]*offer{},
			registeredAt: time.Now(),
		}
		m.frameworks[id] = fw
		m.fwOrder = append(m.fwOrder, fw)
		m.log.Info("framework registered", "framework", id, "name", fi.Name)
	} else {
		info.ID = &mesos.FrameworkID{Value: fw.id}
		if fw.stream != nil {
			old := fw.stream
			old.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework failed over"}})
			old.close()
		}
		if fw.failoverTimer != nil {
			fw.failoverTimer.Stop()
			fw.failoverTimer = nil
		}
		m.discardOffers(fw, false)
		m.log.Info("framework failed over", "framework", fw.id)
	}
	fw.info = info
	fw.roles = frameworkRoles(&info)
	fw.multiRole = hasCapability(&info, mesos.FrameworkInfo_Capability_MULTI_ROLE)
	fw.partitionAware = hasCapability(&info, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	fw.suppressed = map[string]bool{}
	for _, r := range suppressed {
		fw.suppressed[r] = true
	}
	fw.stream = s
	fw.connected = true

	hb := m.opts.HeartbeatInterval.Seconds()
	ms := m.masters[m.leader]
	s.send(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID:              &mesos.FrameworkID{Value: fw.id},
		HeartbeatIntervalSeconds: &hb,
		MasterInfo:               m.masterInfo(ms),
	}})
	s.send(&scheduler.Event{Type: scheduler.Event_HEARTBEAT})
	// Agents resend every unacknowledged update at once to a failed-over framework.
	for _, t := range fw.tasks {
		if len(t.pending) > 0 {
			t.resendIval = m.opts.ResendInterval
			m.forward(t)
		}
	}
	return fw
}

func (m *Mesos) masterInfo(ms *master) *mesos.MasterInfo {
	host := ms.hostname
	port := uint32(ms.port)
	version := "1.11.0"
	pid := "master@" + ms.hostport()
	return &mesos.MasterInfo{
		ID:       ms.id,
		IP:       ipv4ToUint32(host),
		Port:     &port,
		PID:      &pid,
		Hostname: &host,
		Version:  &version,
		Address:  &mesos.Address{Hostname: &host, IP: &host, Port: int32(ms.port)},
	}
}

// streamEnded runs when a SUBSCRIBE connection ends: if it was the framework's
// current stream, the framework is disconnected and kept for its failover timeout.
func (m *Mesos) streamEnded(fw *framework, s *stream) {
	if fw.stream != s {
		return
	}
	m.disconnect(fw)
}

func (m *Mesos) disconnect(fw *framework) { m.disconnectFramework(fw, true) }

// disconnectFramework deactivates a framework; with removal, it is removed after its
// failover timeout. After a master failover the new master only knows frameworks as
// "recovered" (from the agents) and keeps them until they re-subscribe.
func (m *Mesos) disconnectFramework(fw *framework, removal bool) {
	if fw.stream != nil {
		fw.stream.close()
	}
	fw.stream = nil
	if !fw.connected {
		return
	}
	fw.connected = false
	m.discardOffers(fw, false)
	timeout := time.Duration(0)
	if fw.info.FailoverTimeout != nil && *fw.info.FailoverTimeout > 0 {
		timeout = time.Duration(*fw.info.FailoverTimeout * float64(time.Second))
	}
	m.log.Info("framework disconnected", "framework", fw.id, "failoverTimeout", timeout)
	if m.closed || !removal {
		return
	}
	fw.failoverTimer = time.AfterFunc(timeout, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !fw.connected && m.frameworks[fw.id] == fw && !m.closed {
			m.removeFramework(fw, "failover timeout elapsed")
		}
	})
}

// removeFramework kills the framework's tasks and executors and forgets it; its id
// can never subscribe again.
func (m *Mesos) removeFramework(fw *framework, why string) {
	m.log.Info("framework removed", "framework", fw.id, "reason", why)
	if fw.failoverTimer != nil {
		fw.failoverTimer.Stop()
	}
	m.discardOffers(fw, false)
	if fw.stream != nil {
		// Framework::disconnect closes the stream; no event says why (a
		// re-SUBSCRIBE learns "Framework has been removed").
		fw.stream.close()
		fw.stream = nil
	}
	fw.connected = false
	for _, t := range fw.tasks {
		// Master::removeFramework: a master-generated TASK_KILLED, kept in
		// the task's history (not sent: the framework is gone).
		if !isTerminal(t.state) {
			msg := "Framework " + fw.id + " removed"
			st := mesos.TaskStatus{TaskID: t.info.TaskID, State: mesos.TASK_KILLED.Enum(), Source: mesos.SOURCE_MASTER.Enum(),
				Reason: mesos.REASON_FRAMEWORK_REMOVED.Enum(), Message: &msg, AgentID: &mesos.AgentID{Value: t.agent.id}, Timestamp: ptrFloat(now())}
			t.state = mesos.TASK_KILLED
			t.record(st)
		}
		m.destroyTask(t)
	}
	for _, a := range m.agents {
		for k, e := range a.executors {
			if e.fw == fw {
				m.destroyExecutor(e)
				delete(a.executors, k)
			}
		}
	}
	delete(m.frameworks, fw.id)
	for i, f := range m.fwOrder {
		if f == fw {
			m.fwOrder = append(m.fwOrder[:i:i], m.fwOrder[i+1:]...)
			break
		}
	}
	m.removed[fw.id] = why
	fw.unregisteredAt = time.Now()
	m.completedFws = append(m.completedFws, fw)
	if len(m.completedFws) > maxCompletedFrameworks {
		m.completedFws = append([]*framework(nil), m.completedFws[len(m.completedFws)-maxCompletedFrameworks:]...)
	}
}

// maxCompletedFrameworks is the master's --max_completed_frameworks default.
const maxCompletedFrameworks = 50

// handleCall runs one validated non-SUBSCRIBE call; m.mu is held.
func (m *Mesos) handleCall(fw *framework, c *scheduler.Call) (int, string) {
	switch c.Type {
	case scheduler.Call_TEARDOWN:
		m.removeFramework(fw, "torn down")
	case scheduler.Call_ACCEPT:
		m.accept(fw, c.Accept)
	case scheduler.Call_DECLINE:
		m.decline(fw, c.Decline.OfferIDs, c.Decline.Filters)
	case scheduler.Call_ACCEPT_INVERSE_OFFERS, scheduler.Call_DECLINE_INVERSE_OFFERS:
		// no maintenance schedules: no inverse offers exist
	case scheduler.Call_REVIVE:
		var roles []string
		if c.Revive != nil {
			roles = c.Revive.Roles
		}
		m.revive(fw, roles)
	case scheduler.Call_SUPPRESS:
		var roles []string
		if c.Suppress != nil {
			roles = c.Suppress.Roles
		}
		m.suppress(fw, roles)
	case scheduler.Call_KILL:
		m.kill(fw, c.Kill)
	case scheduler.Call_SHUTDOWN:
		m.shutdownExecutor(fw, c.Shutdown.AgentID.Value, c.Shutdown.ExecutorID.Value)
	case scheduler.Call_ACKNOWLEDGE:
		m.acknowledge(fw, c.Acknowledge)
	case scheduler.Call_ACKNOWLEDGE_OPERATION_STATUS, scheduler.Call_RECONCILE_OPERATIONS:
		// no operation feedback: nothing is pending
	case scheduler.Call_RECONCILE:
		m.reconcile(fw, c.Reconcile.Tasks)
	case scheduler.Call_MESSAGE:
		m.frameworkMessage(fw, c.Message)
	case scheduler.Call_REQUEST:
		// ignored, as by Mesos's allocator
	case scheduler.Call_UPDATE_FRAMEWORK:
		if msg := m.updateFramework(fw, c.UpdateFramework); msg != "" {
			return http.StatusBadRequest, msg
		}
		return http.StatusOK, ""
	default: // UNKNOWN: Mesos answers 501 with an empty body
		return http.StatusNotImplemented, ""
	}
	return http.StatusAccepted, ""
}

func (m *Mesos) updateFramework(fw *framework, u *scheduler.Call_UpdateFramework) string {
	fi := u.FrameworkInfo
	if msg := validateFrameworkInfo(&fi); msg != "" {
		return "Supplied FrameworkInfo is not valid: " + msg
	}
	if msg := validateFrameworkUpdate(&fw.info, &fi); msg != "" {
		return "FrameworkInfo update is not valid: " + msg
	}
	if msg := validateSuppressedRoles(&fi, u.SuppressedRoles); msg != "" {
		return "'UpdateFramework' call is not valid: " + msg
	}
	newRoles := frameworkRoles(&fi)
	keep := map[string]bool{}
	for _, r := range newRoles {
		keep[r] = true
	}
	for _, o := range fw.offers {
		if !keep[o.role] {
			m.rescind(o, true)
		}
	}
	fw.info = fi
	fw.roles = newRoles
	fw.multiRole = hasCapability(&fi, mesos.FrameworkInfo_Capability_MULTI_ROLE)
	fw.partitionAware = hasCapability(&fi, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	fw.suppressed = map[string]bool{}
	for _, r := range u.SuppressedRoles {
		fw.suppressed[r] = true
	}
	return ""
}

func ipv4ToUint32(host string) uint32 {
	var a, b, c, d uint32
	if n, _ := fmt.Sscanf(host, "%d.%d.%d.%d", &a, &b, &c, &d); n != 4 {
		return 0
	}
	// Mesos stores the IP in network byte order read as a little-endian integer.
	return a | b<<8 | c<<16 | d<<24
}
