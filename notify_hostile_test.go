package wecom_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

const (
	hostileToken = "H0stileTok"
	hostileCorp  = "wwhostilecorp01"
)

// billionLaughs is the classic entity-expansion bomb: ten levels of ten,
// 10^9 "lol"s if a parser expanded it.
func billionLaughs(body string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">`)
	prev := "lol"
	for i := 1; i <= 9; i++ {
		name := "lol" + strconv.Itoa(i)
		b.WriteString(`<!ENTITY ` + name + ` "` + strings.Repeat("&"+prev+";", 10) + `">`)
		prev = name
	}
	b.WriteString(`]>`)
	b.WriteString(strings.ReplaceAll(body, "BOMB", "&"+prev+";"))
	return b.String()
}

// nested is depth levels of <a>, closed again, inside <xml>.
func nested(depth int) string {
	return "<xml>" + strings.Repeat("<a>", depth) + strings.Repeat("</a>", depth) + "</xml>"
}

// countingReader counts what the handler pulls from an endless body.
type countingReader struct {
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// TestCallbackHandlerHostileInput sends what an attacker on the internet
// could send to a callback URL. Each request must get the documented
// status within a second, with bounded allocation, and fn must never run.
// Not parallel: it measures the process's allocations.
func TestCallbackHandlerHostileInput(t *testing.T) {
	key := wecom.NewEncodingAESKey()
	cc, err := wecom.NewCallbackCrypto(hostileToken, key, hostileCorp)
	require.NoError(t, err)
	var ran atomic.Int64
	fn := func(context.Context, *wecom.BatchJobEvent) error { ran.Add(1); return nil }
	var logs syncBuffer
	logger := wecom.WithHandlerLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	h := wecom.NewCallbackHandler(cc, fn, logger)
	// Big enough for 100,000 levels of nesting, to reach the XML decoder.
	big := wecom.NewCallbackHandler(cc, fn, wecom.WithMaxBodySize(2<<20), logger)

	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	event := wecomtest.BatchJobResultXML(hostileCorp, now.Unix(), "jobid_hostile", "sync_user", 0, "ok")
	// signed posts msg, encrypted and signed with the real token and key.
	signed := func(msg []byte, ts string) (string, []byte) {
		body, sig := signedEvent(t, cc, msg, ts, "n0nce")
		return "/cb?" + url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"n0nce"}}.Encode(), body
	}
	validTarget, validBody := signed(event, ts)
	anyQuery := "/cb?" + url.Values{"msg_signature": {strings.Repeat("0", 40)}, "timestamp": {ts}, "nonce": {"n0nce"}}.Encode()
	forgedSig := func() string {
		// Signed with another token: the right shape, the wrong secret.
		other, err := wecom.NewCallbackCrypto("NotTheToken", key, hostileCorp)
		require.NoError(t, err)
		_, sig := signedEvent(t, other, event, ts, "n0nce")
		return "/cb?" + url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"n0nce"}}.Encode()
	}()
	oldTarget, oldBody := signed(event, strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))
	futureTarget, futureBody := signed(event, strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
	bombInnerTarget, bombInnerBody := signed([]byte(billionLaughs(
		`<xml><ToUserName>`+hostileCorp+`</ToUserName><MsgType>event</MsgType><Event>batch_job_result</Event>`+
			`<BatchJob><JobId>BOMB</JobId><JobType>sync_user</JobType><ErrCode>0</ErrCode></BatchJob></xml>`)), ts)
	deepInnerTarget, deepInnerBody := signed([]byte(nested(100_000)), ts)
	deepEventTarget, deepEventBody := signed([]byte(`<xml><MsgType>event</MsgType><Event>batch_job_result</Event><BatchJob><JobId>`+
		nested(50_000)+`</JobId><JobType>sync_user</JobType><ErrCode>0</ErrCode></BatchJob></xml>`), ts)

	undeclared := &countingReader{}
	cases := []struct {
		name    string
		handler http.Handler
		method  string
		target  string
		body    io.Reader
		length  int64 // -1: no Content-Length
		want    int
	}{
		{"oversized body, declared length", h, http.MethodPost, anyQuery, bytes.NewReader(make([]byte, 10<<20)), 10 << 20, http.StatusRequestEntityTooLarge},
		{"oversized body, no declared length", h, http.MethodPost, anyQuery, io.LimitReader(undeclared, 1<<30), -1, http.StatusRequestEntityTooLarge},
		{"PUT", h, http.MethodPut, validTarget, bytes.NewReader(validBody), int64(len(validBody)), http.StatusMethodNotAllowed},
		{"DELETE", h, http.MethodDelete, validTarget, nil, 0, http.StatusMethodNotAllowed},
		{"PATCH", h, http.MethodPatch, validTarget, bytes.NewReader(validBody), int64(len(validBody)), http.StatusMethodNotAllowed},
		{"HEAD", h, http.MethodHead, validTarget, nil, 0, http.StatusMethodNotAllowed},
		{"OPTIONS", h, http.MethodOptions, validTarget, nil, 0, http.StatusMethodNotAllowed},
		{"TRACE", h, http.MethodTrace, validTarget, nil, 0, http.StatusMethodNotAllowed},
		{"forged signature (other token)", h, http.MethodPost, forgedSig, bytes.NewReader(validBody), int64(len(validBody)), http.StatusForbidden},
		{"forged signature (zeros)", h, http.MethodPost, anyQuery, bytes.NewReader(validBody), int64(len(validBody)), http.StatusForbidden},
		{"replayed, timestamp an hour old", h, http.MethodPost, oldTarget, bytes.NewReader(oldBody), int64(len(oldBody)), http.StatusForbidden},
		{"timestamp an hour ahead", h, http.MethodPost, futureTarget, bytes.NewReader(futureBody), int64(len(futureBody)), http.StatusForbidden},
		{"entity expansion in the envelope", h, http.MethodPost, anyQuery,
			strings.NewReader(billionLaughs(`<xml><ToUserName>x</ToUserName><Encrypt>BOMB</Encrypt></xml>`)), -1, http.StatusBadRequest},
		{"entity expansion in the decrypted message", h, http.MethodPost, bombInnerTarget, bytes.NewReader(bombInnerBody), -1, http.StatusBadRequest},
		{"100,000 levels of nesting in the envelope", big, http.MethodPost, anyQuery, strings.NewReader(nested(100_000)), -1, http.StatusBadRequest},
		{"100,000 levels of nesting in the decrypted message", big, http.MethodPost, deepInnerTarget, bytes.NewReader(deepInnerBody), -1, http.StatusBadRequest},
		{"50,000 levels of nesting inside a batch_job_result event", big, http.MethodPost, deepEventTarget, bytes.NewReader(deepEventBody), -1, http.StatusBadRequest},
		{"URL verification with a forged signature", h, http.MethodGet, anyQuery + "&echostr=" + url.QueryEscape(strings.Repeat("A", 4000)), nil, 0, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, tc.body)
			r.ContentLength = tc.length
			if tc.body == nil {
				r.ContentLength = 0
			}
			w := httptest.NewRecorder()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			tc.handler.ServeHTTP(w, r)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc

			assert.Equal(t, tc.want, w.Code, "body %q", w.Body.String())
			assert.Less(t, elapsed, time.Second, "answered in %v", elapsed)
			assert.Less(t, alloc, uint64(20<<20), "allocated %d bytes", alloc)
			if tc.want == http.StatusMethodNotAllowed {
				assert.Equal(t, "GET, POST", w.Header().Get("Allow"))
			}
			t.Logf("%d in %v, %d KiB allocated", w.Code, elapsed.Round(time.Microsecond), alloc>>10)
		})
	}
	// The handler stopped reading an endless body at the limit.
	assert.LessOrEqual(t, undeclared.n.Load(), int64(wecom.DefaultMaxBodySize+64<<10), "read %d bytes of an endless body", undeclared.n.Load())
	assert.Zero(t, ran.Load(), "no hostile request may reach fn")
	// Every rejection was logged, and none showed the token or the key.
	require.Equal(t, len(cases), strings.Count(logs.String(), "wecom callback rejected"))
	assert.NotContains(t, logs.String(), hostileToken)
	assert.NotContains(t, logs.String(), key)

	// And the genuine event, after all that, is still accepted once.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, validTarget, bytes.NewReader(validBody)))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.EqualValues(t, 1, ran.Load())
}

