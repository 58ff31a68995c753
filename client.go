package wecom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
)

// DefaultBaseURL is WeCom's API host. Paths are under /cgi-bin/.
const DefaultBaseURL = "https://qyapi.weixin.qq.com"

// DefaultMaxResponseSize bounds how much of a JSON response body is read.
// A batch/getresult of a 200,000-row import is about 12 MB.
const DefaultMaxResponseSize = 64 << 20

// maxResponseLimit is the largest WithMaxResponseSize accepted (1 TiB), so
// that the one-byte overshoot used to detect a too-large body cannot
// overflow.
const maxResponseLimit = 1 << 40

// Client talks to one WeCom corp with one app secret (for the batch APIs,
// the contact-sync secret: https://developer.work.weixin.qq.com/document/path/91039).
// It is safe for concurrent use; create one per (corp, secret) and share it.
type Client struct {
	corpID  string
	secret  string // never logged, never in an error
	baseURL string
	rc      *resty.Client
	log     *slog.Logger
	retry   RetryPolicy
	now     func() time.Time
	maxBody int64
	tokens  *tokenCache

	exportDir      string // where large export files are staged; "" = os.TempDir()
	minExportBlock int    // smallest ExportRequest.BlockSize accepted; tests lower it
}

type config struct {
	baseURL       string
	hc            *http.Client
	store         TokenStore
	logger        *slog.Logger
	retry         RetryPolicy
	now           func() time.Time
	refreshMargin time.Duration
	maxBody       int64
	exportDir     string
	err           error
}

// Option configures a Client.
type Option func(*config)

// WithBaseURL sets the API host, for example a wecomtest.Server's URL.
// The default is DefaultBaseURL; request paths are "/cgi-bin/...".
func WithBaseURL(u string) Option {
	return func(c *config) {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			c.err = fmt.Errorf("wecom: WithBaseURL: %q is not an http(s) URL", u)
			return
		}
		c.baseURL = strings.TrimRight(u, "/")
	}
}

// WithHTTPClient sets the *http.Client used for every request, including
// export file downloads. The default is a client with a 60 s timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) {
		if hc == nil {
			c.err = errors.New("wecom: WithHTTPClient: nil *http.Client")
			return
		}
		c.hc = hc
	}
}

// WithTokenStore sets where access tokens are kept. The default is an
// in-memory store private to the Client; use a shared store (package
// redisstore) so that replicas share one token.
func WithTokenStore(s TokenStore) Option {
	return func(c *config) {
		if s == nil {
			c.err = errors.New("wecom: WithTokenStore: nil TokenStore")
			return
		}
		c.store = s
	}
}

// WithLogger makes the Client log to l. The default is silent. Nothing
// logged ever contains an access_token, a corpsecret or an AES key.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// RetryPolicy says how often and how patiently a call is retried.
// Delays grow exponentially from MinDelay to MaxDelay with jitter.
// A zero field takes its default (3 attempts, 200 ms, 5 s).
type RetryPolicy struct {
	MaxAttempts int // attempts in total, including the first; 1 disables retries
	MinDelay    time.Duration
	MaxDelay    time.Duration
}

// DefaultRetryPolicy is used when WithRetry is not given.
var defaultRetry = RetryPolicy{MaxAttempts: 3, MinDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second}

// WithRetry sets the retry policy. Reads (batch/getresult,
// export/get_result, downloads, uploads) retry network errors, HTTP 5xx
// and errcodes -1, 6000, 45009, 45033. Job submissions retry only where
// WeCom surely did not execute the request: token errors, 45009, 45033.
func WithRetry(p RetryPolicy) Option {
	return func(c *config) {
		if p.MaxAttempts < 0 || p.MinDelay < 0 || p.MaxDelay < 0 || (p.MaxDelay > 0 && p.MinDelay > p.MaxDelay) {
			c.err = fmt.Errorf("wecom: WithRetry: invalid policy %+v", p)
			return
		}
		if p.MaxAttempts == 0 {
			p.MaxAttempts = defaultRetry.MaxAttempts
		}
		if p.MinDelay == 0 {
			p.MinDelay = defaultRetry.MinDelay
		}
		if p.MaxDelay == 0 {
			p.MaxDelay = max(defaultRetry.MaxDelay, p.MinDelay)
		}
		c.retry = p
	}
}

