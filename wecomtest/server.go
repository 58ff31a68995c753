package wecomtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultCorpID is the corp id of a server built without WithCorp.
const DefaultCorpID = "wwfakecorp0000001"

// Body size limits. A request body over the limit is answered with WeCom's
// error (45001 for media/upload, 40058 otherwise), never read whole.
const (
	maxMediaSize     = 20 << 20             // media/upload type=file limit (20 MiB)
	maxMultipartBody = maxMediaSize + 1<<20 // the file plus multipart overhead
	maxJSONBody      = 1 << 20              // every JSON endpoint
)

// Option configures a Server. Options never make NewServer fail: out-of-range
// values are clamped and nil or empty values ignored.
type Option func(*config)

type config struct {
	corpID, corpSecret string
	now                func() time.Time
	tokenTTL           time.Duration
	stepDelay          time.Duration
	minBlockSize       int
	appCallback        *callbackTarget
	cbRetries          int
	cbRetryDelay       time.Duration
	cbTimeout          time.Duration
	logger             *slog.Logger
	faultSeed          uint64
	maxExportJobs      int
}

// WithCorp sets the corp id and the secret gettoken accepts. The defaults are
// DefaultCorpID and a random secret. Empty values are ignored.
func WithCorp(corpID, corpSecret string) Option {
	return func(c *config) {
		if corpID != "" {
			c.corpID = corpID
		}
		if corpSecret != "" {
			c.corpSecret = corpSecret
		}
	}
}

// WithClock replaces time.Now for everything that reads a wall clock: token
// expiry, the 3-day media TTL, the 2-hour export URL expiry, timestamps in
// responses, callbacks and recorded requests. Job stepping keeps using real
// timers (see WithJobStepDelay). A nil func is ignored.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithTokenTTL sets the lifetime of access tokens (expires_in). Default
// 7200 s. Values under one second are ignored.
func WithTokenTTL(d time.Duration) Option {
	return func(c *config) {
		if d >= time.Second {
			c.tokenTTL = d
		}
	}
}

// WithJobStepDelay sets the real-time delay between the processing steps of
// an import or export job (status 1 → 2 → 3, percentage rising in about 10
// steps). Default 1 ms; negative values mean 0.
func WithJobStepDelay(d time.Duration) Option {
	return func(c *config) { c.stepDelay = max(d, 0) }
}

// WithMinBlockSize lowers (or raises) the smallest block_size export jobs
// accept, 10^4 by default, so tests can get many data files from a small
// directory. It is clamped to [1, 10^6].
func WithMinBlockSize(n int) Option {
	return func(c *config) { c.minBlockSize = min(max(n, 1), maxBlockSize) }
}

// WithAppCallback configures the app callback that export jobs report to
// (a batch_job_result event with JobType export_*; export requests carry no
// callback of their own). token and encodingAESKey are used as in §8 of the
// protocol; an invalid key disables the callback.
func WithAppCallback(url, token, encodingAESKey string) Option {
	return func(c *config) {
		if url == "" {
			c.appCallback = nil
			return
		}
		c.appCallback = &callbackTarget{URL: url, Token: token, EncodingAESKey: encodingAESKey}
	}
}

// WithCallbackRetries sets how many times a callback POST that did not get
// HTTP 200 is retried, and the delay between attempts. Default 3 retries
// (1+3 attempts) 50 ms apart. Negative values mean 0.
func WithCallbackRetries(n int, delay time.Duration) Option {
	return func(c *config) {
		c.cbRetries = max(n, 0)
		c.cbRetryDelay = max(delay, 0)
	}
}

// WithCallbackTimeout sets the per-attempt timeout of callback POSTs
// (WeCom: 5 s, the default). Values ≤ 0 are ignored.
func WithCallbackTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.cbTimeout = d
		}
	}
}

// WithLogger makes the server log what it does (requests, job steps,
// callback attempts). The default is silent. Secrets and tokens are not logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithFaultSeed seeds the generator InjectRandomFaults draws from, making a
// load test's fault pattern reproducible. The default seed is random.
func WithFaultSeed(seed uint64) Option {
	return func(c *config) { c.faultSeed = seed }
}

