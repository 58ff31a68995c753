package wecom

import (
	"bytes"
	"container/list"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// Errors of the callback layer, beside the sentinels in errors.go
// (ErrSignatureMismatch, ErrReceiverMismatch, ErrInvalidAESKey,
// ErrBadPadding). Match them with errors.Is.
var (
	// ErrMalformedCallback: a callback is not what the protocol describes —
	// a body that is not XML or has no Encrypt element, an Encrypt value that
	// is not base64 or not a whole number of AES blocks, a decrypted message
	// too short for its framing or whose length field overruns it, a
	// batch_job_result event without a JobId or with a non-numeric ErrCode.
	// See https://developer.work.weixin.qq.com/document/path/91144.
	ErrMalformedCallback = errors.New("wecom: malformed callback")
	// ErrNotBatchJobEvent: a decrypted callback message is not a
	// batch_job_result event (another event, or a plain message).
	// See https://developer.work.weixin.qq.com/document/path/90973.
	ErrNotBatchJobEvent = errors.New("wecom: callback message is not a batch_job_result event")
	// ErrNotExportJob: a batch_job_result event is for an import job, where
	// an export job (JobType "export_…") was expected.
	// See https://developer.work.weixin.qq.com/document/path/96298.
	ErrNotExportJob = errors.New("wecom: batch_job_result event is not for an export job")
)

// errStaleTimestamp is a callback whose signed timestamp lies outside the
// handler's tolerance (a replay, or a badly wrong clock).
var errStaleTimestamp = errors.New("wecom: callback timestamp outside tolerance")

// CallbackCrypto verifies, decrypts and encrypts WeCom callback messages
// (the WXBizMsgCrypt scheme): SHA-1 signatures over token, timestamp, nonce
// and data, compared in constant time; AES-256-CBC with a 32-byte PKCS#7
// padding; and the receiver id check. It is safe for concurrent use.
//
// See https://developer.work.weixin.qq.com/document/path/91144.
type CallbackCrypto struct {
	token      string
	key        []byte
	receiverID string
}

// NewCallbackCrypto returns a CallbackCrypto for one callback configuration:
// the Token and EncodingAESKey set in the WeCom admin console (or passed as
// callback.token / callback.encodingaeskey of a batch import), and the
// receiver id every decrypted message must name — the corpid for self-built
// apps and contact sync, the suiteid for third-party suites.
//
// token must not be empty (WeCom issues letters and digits, at most 32; any
// non-empty value is accepted). encodingAESKey must be 43 characters of
// [A-Za-z0-9], or errors.Is(err, ErrInvalidAESKey). receiverID must not be
// empty: an empty receiver id would accept messages meant for any other
// corp that shares the key, so there is no "don't check" mode.
// Errors never contain the token or the key.
//
// See https://developer.work.weixin.qq.com/document/path/91144.
func NewCallbackCrypto(token, encodingAESKey, receiverID string) (*CallbackCrypto, error) {
	if token == "" {
		return nil, errors.New("wecom: NewCallbackCrypto: token is empty")
	}
	key, err := wxcrypto.DecodeKey(encodingAESKey)
	if err != nil {
		return nil, fmt.Errorf("wecom: NewCallbackCrypto: %w", err)
	}
	if receiverID == "" {
		return nil, errors.New("wecom: NewCallbackCrypto: receiverID is empty (use the corpid)")
	}
	return &CallbackCrypto{token: token, key: key, receiverID: receiverID}, nil
}

// VerifyURL answers WeCom's URL verification (an HTTP GET with
// msg_signature, timestamp, nonce and echostr in the query, already
// URL-decoded): it checks the signature over echostr, decrypts it, checks the
// receiver id and returns the plain echo, which the handler must send back
// as the whole response body.
//
// Errors: ErrSignatureMismatch, ErrReceiverMismatch, ErrBadPadding, or
// ErrMalformedCallback (wrapping the wxcrypto cause).
//
// See https://developer.work.weixin.qq.com/document/path/91144.
func (cc *CallbackCrypto) VerifyURL(msgSignature, timestamp, nonce, echostr string) ([]byte, error) {
	if cc == nil {
		return nil, errors.New("wecom: VerifyURL on a nil CallbackCrypto")
	}
	if echostr == "" {
		return nil, fmt.Errorf("%w: empty echostr", ErrMalformedCallback)
	}
	return cc.open(msgSignature, timestamp, nonce, echostr)
}

// callbackEnvelope is the POST body: <xml><ToUserName/><AgentID/><Encrypt/></xml>.
type callbackEnvelope struct {
	ToUserName string `xml:"ToUserName"`
	AgentID    string `xml:"AgentID"`
	Encrypt    string `xml:"Encrypt"`
}

// DecryptMessage opens an event POST: it parses the XML envelope, checks
// msgSignature over the Encrypt value (constant time), decrypts it, checks
// the 4-byte length field and the receiver id, and returns the plaintext
// message XML. It does not judge the timestamp; NewCallbackHandler does.
//
// Errors: ErrSignatureMismatch, ErrReceiverMismatch, ErrBadPadding, or
// ErrMalformedCallback for a body that is not XML, has no Encrypt element,
// or whose Encrypt value is not base64 / whole AES blocks / a well-framed
// message.
//
// See https://developer.work.weixin.qq.com/document/path/91144.
func (cc *CallbackCrypto) DecryptMessage(msgSignature, timestamp, nonce string, body []byte) ([]byte, error) {
	if cc == nil {
		return nil, errors.New("wecom: DecryptMessage on a nil CallbackCrypto")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformedCallback)
	}
	if err := checkXMLDepth(body); err != nil {
		return nil, fmt.Errorf("%w: body is not XML: %v", ErrMalformedCallback, err)
	}
	var env callbackEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: body is not XML: %v", ErrMalformedCallback, err)
	}
	enc := strings.TrimSpace(env.Encrypt)
	if enc == "" {
		return nil, fmt.Errorf("%w: no Encrypt element", ErrMalformedCallback)
	}
	return cc.open(msgSignature, timestamp, nonce, enc)
}