// WithClock sets the clock used for token expiry. For tests.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithTokenRefreshMargin sets how long before its expiry a cached token is
// replaced (default 5 minutes).
func WithTokenRefreshMargin(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.err = errors.New("wecom: WithTokenRefreshMargin: negative margin")
			return
		}
		c.refreshMargin = d
	}
}

// WithMaxResponseSize bounds how many bytes of a JSON response are read
// (default DefaultMaxResponseSize). A larger response is an error.
func WithMaxResponseSize(n int64) Option {
	return func(c *config) {
		if n <= 0 || n > maxResponseLimit {
			c.err = fmt.Errorf("wecom: WithMaxResponseSize: size must be in (0, %d]", int64(maxResponseLimit))
			return
		}
		c.maxBody = n
	}
}

// NewClient returns a Client for corpID using corpSecret. It validates its
// arguments and options and never panics; it makes no network call.
func NewClient(corpID, corpSecret string, opts ...Option) (*Client, error) {
	switch {
	case strings.TrimSpace(corpID) == "":
		return nil, errors.New("wecom: NewClient: corpID is empty")
	case strings.TrimSpace(corpSecret) == "":
		return nil, errors.New("wecom: NewClient: corpSecret is empty")
	case len(corpID) > 64 || strings.ContainsAny(corpID, " \t\r\n/?&#"):
		return nil, errors.New("wecom: NewClient: corpID has an invalid shape")
	case len(corpSecret) > 512 || strings.ContainsAny(corpSecret, " \t\r\n"):
		return nil, errors.New("wecom: NewClient: corpSecret has an invalid shape")
	}
	cfg := config{
		baseURL:       DefaultBaseURL,
		retry:         defaultRetry,
		now:           time.Now,
		refreshMargin: 5 * time.Minute,
		maxBody:       DefaultMaxResponseSize,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		o(&cfg)
		if cfg.err != nil {
			return nil, cfg.err
		}
	}
	if cfg.hc == nil {
		cfg.hc = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.store == nil {
		cfg.store = NewMemoryTokenStore()
	}
	// resty writes to the *http.Client it is given (a nil Transport is
	// replaced): hand it a copy, so a shared client such as
	// http.DefaultClient is never modified.
	hc := *cfg.hc
	if hc.Transport == nil {
		hc.Transport = http.DefaultTransport
	}
	rc := resty.NewWithClient(&hc)
	rc.SetLogger(quietRestyLogger{}) // resty must not print; our own logs are redacted
	rc.SetRetryCount(0)              // retries are ours: they know which calls are safe to repeat
	rc.SetHeader("User-Agent", "wecomkit-wecom-go")
	rc.SetPreRequestHook(attachStreamBody)
	c := &Client{
		corpID:  corpID,
		secret:  corpSecret,
		baseURL: cfg.baseURL,
		rc:      rc,
		log:     cfg.logger,
		retry:   cfg.retry,
		now:     cfg.now,
		maxBody: cfg.maxBody,

		exportDir:      cfg.exportDir,
		minExportBlock: MinExportBlockSize,
	}
	c.tokens = newTokenCache(c, cfg.store, storeKey(corpID, corpSecret), cfg.refreshMargin)
	return c, nil
}

// CorpID returns the corp id the Client was created with.
func (c *Client) CorpID() string { return c.corpID }

// storeKey names the cached token of (corpID, secret) in a TokenStore:
// "token:<corpID>:<hash>". It holds a hash of the secret, never the secret
// itself; a shared store adds its own namespace (redisstore: "wecom:").
func storeKey(corpID, secret string) string {
	h := sha256.Sum256([]byte(corpID + "\x00" + secret))
	return "token:" + corpID + ":" + hex.EncodeToString(h[:12])
}

// callKind decides which failures a call may retry.
type callKind int

const (
	// callRead is safe to repeat: getresult, get_result, downloads, uploads,
	// gettoken.
	callRead callKind = iota
	// callSubmit creates a job; it is retried only where WeCom surely did
	// not execute it.
	callSubmit
)

// apiCall is one WeCom API request.
type apiCall struct {
	method  string
	path    string // "/cgi-bin/..."
	query   url.Values
	body    any         // JSON body, when not nil
	upload  *uploadBody // multipart body, when not nil
	kind    callKind
	noToken bool // gettoken itself
}

// envelope is the errcode/errmsg pair on every WeCom response. errcode may
// arrive as a number or as a numeric string (wecom-api.md §1, [U]).
type envelope struct {
	ErrCode *flexInt `json:"errcode"`
	ErrMsg  string   `json:"errmsg"`
}

// flexInt decodes a JSON number or a string holding a decimal integer.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %.20q", string(b))
	}
	*f = flexInt(n)
	return nil
}

