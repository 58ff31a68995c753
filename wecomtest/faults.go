package wecomtest

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is a misbehaviour injected for matching requests. The first
// applicable field wins, in this order, after Delay: Drop, Status, Body,
// ErrCode, then (export file downloads only) Truncate / Corrupt / DropAfter.
// A Fault with only Delay set delays the normal answer.
type Fault struct {
	// ErrCode answers HTTP 200 with {"errcode":ErrCode,"errmsg":...} in
	// WeCom's hint shape.
	ErrCode int
	// Status answers this HTTP status with a short text/html body.
	Status int
	// Body answers HTTP 200 with this raw body (an HTML page, truncated
	// JSON...), Content-Type ContentType or text/html.
	Body        string
	ContentType string
	// Drop hijacks the connection and closes it without a response.
	Drop bool
	// Delay is added latency before answering; it ends early when the client
	// goes away or the server closes.
	Delay time.Duration
	// Truncate (downloads): announce the full Content-Length, send the first
	// half of the bytes, then close the connection.
	Truncate bool
	// Corrupt (downloads): flip every 512th byte of the served body, so the
	// md5 no longer matches; Range requests still work.
	Corrupt bool
	// DropAfter (downloads): send this many body bytes, then drop the
	// connection (for Range-resume tests).
	DropAfter int
	// Times is how many matching calls the fault applies to: 0 means 1,
	// -1 means forever. Ignored by InjectRandomFaults.
	Times int
}

type faultRule struct {
	f    Fault
	left int // -1 forever
}

type randomFault struct {
	rate float64
	f    Fault
}

// InjectFault makes the next f.Times requests for path misbehave as f says.
// path is an exact request path such as "/cgi-bin/batch/getresult";
// ExportFilePath matches every export file download. Faults for the same
// path queue up in injection order. Faults apply before the access_token
// check, so they work for gettoken too.
func (s *Server) InjectFault(path string, f Fault) {
	left := f.Times
	if left == 0 {
		left = 1
	}
	if left < -1 {
		return
	}
	s.mu.Lock()
	s.faults[path] = append(s.faults[path], &faultRule{f: f, left: left})
	s.mu.Unlock()
}

// InjectRandomFaults makes each request for path misbehave as f says with
// probability rate (clamped to [0,1]), until ClearFaults. path "*" matches
// every /cgi-bin/ API except gettoken (downloads are not included; use
// ExportFilePath for them). The generator is seeded by WithFaultSeed.
func (s *Server) InjectRandomFaults(path string, rate float64, f Fault) {
	rate = min(max(rate, 0), 1)
	s.mu.Lock()
	s.randFaults[path] = &randomFault{rate: rate, f: f}
	s.mu.Unlock()
}

// ClearFaults removes every injected fault, fixed and random.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = map[string][]*faultRule{}
	s.randFaults = map[string]*randomFault{}
	s.mu.Unlock()
}

// takeFault picks the fault for this request, if any, consuming one use.
func (s *Server) takeFault(path string, isFile bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := []string{path}
	if isFile {
		keys = append(keys, ExportFilePath)
	}
	for _, k := range keys {
		rules := s.faults[k]
		for len(rules) > 0 && rules[0].left == 0 {
			rules = rules[1:]
		}
		s.faults[k] = rules
		if len(rules) > 0 {
			r := rules[0]
			if r.left > 0 {
				r.left--
			}
			return r.f, true
		}
	}
	if isFile {
		keys = []string{ExportFilePath}
	} else if strings.HasPrefix(path, "/cgi-bin/") && path != "/cgi-bin/gettoken" {
		keys = append(keys, "*")
	}
	for _, k := range keys {
		if rf := s.randFaults[k]; rf != nil && rf.rate > 0 && s.rng.Float64() < rf.rate {
			return rf.f, true
		}
	}
	return Fault{}, false
}

// applyFault answers the request per an injected fault; it reports whether
// the request was fully handled.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, path string, isFile bool) bool {
	f, ok := s.takeFault(path, isFile)
	if !ok {
		return false
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-s.ctx.Done():
			t.Stop()
			return true
		}
	}
	switch {
	case f.Drop:
		hijackClose(w)
	case f.Status != 0:
		if f.Status < 100 || f.Status > 999 {
			f.Status = http.StatusInternalServerError
		}
		text := http.StatusText(f.Status)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte("<html><head><title>" + strconv.Itoa(f.Status) + " " + text + "</title></head><body><center><h1>" +
			strconv.Itoa(f.Status) + " " + text + "</h1></center><hr><center>nginx</center></body></html>\n"))
	case f.Body != "":
		ct := f.ContentType
		if ct == "" {
			ct = "text/html; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(f.Body))
	case f.ErrCode != 0:
		s.writeErr(w, r, f.ErrCode, "")
	case isFile && (f.Truncate || f.Corrupt || f.DropAfter > 0):
		s.handleExportFile(w, r, &f)
	default:
		return false
	}
	return true
}

// hijackClose closes the connection under w without (further) response.
// It must not Flush first: that would commit a 200 with no body. Hijack
// itself flushes whatever headers and body were already written.
func hijackClose(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	conn, _, err := rc.Hijack()
	if err != nil {
		return
	}
	_ = conn.Close()
}

var errCut = errors.New("wecomtest: connection cut by fault")

// cutWriter passes at most limit body bytes through, then fails.
type cutWriter struct {
	http.ResponseWriter
	limit    int64 // -1: none yet
	truncate bool  // limit = half of the announced Content-Length
	written  int64
	cut      bool
}

// Write passes p through up to the limit, then reports errCut.
func (c *cutWriter) Write(p []byte) (int, error) {
	if c.truncate && c.limit < 0 {
		n, _ := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
		c.limit = n / 2
	}
	if c.cut {
		return 0, errCut
	}
	if c.limit >= 0 && c.written+int64(len(p)) > c.limit {
		n := c.limit - c.written
		m, _ := c.ResponseWriter.Write(p[:n])
		c.written += int64(m)
		c.cut = true
		// Push the partial body out of net/http's buffer now: Hijack (which
		// follows) only flushes headers, not the buffered body bytes.
		_ = http.NewResponseController(c.ResponseWriter).Flush()
		return m, errCut
	}
	m, err := c.ResponseWriter.Write(p)
	c.written += int64(m)
	return m, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