// maxXMLDepth bounds the element nesting of callback XML. The envelope is
// 2 deep and a batch_job_result event 3.
const maxXMLDepth = 16

// checkXMLDepth rejects XML nested deeper than maxXMLDepth before
// encoding/xml unmarshals it: Unmarshal keeps state for every open element,
// about 90 bytes of allocation per input byte for a body of nothing but
// open tags, and the envelope is parsed before its signature is checked.
// RawToken keeps no per-element state, so this pass costs no more than
// the body's tokens. Undefined entities (there is no DTD support) fail
// here too.
func checkXMLDepth(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth++; depth > maxXMLDepth {
				return fmt.Errorf("elements nested deeper than %d", maxXMLDepth)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// open verifies the signature over enc, decrypts it and checks the receiver.
func (cc *CallbackCrypto) open(msgSignature, timestamp, nonce, enc string) ([]byte, error) {
	if !wxcrypto.VerifySignature(cc.token, timestamp, nonce, enc, msgSignature) {
		return nil, ErrSignatureMismatch
	}
	msg, rid, err := wxcrypto.DecryptMessage(cc.key, enc)
	switch {
	case errors.Is(err, wxcrypto.ErrBadPadding):
		return nil, fmt.Errorf("wecom: decrypt callback: %w", ErrBadPadding)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformedCallback, err)
	case rid != cc.receiverID:
		return nil, ErrReceiverMismatch
	}
	return msg, nil
}

// EncryptMessage encrypts msg for the receiver id and returns WeCom's
// encrypted reply XML:
//
//	<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature><TimeStamp>…</TimeStamp><Nonce><![CDATA[…]]></Nonce></xml>
//
// The 16-byte random prefix comes from crypto/rand. timestamp must be
// decimal digits (unix seconds) and nonce letters and digits, so that
// neither can break the XML. DecryptMessage accepts the result as a body,
// which makes it handy for building test callbacks too.
//
// See https://developer.work.weixin.qq.com/document/path/91144.
func (cc *CallbackCrypto) EncryptMessage(msg []byte, timestamp, nonce string) ([]byte, error) {
	if cc == nil {
		return nil, errors.New("wecom: EncryptMessage on a nil CallbackCrypto")
	}
	if !isDigits(timestamp) {
		return nil, errors.New("wecom: EncryptMessage: timestamp must be decimal digits")
	}
	if !isAlnum(nonce) {
		return nil, errors.New("wecom: EncryptMessage: nonce must be letters and digits")
	}
	enc, err := wxcrypto.EncryptMessage(cc.key, nil, msg, cc.receiverID)
	if err != nil {
		return nil, fmt.Errorf("wecom: EncryptMessage: %w", err)
	}
	sig := wxcrypto.Signature(cc.token, timestamp, nonce, enc)
	// enc is base64, sig hex, timestamp and nonce checked above: no escaping needed.
	out := make([]byte, 0, len(enc)+len(timestamp)+len(nonce)+len(sig)+160)
	out = append(out, "<xml><Encrypt><![CDATA["...)
	out = append(out, enc...)
	out = append(out, "]]></Encrypt><MsgSignature><![CDATA["...)
	out = append(out, sig...)
	out = append(out, "]]></MsgSignature><TimeStamp>"...)
	out = append(out, timestamp...)
	out = append(out, "</TimeStamp><Nonce><![CDATA["...)
	out = append(out, nonce...)
	out = append(out, "]]></Nonce></xml>"...)
	return out, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// BatchJobEvent is the batch_job_result event WeCom sends when an
// asynchronous job ends: an import (JobType sync_user, replace_user,
// invite_user, replace_party) or an export (export_user,
// export_simple_user, export_department, export_taguser or export_tag).
// ErrCode is the job-level result, 0 for success.
//
// See https://developer.work.weixin.qq.com/document/path/90973 (import)
// and https://developer.work.weixin.qq.com/document/path/96298 (export).
type BatchJobEvent struct {
	ToUserName   string    // the corpid
	FromUserName string    // "sys" for exports; do not rely on it
	CreateTime   time.Time // zero when the message carried none
	MsgType      string    // "event"
	Event        string    // "batch_job_result"
	JobID        string
	JobType      string
	ErrCode      int
	ErrMsg       string
}

// IsExport reports whether the event is for an export job (its JobType
// starts with "export_").
//
// See https://developer.work.weixin.qq.com/document/path/96298.
func (e *BatchJobEvent) IsExport() bool {
	return e != nil && strings.HasPrefix(e.JobType, "export_")
}

// Err returns nil when the job succeeded (ErrCode 0), and otherwise a
// *JobError carrying the job id, type, code and message.
//
// See https://developer.work.weixin.qq.com/document/path/90973.
func (e *BatchJobEvent) Err() error {
	if e == nil || e.ErrCode == 0 {
		return nil
	}
	return &JobError{JobID: e.JobID, JobType: e.JobType, Code: e.ErrCode, Message: e.ErrMsg}
}

// batchJobXML is the decrypted message, with numbers read as text so that
// whitespace around them is tolerated.
type batchJobXML struct {
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	CreateTime   string `xml:"CreateTime"`
	MsgType      string `xml:"MsgType"`
	Event        string `xml:"Event"`
	BatchJob     struct {
		JobID   string `xml:"JobId"`
		JobType string `xml:"JobType"`
		ErrCode string `xml:"ErrCode"`
		ErrMsg  string `xml:"ErrMsg"`
	} `xml:"BatchJob"`
}

// ParseBatchJobEvent parses a decrypted callback message (the plaintext
// DecryptMessage returns) as a batch_job_result event. A message of another
// kind gives ErrNotBatchJobEvent; an event without a JobId, or whose
// ErrCode or CreateTime is not an integer, gives ErrMalformedCallback.
// Surrounding whitespace in values is ignored; CreateTime is unix seconds.
//
// See https://developer.work.weixin.qq.com/document/path/90973.
func ParseBatchJobEvent(xmlMsg []byte) (*BatchJobEvent, error) {
	if err := checkXMLDepth(xmlMsg); err != nil {
		return nil, fmt.Errorf("%w: message is not XML: %v", ErrMalformedCallback, err)
	}
	var m batchJobXML
	if err := xml.Unmarshal(xmlMsg, &m); err != nil {
		return nil, fmt.Errorf("%w: message is not XML: %v", ErrMalformedCallback, err)
	}
	ev := &BatchJobEvent{
		ToUserName:   strings.TrimSpace(m.ToUserName),
		FromUserName: strings.TrimSpace(m.FromUserName),
		MsgType:      strings.TrimSpace(m.MsgType),
		Event:        strings.TrimSpace(m.Event),
		JobID:        strings.TrimSpace(m.BatchJob.JobID),
		JobType:      strings.TrimSpace(m.BatchJob.JobType),
		ErrMsg:       strings.TrimSpace(m.BatchJob.ErrMsg),
	}
	if ev.Event != "batch_job_result" {
		return nil, fmt.Errorf("%w (MsgType %q, Event %q)", ErrNotBatchJobEvent, clip(ev.MsgType), clip(ev.Event))
	}
	if ev.JobID == "" {
		return nil, fmt.Errorf("%w: batch_job_result without JobId", ErrMalformedCallback)
	}
	code, err := strconv.Atoi(strings.TrimSpace(m.BatchJob.ErrCode))
	if err != nil {
		return nil, fmt.Errorf("%w: batch_job_result ErrCode %q is not an integer", ErrMalformedCallback, clip(m.BatchJob.ErrCode))
	}
	ev.ErrCode = code
	if ct := strings.TrimSpace(m.CreateTime); ct != "" {
		sec, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: CreateTime %q is not unix seconds", ErrMalformedCallback, clip(ct))
		}
		ev.CreateTime = time.Unix(sec, 0)
	}
	return ev, nil
}

// ParseExportNotification parses the batch_job_result event of an export
// job. It fails like ParseBatchJobEvent, and with ErrNotExportJob when the
// event is for an import job. Both tag-export spellings, export_taguser and
// export_tag, are accepted, as is any other "export_" type.
//
// See https://developer.work.weixin.qq.com/document/path/96298.
func ParseExportNotification(xmlMsg []byte) (*BatchJobEvent, error) {
	ev, err := ParseBatchJobEvent(xmlMsg)
	if err != nil {
		return nil, err
	}
	if !ev.IsExport() {
		return nil, fmt.Errorf("%w: JobType %q", ErrNotExportJob, clip(ev.JobType))
	}
	return ev, nil
}

// clip bounds untrusted text quoted in an error.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// Defaults of NewCallbackHandler.
const (
	// DefaultTimestampTolerance is how far a POST's signed timestamp may be
	// from the handler's clock (WithTimestampTolerance).
	DefaultTimestampTolerance = 5 * time.Minute
	// DefaultMaxBodySize caps a POST body (WithMaxBodySize); a
	// batch_job_result envelope is under 1 KiB.
	DefaultMaxBodySize = 64 << 10
	// DefaultDuplicateWindow is how long a handled event is remembered
	// (WithDuplicateWindow); WeCom's retries come within seconds.
	DefaultDuplicateWindow = 10 * time.Minute
	// maxDuplicateEntries bounds the duplicate-suppression memory; the
	// oldest entry goes first.
	maxDuplicateEntries = 10000
)

// HandlerOption configures NewCallbackHandler.
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	tolerance time.Duration
	maxBody   int64
	raw       func(context.Context, []byte) error
	notifier  *JobNotifier
	logger    *slog.Logger
	now       func() time.Time
	dupWindow time.Duration
}