// WithMaxExportJobs sets how many export jobs (with their data files) are
// kept; get_result for an older job answers 40089. Default 20, minimum 1.
func WithMaxExportJobs(n int) Option {
	return func(c *config) { c.maxExportJobs = max(n, 1) }
}

// Server is a fake WeCom server listening on 127.0.0.1 (random port). It
// implements gettoken, media/upload, batch/{syncuser,replaceuser,
// replaceparty,getresult,invite}, export/{simple_user,user,department,
// taguser,get_result}, the export data-file downloads and batch_job_result
// callbacks, over an in-memory directory. All methods are safe for
// concurrent use.
//
// Routing: every API lives under /cgi-bin/. An unknown path is answered
// HTTP 404 with a JSON envelope {"errcode":40058,...} (WeCom's "invalid
// parameter" code, so clients that only look at errcode still fail cleanly);
// a known path with the wrong HTTP method is answered HTTP 200 with errcode
// 40058 naming the expected method. Every JSON response carries errcode (a
// number) and errmsg; error errmsgs have WeCom's shape "<text>, hint: [<id>],
// from ip: <ip>, more info at https://open.work.weixin.qq.com/devtool/query?e=<code>".
// No input makes the server panic or answer 500 unless a fault says so.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:<port>", to pass to a client
	// as its base URL (paths are "/cgi-bin/...").
	URL string
	// CorpID is the corp id gettoken accepts and callbacks are addressed to.
	CorpID string
	// CorpSecret is the only corpsecret gettoken accepts.
	CorpSecret string

	cfg       config
	ln        net.Listener
	hs        *http.Server
	serveDone chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // job and callback goroutines
	closeOnce sync.Once
	signKey   []byte // HMAC key of the pre-signed export URLs
	log       *slog.Logger

	mu         sync.Mutex
	closed     bool
	tokens     map[string]*tokenState
	curToken   string
	media      map[string]*mediaFile
	dir        *directory
	imports    importJobs
	exports    exportJobs
	requests   []Request
	faults     map[string][]*faultRule
	randFaults map[string]*randomFault
	rng        *mrand.Rand
	deliveries []Delivery
	hintSeq    int
	active     int // running jobs and deliveries, for WaitIdle
}

// NewServer starts a fake WeCom server on 127.0.0.1 with a random port. Its
// directory holds the root department (id 1) and nothing else. It panics
// only if no loopback port can be opened, as httptest.NewServer does.
func NewServer(opts ...Option) *Server {
	cfg := config{
		corpID:        DefaultCorpID,
		corpSecret:    randomToken(24),
		now:           time.Now,
		tokenTTL:      7200 * time.Second,
		stepDelay:     time.Millisecond,
		minBlockSize:  10000,
		cbRetries:     3,
		cbRetryDelay:  50 * time.Millisecond,
		cbTimeout:     5 * time.Second,
		logger:        slog.New(slog.DiscardHandler),
		maxExportJobs: 20,
	}
	var seed [16]byte
	rand.Read(seed[:])
	cfg.faultSeed = uint64(seed[0]) | uint64(seed[1])<<8 | uint64(seed[2])<<16 | uint64(seed[3])<<24 |
		uint64(seed[4])<<32 | uint64(seed[5])<<40 | uint64(seed[6])<<48 | uint64(seed[7])<<56
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.appCallback != nil {
		if err := cfg.appCallback.prepare(); err != nil {
			cfg.logger.Warn("wecomtest: app callback disabled", "err", err)
			cfg.appCallback = nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if ln, err = net.Listen("tcp6", "[::1]:0"); err != nil {
			panic(fmt.Sprintf("wecomtest: failed to listen on a loopback port: %v", err))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		URL:        "http://" + ln.Addr().String(),
		CorpID:     cfg.corpID,
		CorpSecret: cfg.corpSecret,
		cfg:        cfg,
		ln:         ln,
		serveDone:  make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		signKey:    randomBytes(32),
		log:        cfg.logger,
		tokens:     map[string]*tokenState{},
		media:      map[string]*mediaFile{},
		dir:        newDirectory(),
		imports:    newImportJobs(),
		exports:    newExportJobs(),
		faults:     map[string][]*faultRule{},
		randFaults: map[string]*randomFault{},
		rng:        mrand.New(mrand.NewPCG(cfg.faultSeed, 0x9e3779b97f4a7c15)),
	}
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		defer close(s.serveDone)
		_ = s.hs.Serve(ln)
	}()
	return s
}

// Close shuts the server down: it closes the listener and every connection,
// cancels running jobs, delayed answers and callback deliveries, and waits
// for all of the server's goroutines to return. It is safe to call twice.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		_ = s.hs.Close()
		<-s.serveDone
		s.wg.Wait()
	})
}