// TestCallbackHandlerHostileOverHTTP sends an endless chunked body and a
// slow one to a real server: the answer is 413 and the connection does not
// pin a goroutine.
func TestCallbackHandlerHostileOverHTTP(t *testing.T) {
	cc, err := wecom.NewCallbackCrypto(hostileToken, wecom.NewEncodingAESKey(), hostileCorp)
	require.NoError(t, err)
	srv := httptest.NewServer(wecom.NewCallbackHandler(cc, nil))
	defer srv.Close()
	q := "?" + url.Values{"msg_signature": {strings.Repeat("0", 40)}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "nonce": {"n"}}.Encode()

	endless := &countingReader{}
	req, err := http.NewRequest(http.MethodPost, srv.URL+q, io.LimitReader(endless, 1<<30))
	require.NoError(t, err)
	req.ContentLength = -1 // chunked
	resp, err := srv.Client().Do(req)
	if err == nil {
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		resp.Body.Close()
	} // else: the server closed the connection on us mid-upload, which is also fine
	assert.Less(t, endless.n.Load(), int64(64<<20), "the server kept reading: %d bytes", endless.n.Load())

	resp, err = http.Post(srv.URL+q, "text/xml", bytes.NewReader(make([]byte, 1<<20)))
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	resp.Body.Close()
}