// WithTimestampTolerance sets how far the signed timestamp of a POST may be
// from the handler's clock, either way (default DefaultTimestampTolerance,
// five minutes); 0 disables the check. A POST outside it is answered 403.
func WithTimestampTolerance(d time.Duration) HandlerOption {
	return func(c *handlerConfig) {
		if d < 0 {
			d = -d
		}
		c.tolerance = d
	}
}

// WithMaxBodySize caps the POST body (default DefaultMaxBodySize, 64 KiB);
// a larger body is answered 413 without being read further. n <= 0 keeps
// the default.
func WithMaxBodySize(n int64) HandlerOption {
	return func(c *handlerConfig) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// WithRawMessageFunc receives the decrypted XML of every verified message
// that is not a batch_job_result event. Without it such messages are
// acknowledged with 200 and dropped. An error from fn is answered 500, so
// WeCom retries.
//
// See https://developer.work.weixin.qq.com/document/path/91144.
func WithRawMessageFunc(fn func(ctx context.Context, plaintextXML []byte) error) HandlerOption {
	return func(c *handlerConfig) { c.raw = fn }
}

// WithJobNotifier makes the handler call n.Notify for every
// batch_job_result event it accepts, after the handler's func succeeded, so
// that waiters using WithNotifier(n) wake up at once. A Notify error is
// logged and does not fail the request: the event was handled, and waiters
// fall back to polling.
func WithJobNotifier(n *JobNotifier) HandlerOption {
	return func(c *handlerConfig) { c.notifier = n }
}

// WithHandlerLogger sets where the handler logs rejected requests and
// failures (default: nowhere). It never logs the token, the key, the echo
// or a message body.
func WithHandlerLogger(l *slog.Logger) HandlerOption {
	return func(c *handlerConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithHandlerClock sets the clock for the timestamp tolerance and the
// duplicate window (default time.Now).
func WithHandlerClock(now func() time.Time) HandlerOption {
	return func(c *handlerConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// WithDuplicateWindow sets how long a handled (JobId, JobType) pair is
// remembered, so that WeCom's retries of an event already handled are
// answered 200 without calling the func again (default
// DefaultDuplicateWindow, ten minutes; 0 disables suppression). At most
// 10,000 pairs are kept; beyond that the oldest is forgotten first.
func WithDuplicateWindow(d time.Duration) HandlerOption {
	return func(c *handlerConfig) {
		if d < 0 {
			d = 0
		}
		c.dupWindow = d
	}
}

// NewCallbackHandler returns the http.Handler for a WeCom callback URL.
//
// GET is URL verification: the query's msg_signature, timestamp, nonce and
// echostr are checked and the plain echo is the whole response (200,
// text/plain, no newline). A literal '+' in echostr, which a plain query
// decoding turns into a space, is tolerated.
//
// POST is an event: the body (at most WithMaxBodySize) is verified and
// decrypted, the query timestamp is checked against WithTimestampTolerance,
// and a batch_job_result event is parsed and passed to fn (which may be
// nil); the answer is 200 with an empty body. A retry of an event already
// handled (same JobId and JobType within WithDuplicateWindow) is answered
// 200 without calling fn; a retry that arrives while fn still runs for the
// same job is answered 503. Other messages go to WithRawMessageFunc, or
// are acknowledged.
//
// Status codes: 403 for a bad signature, a wrong receiver id or a
// timestamp outside the tolerance; 400 for missing query parameters and
// malformed bodies; 413 for a body over the limit; 405 (with Allow) for
// methods other than GET and POST; 500 when fn or the raw-message func
// fails, and then the event is not marked handled, so WeCom's retry calls
// fn again. fn gets the request's context.
//
// See https://developer.work.weixin.qq.com/document/path/91144 and
// https://developer.work.weixin.qq.com/document/path/90973.
func NewCallbackHandler(cc *CallbackCrypto, fn func(context.Context, *BatchJobEvent) error, opts ...HandlerOption) http.Handler {
	cfg := handlerConfig{
		tolerance: DefaultTimestampTolerance,
		maxBody:   DefaultMaxBodySize,
		logger:    slog.New(slog.DiscardHandler),
		now:       time.Now,
		dupWindow: DefaultDuplicateWindow,
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &callbackHandler{
		cc:       cc,
		fn:       fn,
		cfg:      cfg,
		done:     newRecentSet[jobKey, struct{}](cfg.dupWindow, maxDuplicateEntries),
		inflight: make(map[jobKey]struct{}),
	}
}

type jobKey struct{ id, typ string }

type callbackHandler struct {
	cc  *CallbackCrypto
	fn  func(context.Context, *BatchJobEvent) error
	cfg handlerConfig

	mu       sync.Mutex
	done     *recentSet[jobKey, struct{}] // handled events, for duplicate suppression
	inflight map[jobKey]struct{}          // events whose fn call is running
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cc == nil {
		h.fail(w, r, http.StatusInternalServerError, errors.New("wecom: NewCallbackHandler was given a nil CallbackCrypto"))
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.serveVerify(w, r)
	case http.MethodPost:
		h.serveEvent(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		h.fail(w, r, http.StatusMethodNotAllowed, errors.New("wecom: callback method not allowed"))
	}
}

// fail answers with status and logs err (which never holds secrets).
func (h *callbackHandler) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	level := slog.LevelWarn
	if status == http.StatusInternalServerError {
		level = slog.LevelError
	}
	h.cfg.logger.LogAttrs(r.Context(), level, "wecom callback rejected",
		slog.String("method", r.Method), slog.Int("status", status), slog.String("error", err.Error()))
	http.Error(w, http.StatusText(status), status)
}

// statusOf maps a verification or decryption error to an HTTP status.
func statusOf(err error) int {
	if errors.Is(err, ErrSignatureMismatch) || errors.Is(err, ErrReceiverMismatch) || errors.Is(err, errStaleTimestamp) {
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func (h *callbackHandler) serveVerify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sig, ts, nonce, echo := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr")
	if sig == "" || ts == "" || nonce == "" || echo == "" {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("%w: URL verification needs msg_signature, timestamp, nonce and echostr", ErrMalformedCallback))
		return
	}
	plain, err := h.cc.VerifyURL(sig, ts, nonce, echo)
	if errors.Is(err, ErrSignatureMismatch) {
		// A sender that did not percent-encode '+' gets it turned into a
		// space by Query(); try the raw value decoded without that rule.
		if raw, ok := rawQueryValue(r.URL.RawQuery, "echostr"); ok && raw != echo {
			plain, err = h.cc.VerifyURL(sig, ts, nonce, raw)
		}
	}
	if err != nil {
		h.fail(w, r, statusOf(err), err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(plain)))
	w.WriteHeader(http.StatusOK)
	w.Write(plain)
}

// rawQueryValue returns the first value of key in a raw query, unescaped
// with the path rules, which keep '+' as '+'.
func rawQueryValue(rawQuery, key string) (string, bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != key {
			continue
		}
		s, err := url.PathUnescape(v)
		return s, err == nil
	}
	return "", false
}

func (h *callbackHandler) serveEvent(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sig, ts, nonce := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")
	if sig == "" || ts == "" || nonce == "" {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("%w: event POST needs msg_signature, timestamp and nonce", ErrMalformedCallback))
		return
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("%w: timestamp is not unix seconds", ErrMalformedCallback))
		return
	}
	if r.ContentLength > h.cfg.maxBody {
		h.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: body of %d bytes is over the %d-byte limit", ErrMalformedCallback, r.ContentLength, h.cfg.maxBody))
		return
	}
	src := r.Body
	if src == nil { // a hand-made request; servers always set a Body
		src = http.NoBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, src, h.cfg.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: body over the %d-byte limit", ErrMalformedCallback, h.cfg.maxBody))
		} else {
			h.fail(w, r, http.StatusBadRequest, fmt.Errorf("wecom: reading callback body: %w", err))
		}
		return
	}
	plain, err := h.cc.DecryptMessage(sig, ts, nonce, body)
	if err != nil {
		h.fail(w, r, statusOf(err), err)
		return
	}
	if tol := h.cfg.tolerance; tol > 0 {
		if d := h.cfg.now().Sub(time.Unix(sec, 0)); d > tol || d < -tol {
			h.fail(w, r, http.StatusForbidden, fmt.Errorf("%w: %s off", errStaleTimestamp, d.Round(time.Second)))
			return
		}
	}
	ev, err := ParseBatchJobEvent(plain)
	switch {
	case errors.Is(err, ErrNotBatchJobEvent):
		h.serveRaw(w, r, plain)
		return
	case err != nil:
		h.fail(w, r, http.StatusBadRequest, err)
		return
	}
	h.serveJob(w, r, ev)
}

func (h *callbackHandler) serveRaw(w http.ResponseWriter, r *http.Request, plain []byte) {
	if h.cfg.raw != nil {
		if err := h.cfg.raw(r.Context(), plain); err != nil {
			h.fail(w, r, http.StatusInternalServerError, fmt.Errorf("wecom: raw message func: %w", err))
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (h *callbackHandler) serveJob(w http.ResponseWriter, r *http.Request, ev *BatchJobEvent) {
	key := jobKey{ev.JobID, ev.JobType}
	log := h.cfg.logger.With(slog.String("job_id", ev.JobID), slog.String("job_type", ev.JobType))
	dedup := h.cfg.dupWindow > 0

	if dedup {
		h.mu.Lock()
		_, seen := h.done.get(key, h.cfg.now())
		_, running := h.inflight[key]
		if !seen && !running {
			h.inflight[key] = struct{}{}
		}
		h.mu.Unlock()
		switch {
		case seen:
			log.DebugContext(r.Context(), "wecom callback: duplicate batch_job_result acknowledged")
			w.WriteHeader(http.StatusOK)
			return
		case running:
			h.fail(w, r, http.StatusServiceUnavailable, errors.New("wecom: batch_job_result for this job is being handled"))
			return
		}
		// Clear the in-flight mark even if fn panics, so retries are not
		// refused forever.
		defer func() {
			h.mu.Lock()
			delete(h.inflight, key)
			h.mu.Unlock()
		}()
	}

	if h.fn != nil {
		if err := h.fn(r.Context(), ev); err != nil {
			log.ErrorContext(r.Context(), "wecom callback: handler func failed; WeCom will retry", slog.String("error", err.Error()))
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			return
		}
	}
	if dedup {
		h.mu.Lock()
		h.done.put(key, struct{}{}, h.cfg.now())
		h.mu.Unlock()
	}
	if h.cfg.notifier != nil {
		if err := h.cfg.notifier.Notify(r.Context(), ev); err != nil {
			log.WarnContext(r.Context(), "wecom callback: notifying waiters failed", slog.String("error", err.Error()))
		}
	}
	log.DebugContext(r.Context(), "wecom callback: batch_job_result handled", slog.Int("errcode", ev.ErrCode))
	w.WriteHeader(http.StatusOK)
}

// recentSet remembers values by key for a while, bounded in count; the
// oldest entry is forgotten first. It is not safe for concurrent use.
type recentSet[K comparable, V any] struct {
	ttl   time.Duration
	max   int
	items map[K]*list.Element // of *recentEntry[K, V]
	order *list.List          // oldest first
}

type recentEntry[K comparable, V any] struct {
	key K
	val V
	at  time.Time
}

func newRecentSet[K comparable, V any](ttl time.Duration, max int) *recentSet[K, V] {
	return &recentSet[K, V]{ttl: ttl, max: max, items: make(map[K]*list.Element), order: list.New()}
}

// get returns the value stored for key if it is younger than ttl at now.
func (s *recentSet[K, V]) get(key K, now time.Time) (V, bool) {
	var zero V
	el, ok := s.items[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*recentEntry[K, V])
	if now.Sub(e.at) > s.ttl {
		return zero, false
	}
	return e.val, true
}

// put stores val for key (renewing its age) and forgets expired and excess
// entries. With ttl or max not positive it stores nothing.
func (s *recentSet[K, V]) put(key K, val V, now time.Time) {
	if s.ttl <= 0 || s.max <= 0 {
		return
	}
	if el, ok := s.items[key]; ok {
		e := el.Value.(*recentEntry[K, V])
		e.val, e.at = val, now
		s.order.MoveToBack(el)
	} else {
		s.items[key] = s.order.PushBack(&recentEntry[K, V]{key: key, val: val, at: now})
	}
	for el := s.order.Front(); el != nil; el = s.order.Front() {
		e := el.Value.(*recentEntry[K, V])
		if s.order.Len() <= s.max && now.Sub(e.at) <= s.ttl {
			break
		}
		s.order.Remove(el)
		delete(s.items, e.key)
	}
}

// Defaults of NewJobNotifier (WithNotifierRetention).
const (
	// DefaultNotifierRetention is how long a delivered event is remembered
	// for late subscribers.
	DefaultNotifierRetention = 10 * time.Minute
	// DefaultNotifierMaxEvents is how many delivered events are remembered
	// at most; the oldest is forgotten first.
	DefaultNotifierMaxEvents = 4096
)

// EventBroker carries batch_job_result events between the replicas of a
// service, so that the replica that receives WeCom's callback can wake a
// waiter on another one (for example Redis pub/sub, in package redisstore).
// With a broker, JobNotifier.Notify publishes, and every replica's
// subscription to the broker calls Deliver on its own JobNotifier.
type EventBroker interface {
	Publish(ctx context.Context, ev *BatchJobEvent) error
}

// NotifierOption configures NewJobNotifier.
type NotifierOption func(*notifierConfig)

type notifierConfig struct {
	broker    EventBroker
	retention time.Duration
	maxEvents int
	now       func() time.Time
}

// WithEventBroker makes Notify publish through b instead of delivering
// locally.
func WithEventBroker(b EventBroker) NotifierOption {
	return func(c *notifierConfig) { c.broker = b }
}

// WithNotifierRetention sets how long, and how many, delivered events are
// remembered so that a Subscribe that comes after the event still sees it
// (default DefaultNotifierRetention, ten minutes, and
// DefaultNotifierMaxEvents, 4096). d <= 0 or max <= 0 remembers nothing.
func WithNotifierRetention(d time.Duration, max int) NotifierOption {
	return func(c *notifierConfig) { c.retention, c.maxEvents = d, max }
}

// WithNotifierClock sets the clock used for the retention (default
// time.Now).
func WithNotifierClock(now func() time.Time) NotifierOption {
	return func(c *notifierConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// JobNotifier hands batch_job_result events from a callback handler
// (WithJobNotifier) to the code waiting for those jobs
// (WaitBatchResult / WaitExportResult with WithNotifier), so a wait ends as
// soon as WeCom reports the job done instead of at the next poll. It keeps
// recent events for late subscribers, bounded in time and count. It is safe
// for concurrent use.
//
// Create one with NewJobNotifier. The zero value works with the default
// settings, and a nil *JobNotifier does nothing (Subscribe returns a channel
// that never delivers), so neither panics.
//
// See https://developer.work.weixin.qq.com/document/path/90973 and
// https://developer.work.weixin.qq.com/document/path/96298.
type JobNotifier struct {
	mu     sync.Mutex
	cfg    notifierConfig
	ready  bool // cfg and the maps are set up
	subs   map[string]map[*jobSub]struct{}
	recent *recentSet[string, *BatchJobEvent]
}

type jobSub struct{ ch chan *BatchJobEvent }

// NewJobNotifier returns a JobNotifier.
func NewJobNotifier(opts ...NotifierOption) *JobNotifier {
	n := &JobNotifier{}
	cfg := defaultNotifierConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	n.setup(cfg)
	return n
}

func defaultNotifierConfig() notifierConfig {
	return notifierConfig{retention: DefaultNotifierRetention, maxEvents: DefaultNotifierMaxEvents, now: time.Now}
}

func (n *JobNotifier) setup(cfg notifierConfig) {
	n.cfg = cfg
	n.subs = make(map[string]map[*jobSub]struct{})
	n.recent = newRecentSet[string, *BatchJobEvent](cfg.retention, cfg.maxEvents)
	n.ready = true
}

// lock locks n, setting up a zero value on first use.
func (n *JobNotifier) lock() {
	n.mu.Lock()
	if !n.ready {
		n.setup(defaultNotifierConfig())
	}
}

// Notify announces ev: through the EventBroker if there is one, and
// otherwise by Deliver. If publishing fails, the event is still delivered
// locally and the error is returned. An event without a JobID is refused.
// A nil notifier does nothing.
func (n *JobNotifier) Notify(ctx context.Context, ev *BatchJobEvent) error {
	if n == nil {
		return nil
	}
	if ev == nil || ev.JobID == "" {
		return errors.New("wecom: JobNotifier.Notify: event without a JobID")
	}
	n.lock()
	b := n.cfg.broker
	n.mu.Unlock()
	if b == nil {
		n.Deliver(ev)
		return nil
	}
	if err := b.Publish(ctx, ev); err != nil {
		n.Deliver(ev)
		return fmt.Errorf("wecom: publishing batch_job_result for job %s: %w (delivered locally)", ev.JobID, err)
	}
	return nil
}

// Deliver hands ev to every current subscriber of ev.JobID without
// blocking (a subscriber's channel holds one event; a second event for a
// subscriber that has not read the first is dropped) and remembers it for
// later subscribers. Subscribers share one copy of ev, taken here; treat it
// as read-only. A nil event, or one without a JobID, is ignored.
func (n *JobNotifier) Deliver(ev *BatchJobEvent) {
	if n == nil || ev == nil || ev.JobID == "" {
		return
	}
	cp := *ev
	n.lock()
	defer n.mu.Unlock()
	for s := range n.subs[cp.JobID] {
		select {
		case s.ch <- &cp:
		default:
		}
	}
	n.recent.put(cp.JobID, &cp, n.cfg.now())
}

// Subscribe returns a channel that receives the event for jobID, and a
// cancel func that unsubscribes (it is idempotent; call it when done
// waiting). If an event for jobID was delivered within the retention, the
// channel already holds it. The channel is never closed.
func (n *JobNotifier) Subscribe(jobID string) (events <-chan *BatchJobEvent, cancel func()) {
	if n == nil || jobID == "" {
		return nil, func() {}
	}
	s := &jobSub{ch: make(chan *BatchJobEvent, 1)}
	n.lock()
	if ev, ok := n.recent.get(jobID, n.cfg.now()); ok {
		s.ch <- ev
	}
	set := n.subs[jobID]
	if set == nil {
		set = make(map[*jobSub]struct{})
		n.subs[jobID] = set
	}
	set[s] = struct{}{}
	n.mu.Unlock()

	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if set := n.subs[jobID]; set != nil {
				delete(set, s)
				if len(set) == 0 {
					delete(n.subs, jobID)
				}
			}
		})
	}
}