// goTracked runs fn on a goroutine that Close waits for. It reports false
// (and does not run fn) once the server is closed. Callers hold no lock.
func (s *Server) goTracked(fn func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.active++
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			s.active--
			s.mu.Unlock()
			s.wg.Done()
		}()
		fn()
	}()
	return true
}

// WaitIdle blocks until no import or export job is running and no callback
// delivery is in flight, or until timeout. It reports whether the server
// became idle. Handy before asserting on CallbackDeliveries.
func (s *Server) WaitIdle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		n := s.active
		s.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// sleep waits d of real time; it reports false if the server closed first.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Server) now() time.Time { return s.cfg.now() }

// route is one API endpoint.
type route struct {
	method  string
	limit   int64
	handler func(s *Server, w http.ResponseWriter, r *http.Request, body []byte)
}

var routes = map[string]route{
	"/cgi-bin/gettoken":           {http.MethodGet, maxJSONBody, (*Server).handleGetToken},
	"/cgi-bin/media/upload":       {http.MethodPost, maxMultipartBody, (*Server).handleMediaUpload},
	"/cgi-bin/batch/syncuser":     {http.MethodPost, maxJSONBody, (*Server).handleSyncUser},
	"/cgi-bin/batch/replaceuser":  {http.MethodPost, maxJSONBody, (*Server).handleReplaceUser},
	"/cgi-bin/batch/replaceparty": {http.MethodPost, maxJSONBody, (*Server).handleReplaceParty},
	"/cgi-bin/batch/getresult":    {http.MethodGet, maxJSONBody, (*Server).handleGetResult},
	"/cgi-bin/batch/invite":       {http.MethodPost, maxJSONBody, (*Server).handleInvite},
	"/cgi-bin/export/simple_user": {http.MethodPost, maxJSONBody, (*Server).handleExportSimpleUser},
	"/cgi-bin/export/user":        {http.MethodPost, maxJSONBody, (*Server).handleExportUser},
	"/cgi-bin/export/department":  {http.MethodPost, maxJSONBody, (*Server).handleExportDepartment},
	"/cgi-bin/export/taguser":     {http.MethodPost, maxJSONBody, (*Server).handleExportTagUser},
	"/cgi-bin/export/get_result":  {http.MethodGet, maxJSONBody, (*Server).handleExportGetResult},
}

var errBodyTooLarge = errors.New("body too large")

// ServeHTTP implements http.Handler: it records the request, applies any
// injected fault, and dispatches to the endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("wecomtest: handler panic (bug in the fake server)", "path", r.URL.Path, "panic", fmt.Sprint(v))
			s.writeErr(w, r, -1, "system error")
		}
	}()
	path := r.URL.Path
	rt, known := routes[path]
	isFile := strings.HasPrefix(path, ExportFilePath)
	limit := int64(maxJSONBody)
	if known {
		limit = rt.limit
	}
	body, err := readLimited(r.Body, r.ContentLength, limit)
	s.record(r, body)
	if s.applyFault(w, r, path, isFile) {
		return
	}
	if err != nil {
		if known && path == "/cgi-bin/media/upload" && errors.Is(err, errBodyTooLarge) {
			s.writeErr(w, r, 45001, "")
			return
		}
		s.writeErr(w, r, 40058, "request body unreadable or larger than 1 MB")
		return
	}
	switch {
	case isFile:
		s.handleExportFile(w, r, nil)
	case !known:
		s.writeErrStatus(w, r, http.StatusNotFound, 40058, "unknown api path "+path)
	case r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead):
		s.writeErr(w, r, 40058, "wrong http method, want "+rt.method)
	default:
		rt.handler(s, w, r, body)
	}
}