// ResponseError is a response WeCom (or something in between) sent that is
// not a WeCom JSON envelope: a non-2xx HTTP status, an HTML page, a
// truncated or oversized body.
type ResponseError struct {
	Path       string // API path, without query
	StatusCode int    // HTTP status
	Reason     string // what was wrong with it
	Snippet    string // the start of the body, for diagnosis
}

// Error names the path, the HTTP status and the reason; never a token.
func (e *ResponseError) Error() string {
	s := fmt.Sprintf("wecom: %s: HTTP %d: %s", e.Path, e.StatusCode, e.Reason)
	if e.Snippet != "" {
		s += fmt.Sprintf(" (body starts %q)", e.Snippet)
	}
	return s
}

// Temporary reports whether a retry may help (HTTP 5xx, 429).
func (e *ResponseError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
}

// call runs one API call through the pipeline: token, send, decode,
// classify, retry. out, when not nil, receives the JSON body; it is decoded
// even when errcode is not 0, so callers can read fields such as "type"
// next to an error.
func (c *Client) call(ctx context.Context, ac apiCall, out any) error {
	if ctx == nil {
		return errors.New("wecom: nil context")
	}
	var (
		attempt     = 0
		refreshed   = false
		lastErr     error
		retryCodeOK = retryableRead
	)
	if ac.kind == callSubmit {
		retryCodeOK = retryableSubmit
	}
	for {
		attempt++
		var tok string
		if !ac.noToken {
			t, err := c.tokens.get(ctx)
			if err != nil {
				return err
			}
			tok = t
		}
		err := c.send(ctx, ac, tok, out)
		if err == nil {
			return nil
		}
		lastErr = err
		var ae *APIError
		if errors.As(err, &ae) && ae.TokenExpired() && !ac.noToken && !refreshed {
			// The token we used is no longer good: drop exactly that one
			// and retry once with a fresh token. This retry is free.
			refreshed = true
			attempt--
			c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: access token rejected, refreshing",
				slog.String("path", ac.path), slog.Int("errcode", ae.Code))
			if ierr := c.tokens.invalidate(ctx, tok); ierr != nil {
				// Logged once, like every store failure: with the store
				// down, every caller failing together would log.
				c.tokens.warnStore("invalidate", ierr)
			}
			continue
		}
		if attempt >= c.retry.MaxAttempts || ctx.Err() != nil || !c.shouldRetry(ac.kind, err, retryCodeOK) {
			return lastErr
		}
		d := c.backoff(attempt)
		c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: retrying",
			slog.String("path", ac.path), slog.Int("attempt", attempt), slog.Duration("delay", d), slog.String("error", err.Error()))
		if err := sleepCtx(ctx, d); err != nil {
			return fmt.Errorf("%w (last error: %w)", err, lastErr)
		}
	}
}

func retryableRead(code int) bool {
	switch code {
	case CodeSystemBusy, CodeDataVersionConflict, CodeRateLimited, CodeConcurrencyLimited:
		return true
	}
	return false
}

func retryableSubmit(code int) bool {
	return code == CodeRateLimited || code == CodeConcurrencyLimited
}