// readLimited reads at most limit bytes (errBodyTooLarge beyond), into an
// exact-size buffer when the Content-Length is known.
func readLimited(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	if contentLength > limit {
		return nil, errBodyTooLarge
	}
	if contentLength > 0 {
		b := make([]byte, contentLength)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// Request is one HTTP request the server received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
	Time   time.Time // on the server's clock
}

func (s *Server) record(r *http.Request, body []byte) {
	q := r.URL.Query()
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: q, Body: body, Time: s.now()})
	s.mu.Unlock()
	s.log.Debug("wecomtest: request", "method", r.Method, "path", r.URL.Path)
}

// Requests returns every request received since the start or the last
// ResetRequests, in arrival order (copies; bodies included).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		q := url.Values{}
		for k, v := range r.Query {
			q[k] = append([]string(nil), v...)
		}
		out[i] = Request{Method: r.Method, Path: r.Path, Query: q, Body: bytes.Clone(r.Body), Time: r.Time}
	}
	return out
}

// CallCount counts the requests received for path, e.g.
// CallCount("/cgi-bin/gettoken"). A path ending in "/" (such as
// ExportFilePath) counts every request under it.
func (s *Server) CallCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Path == path || strings.HasSuffix(path, "/") && strings.HasPrefix(r.Path, path) {
			n++
		}
	}
	return n
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

// envelope is the errcode/errmsg pair every response carries.
type envelope struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

var okEnvelope = envelope{ErrCode: 0, ErrMsg: "ok"}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"errcode":-1,"errmsg":"system error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, code int, detail string) {
	s.writeErrStatus(w, r, http.StatusOK, code, detail)
}

func (s *Server) writeErrStatus(w http.ResponseWriter, r *http.Request, status, code int, detail string) {
	s.writeJSON(w, status, envelope{ErrCode: code, ErrMsg: s.errMsg(r, code, detail)})
}

// errMsg builds WeCom's diagnostic errmsg shape.
func (s *Server) errMsg(r *http.Request, code int, detail string) string {
	text := errText(code)
	if detail != "" {
		text += ": " + detail
	}
	ip := "127.0.0.1"
	if r != nil {
		if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			ip = h
		}
	}
	s.mu.Lock()
	s.hintSeq++
	seq := s.hintSeq
	s.mu.Unlock()
	return fmt.Sprintf("%s, hint: [%d_%d_%s], from ip: %s, more info at https://open.work.weixin.qq.com/devtool/query?e=%d",
		text, s.now().Unix(), seq, randomHex(16), ip, code)
}

var errTexts = map[int]string{
	-1:     "system busy",
	40001:  "invalid credential",
	40003:  "invalid userid",
	40004:  "invalid media type",
	40005:  "invalid type",
	40006:  "invalid file size",
	40007:  "invalid media_id",
	40013:  "invalid corpid",
	40014:  "invalid access_token",
	40058:  "invalid Request Parameter",
	40068:  "invalid tagid",
	40088:  "jobid not found",
	40089:  "batch result expired",
	40092:  "import file has invalid content",
	41001:  "access_token missing",
	41002:  "corpid missing",
	41004:  "corpsecret missing",
	41006:  "media_id missing",
	42001:  "access_token expired",
	44001:  "empty media data",
	45001:  "media size out of limit, file size must be less than 20M",
	45009:  "api freq out of limit",
	45026:  "触发删除用户数的保护",
	45033:  "api concurrent out of limit",
	60103:  "mobile invalid",
	60104:  "mobile existed",
	60105:  "email invalid",
	60106:  "email existed",
	60110:  "user department size exceed limit",
	60112:  "invalid username",
	60123:  "invalid party id",
	60124:  "invalid parent party id",
	60125:  "invalid party name",
	60127:  "department missing",
	60129:  "mobile and email can not be both empty",
	60132:  "is_leader_in_dept size not match department size",
	81002:  "department level exceed limit",
	82001:  "user, party and tag all empty",
	301013: "invalid telephone",
	302003: "duplicate userid in import file",
	302004: "invalid organization tree",
	302005: "import fail, please retry later",
	302006: "duplicate partyid in import file",
	302007: "duplicate department name under the same parent",
	302008: "there is already an import job running",
}

func errText(code int) string {
	if t, ok := errTexts[code]; ok {
		return t
	}
	return fmt.Sprintf("error %d", code)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