// shouldRetry classifies an error of one attempt.
func (c *Client) shouldRetry(kind callKind, err error, codeOK func(int) bool) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return codeOK(ae.Code)
	}
	// The caller's ctx ending is checked by call, on ctx itself: an
	// error matching context.DeadlineExceeded may be the *http.Client's
	// own Timeout (net/http makes it match), which is a network error.
	var re *ResponseError
	if errors.As(err, &re) {
		return kind == callRead && re.Temporary()
	}
	var ne *NetworkError
	if errors.As(err, &ne) {
		// A submission may have reached WeCom; only a connection that was
		// never made is surely safe to repeat.
		return kind == callRead || ne.NotSent
	}
	return false
}

// backoff returns the delay before attempt+1: exponential from MinDelay,
// capped at MaxDelay, with jitter in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	return jitterBackoff(c.retry.MinDelay, c.retry.MaxDelay, attempt)
}

func jitterBackoff(minD, maxD time.Duration, attempt int) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// errDeadlineAhead is sleepCtx's answer to a sleep that would outlast
// ctx's deadline: it is context.DeadlineExceeded for errors.Is, yet tells
// a waiter that its ctx is, in effect, over although ctx.Err() is still nil.
var errDeadlineAhead = fmt.Errorf("%w", context.DeadlineExceeded)

// sleepCtx sleeps for d or until ctx is done. It does not start a sleep that
// would end after ctx's deadline.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		// Sleeping would outlast the deadline: give up now, as if it hit.
		if err := ctx.Err(); err != nil {
			return err
		}
		return errDeadlineAhead
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NetworkError is a request that got no HTTP response: a refused or
// dropped connection, a timeout. Its text never holds the request's query.
type NetworkError struct {
	Path    string
	NotSent bool // the connection was never established, so WeCom saw nothing
	Err     error
}

// Error names the path and the cause, without the request's query.
func (e *NetworkError) Error() string {
	return fmt.Sprintf("wecom: %s: %v", e.Path, e.Err)
}

// Unwrap returns the transport error (a *net.OpError, context.DeadlineExceeded, …).
func (e *NetworkError) Unwrap() error { return e.Err }

// netErr strips the URL (which holds the access_token) out of a transport
// error.
func netErr(path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	notSent := errors.As(err, &oe) && oe.Op == "dial"
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &NetworkError{Path: path, Err: err}
	}
	return &NetworkError{Path: path, NotSent: notSent, Err: &redactedError{msg: redact(err.Error()), err: err}}
}

// redactedError is a transport error whose text has been redacted; it
// still unwraps to the error itself, so errors.As finds a *net.OpError.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact blanks the access_token, corpsecret and signature values in s,
// whether a lower layer quoted a URL or s is the start of a JSON body.
func redact(s string) string {
	for _, key := range []string{"access_token=", "corpsecret=", "sign=", "signature="} {
		from := 0
		for {
			i := strings.Index(s[from:], key)
			if i < 0 {
				break
			}
			j := from + i + len(key)
			k := j
			for k < len(s) && s[k] != '&' && s[k] != ' ' && s[k] != '"' {
				k++
			}
			s = s[:j] + "REDACTED" + s[k:]
			from = j + len("REDACTED")
		}
	}
	// The same names as JSON members: a body snippet of a gettoken answer
	// holds `"access_token":"…"`.
	for _, key := range []string{`"access_token"`, `"corpsecret"`} {
		from := 0
		for {
			i := strings.Index(s[from:], key)
			if i < 0 {
				break
			}
			j := from + i + len(key)
			for j < len(s) && (s[j] == ' ' || s[j] == ':' || s[j] == '"' || s[j] == '\t') {
				j++
			}
			k := j
			for k < len(s) && s[k] != '"' && s[k] != ',' && s[k] != '}' {
				k++
			}
			s = s[:j] + "REDACTED" + s[k:]
			from = j + len("REDACTED")
		}
	}
	return s
}

// send makes one attempt.
func (c *Client) send(ctx context.Context, ac apiCall, token string, out any) error {
	req := c.rc.R().SetContext(ctx).SetDoNotParseResponse(true)
	q := url.Values{}
	for k, v := range ac.query {
		q[k] = v
	}
	if !ac.noToken {
		q.Set("access_token", token)
	}
	req.SetQueryParamsFromValues(q)
	switch {
	case ac.upload != nil:
		req.SetHeader("Content-Type", ac.upload.contentType)
		req.SetContext(context.WithValue(ctx, streamBodyKey{}, ac.upload))
	case ac.body != nil:
		b, err := json.Marshal(ac.body)
		if err != nil {
			return fmt.Errorf("wecom: %s: encoding request: %w", ac.path, err)
		}
		req.SetHeader("Content-Type", "application/json; charset=utf-8")
		req.SetBody(b)
	}
	start := time.Now()
	resp, err := req.Execute(ac.method, c.baseURL+ac.path)
	if err != nil {
		return netErr(ac.path, err)
	}
	raw := resp.RawBody()
	defer raw.Close()
	body, rerr := io.ReadAll(io.LimitReader(raw, c.maxBody+1))
	status := resp.StatusCode()
	c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: response",
		slog.String("method", ac.method), slog.String("path", ac.path), slog.Int("status", status),
		slog.Int("bytes", len(body)), slog.Duration("elapsed", time.Since(start)))
	if rerr != nil {
		return netErr(ac.path, rerr)
	}
	if int64(len(body)) > c.maxBody {
		return &ResponseError{Path: ac.path, StatusCode: status, Reason: fmt.Sprintf("response larger than %d bytes", c.maxBody)}
	}
	return decodeEnvelope(ac.path, status, body, out)
}

// decodeEnvelope checks the HTTP status and errcode of a response and
// decodes it into out.
func decodeEnvelope(path string, status int, body []byte, out any) error {
	if status < 200 || status > 299 {
		return &ResponseError{Path: path, StatusCode: status, Reason: http.StatusText(status), Snippet: snippet(body)}
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		reason := "response is not JSON"
		var se *json.SyntaxError
		trimmed := bytes.TrimSpace(body)
		switch {
		case len(trimmed) == 0:
			reason = "response body is empty"
		case errors.As(err, &se) && trimmed[0] == '{' && se.Offset >= int64(len(body)):
			reason = "response JSON is truncated"
		case trimmed[0] == '{':
			reason = "response JSON is malformed or errcode is not an integer"
		}
		return &ResponseError{Path: path, StatusCode: status, Reason: reason, Snippet: snippet(body)}
	}
	if env.ErrCode == nil {
		return &ResponseError{Path: path, StatusCode: status, Reason: "response has no errcode", Snippet: snippet(body)}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil && *env.ErrCode == 0 {
			return &ResponseError{Path: path, StatusCode: status, Reason: "response does not match the documented shape: " + err.Error(), Snippet: snippet(body)}
		}
	}
	if code := int(*env.ErrCode); code != 0 {
		return &APIError{Code: code, Message: env.ErrMsg, Path: path}
	}
	return nil
}

func snippet(b []byte) string {
	const n = 64
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[:n]
	}
	return redact(strings.ToValidUTF8(string(b), "?"))
}

// getJSON is a read: GET path?query.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, out any) error {
	return c.call(ctx, apiCall{method: http.MethodGet, path: path, query: query, kind: callRead}, out)
}

// postJSON POSTs body as JSON.
func (c *Client) postJSON(ctx context.Context, path string, body any, kind callKind, out any) error {
	return c.call(ctx, apiCall{method: http.MethodPost, path: path, body: body, kind: kind}, out)
}

// quietRestyLogger keeps resty from printing anything.
type quietRestyLogger struct{}

func (quietRestyLogger) Errorf(string, ...any) {}
func (quietRestyLogger) Warnf(string, ...any)  {}
func (quietRestyLogger) Debugf(string, ...any) {}

// streamBodyKey carries a streaming request body past resty: resty reads
// any io.Reader body fully into memory (to build GetBody), which would
// double a 20 MB upload. The body is attached to the *http.Request in the
// pre-request hook instead, with its length and a GetBody that replays it.
type streamBodyKey struct{}

func attachStreamBody(_ *resty.Client, r *http.Request) error {
	u, ok := r.Context().Value(streamBodyKey{}).(*uploadBody)
	if !ok {
		return nil
	}
	r.Body = io.NopCloser(u.reader())
	r.ContentLength = u.size()
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(u.reader()), nil }
	return nil
}
