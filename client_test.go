package wecom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testCorp   = "wwtestcorp"
	testSecret = "s3cr3t-corp-secret-value"
	testBase   = "https://qyapi.weixin.qq.com"
)

// mockClient returns a client whose HTTP goes to a fresh mock transport,
// with fast retries.
func mockClient(t *testing.T, opts ...Option) (*Client, *httpmock.MockTransport) {
	t.Helper()
	mt := httpmock.NewMockTransport()
	base := []Option{
		WithBaseURL(testBase),
		WithHTTPClient(&http.Client{Transport: mt}),
		WithRetry(RetryPolicy{MaxAttempts: 3, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}),
	}
	c, err := NewClient(testCorp, testSecret, append(base, opts...)...)
	require.NoError(t, err)
	return c, mt
}

// tokenResponder answers gettoken with tok-1, tok-2, … and counts calls.
func tokenResponder(t *testing.T, mt *httpmock.MockTransport) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", func(r *http.Request) (*http.Response, error) {
		assert.Equal(t, testCorp, r.URL.Query().Get("corpid"))
		assert.Equal(t, testSecret, r.URL.Query().Get("corpsecret"))
		k := n.Add(1)
		return httpmock.NewStringResponse(200, fmt.Sprintf(`{"errcode":0,"errmsg":"ok","access_token":"tok-%d","expires_in":7200}`, k)), nil
	})
	return &n
}

func TestNewClientValidates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		corp, secret  string
		opts          []Option
		wantSubstring string
	}{
		{"empty corp", "", "x", nil, "corpID is empty"},
		{"blank secret", "ww1", "  ", nil, "corpSecret is empty"},
		{"corp with slash", "ww/1", "x", nil, "corpID has an invalid shape"},
		{"bad base url", "ww1", "x", []Option{WithBaseURL("ftp://x")}, "not an http(s) URL"},
		{"relative base url", "ww1", "x", []Option{WithBaseURL("/cgi-bin")}, "not an http(s) URL"},
		{"nil http client", "ww1", "x", []Option{WithHTTPClient(nil)}, "nil *http.Client"},
		{"nil store", "ww1", "x", []Option{WithTokenStore(nil)}, "nil TokenStore"},
		{"bad retry", "ww1", "x", []Option{WithRetry(RetryPolicy{MaxAttempts: -1})}, "invalid policy"},
		{"min > max", "ww1", "x", []Option{WithRetry(RetryPolicy{MinDelay: time.Second, MaxDelay: time.Millisecond})}, "invalid policy"},
		{"negative margin", "ww1", "x", []Option{WithTokenRefreshMargin(-1)}, "negative margin"},
		{"zero response size", "ww1", "x", []Option{WithMaxResponseSize(0)}, "WithMaxResponseSize"},
		{"response size that would overflow", "ww1", "x", []Option{WithMaxResponseSize(math.MaxInt64)}, "WithMaxResponseSize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tc.corp, tc.secret, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tc.wantSubstring)
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
	c, err := NewClient("ww1", "secret", nil, WithLogger(nil))
	require.NoError(t, err)
	assert.Equal(t, "ww1", c.CorpID())
}

func TestEnvelopeDecoding(t *testing.T) {
	t.Parallel()
	type out struct {
		JobID string `json:"jobid"`
	}
	cases := []struct {
		name     string
		status   int
		body     string
		wantCode int    // APIError code, 0 for success
		wantResp string // ResponseError reason substring
		wantJob  string
	}{
		{"ok", 200, `{"errcode":0,"errmsg":"ok","jobid":"j1"}`, 0, "", "j1"},
		{"errcode as string", 200, `{"errcode":"0","errmsg":"ok","jobid":"j2"}`, 0, "", "j2"},
		{"error as string", 200, `{"errcode":"60011","errmsg":"no privilege"}`, 60011, "", ""},
		{"api error", 200, `{"errcode":40058,"errmsg":"invalid parameter, hint: [x]"}`, 40058, "", ""},
		{"unknown fields", 200, `{"errcode":0,"errmsg":"ok","jobid":"j3","remaintime":1}`, 0, "", "j3"},
		{"html page", 200, `<html><body>502 Bad Gateway</body></html>`, 0, "not JSON", ""},
		{"truncated", 200, `{"errcode":0,"errmsg":"o`, 0, "truncated", ""},
		{"empty", 200, ``, 0, "empty", ""},
		{"no errcode", 200, `{"jobid":"x"}`, 0, "no errcode", ""},
		{"errcode not int", 200, `{"errcode":"abc"}`, 0, "malformed", ""},
		{"http 404", 404, `not found`, 0, "Not Found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o out
			err := decodeEnvelope("/cgi-bin/x", tc.status, []byte(tc.body), &o)
			switch {
			case tc.wantCode != 0:
				var ae *APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tc.wantCode, ae.Code)
				assert.Equal(t, "/cgi-bin/x", ae.Path)
			case tc.wantResp != "":
				var re *ResponseError
				require.ErrorAs(t, err, &re)
				assert.Contains(t, re.Error(), tc.wantResp)
			default:
				require.NoError(t, err)
				assert.Equal(t, tc.wantJob, o.JobID)
			}
		})
	}
}

func TestResponseSizeLimit(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t, WithMaxResponseSize(100))
	tokenResponder(t, mt)
	big := `{"errcode":0,"errmsg":"ok","pad":"` + strings.Repeat("x", 200) + `"}`
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/batch/getresult", httpmock.NewStringResponder(200, big))
	err := c.getJSON(context.Background(), "/cgi-bin/batch/getresult", nil, nil)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Reason, "larger than 100 bytes")
}

func TestRetryClassification(t *testing.T) {
	t.Parallel()
	type step struct {
		status int
		body   string
		netErr bool
	}
	okBody := `{"errcode":0,"errmsg":"ok","jobid":"J"}`
	cases := []struct {
		name      string
		kind      callKind
		steps     []step
		wantCalls int
		wantOK    bool
	}{
		{"read retries -1", callRead, []step{{200, `{"errcode":-1,"errmsg":"busy"}`, false}, {200, okBody, false}}, 2, true},
		{"read retries 45009", callRead, []step{{200, `{"errcode":45009,"errmsg":"freq"}`, false}, {200, okBody, false}}, 2, true},
		{"read retries 45033", callRead, []step{{200, `{"errcode":45033,"errmsg":"conc"}`, false}, {200, okBody, false}}, 2, true},
		{"read retries 500", callRead, []step{{500, `oops`, false}, {503, `oops`, false}, {200, okBody, false}}, 3, true},
		{"read retries network", callRead, []step{{0, "", true}, {200, okBody, false}}, 2, true},
		{"read gives up after max", callRead, []step{{502, ``, false}, {502, ``, false}, {502, ``, false}, {200, okBody, false}}, 3, false},
		{"read does not retry 40058", callRead, []step{{200, `{"errcode":40058,"errmsg":"bad"}`, false}, {200, okBody, false}}, 1, false},
		{"submit retries 45009", callSubmit, []step{{200, `{"errcode":45009,"errmsg":"freq"}`, false}, {200, okBody, false}}, 2, true},
		{"submit retries 45033", callSubmit, []step{{200, `{"errcode":45033,"errmsg":"conc"}`, false}, {200, okBody, false}}, 2, true},
		{"submit does not retry -1", callSubmit, []step{{200, `{"errcode":-1,"errmsg":"busy"}`, false}, {200, okBody, false}}, 1, false},
		{"submit does not retry 500", callSubmit, []step{{500, ``, false}, {200, okBody, false}}, 1, false},
		{"submit does not retry a dropped connection", callSubmit, []step{{0, "", true}, {200, okBody, false}}, 1, false},
		{"submit does not retry 302008", callSubmit, []step{{200, `{"errcode":302008,"errmsg":"running"}`, false}, {200, okBody, false}}, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, mt := mockClient(t)
			tokenResponder(t, mt)
			var calls atomic.Int64
			mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/batch/syncuser", func(r *http.Request) (*http.Response, error) {
				i := int(calls.Add(1)) - 1
				s := tc.steps[min(i, len(tc.steps)-1)]
				if s.netErr {
					return nil, errors.New("connection reset by peer")
				}
				return httpmock.NewStringResponse(s.status, s.body), nil
			})
			var o struct {
				JobID string `json:"jobid"`
			}
			err := c.postJSON(context.Background(), "/cgi-bin/batch/syncuser", map[string]string{"media_id": "m"}, tc.kind, &o)
			assert.Equal(t, tc.wantCalls, int(calls.Load()))
			if tc.wantOK {
				require.NoError(t, err)
				assert.Equal(t, "J", o.JobID)
			} else {
				require.Error(t, err)
				assert.NotContains(t, err.Error(), "tok-")
			}
		})
	}
}

func TestRetrySendsIdenticalBody(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t)
	tokenResponder(t, mt)
	var bodies [][]byte
	var mu sync.Mutex
	var calls atomic.Int64
	mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/batch/replaceuser", func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		if calls.Add(1) == 1 {
			return httpmock.NewStringResponse(200, `{"errcode":45033,"errmsg":"concurrency"}`), nil
		}
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok"}`), nil
	})
	require.NoError(t, c.postJSON(context.Background(), "/cgi-bin/batch/replaceuser", map[string]any{"media_id": "abc", "to_invite": false}, callSubmit, nil))
	require.Len(t, bodies, 2)
	assert.Equal(t, bodies[0], bodies[1])
	assert.JSONEq(t, `{"media_id":"abc","to_invite":false}`, string(bodies[0]))
}

func TestContextCancelStopsRetrySleep(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t, WithRetry(RetryPolicy{MaxAttempts: 10, MinDelay: time.Hour, MaxDelay: time.Hour}))
	tokenResponder(t, mt)
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/batch/getresult", httpmock.NewStringResponder(200, `{"errcode":-1,"errmsg":"busy"}`))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.getJSON(ctx, "/cgi-bin/batch/getresult", nil, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, IsCode(err, CodeSystemBusy), "the last API error is kept: %v", err)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for attempt := 1; attempt < 20; attempt++ {
		d := jitterBackoff(100*time.Millisecond, time.Second, attempt)
		want := min(100*time.Millisecond<<(attempt-1), time.Second)
		if attempt > 5 {
			want = time.Second
		}
		assert.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
		assert.LessOrEqual(t, d, want, "attempt %d", attempt)
	}
}

func TestNetworkErrorHasNoToken(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := NewClient(testCorp, testSecret,
		WithBaseURL("http://127.0.0.1:1"), // nothing listens on port 1
		WithLogger(logger),
		WithRetry(RetryPolicy{MaxAttempts: 2, MinDelay: time.Millisecond, MaxDelay: time.Millisecond}))
	require.NoError(t, err)
	_, err = c.AccessToken(context.Background())
	require.Error(t, err)
	var ne *NetworkError
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.NotSent)
	for _, s := range []string{err.Error(), logs.String()} {
		assert.NotContains(t, s, testSecret)
		assert.NotContains(t, s, "corpsecret=")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	in := `Get "https://x/cgi-bin/gettoken?corpid=a&corpsecret=TOPSECRET&x=1": EOF; access_token=T0K sign=abc`
	out := redact(in)
	assert.NotContains(t, out, "TOPSECRET")
	assert.NotContains(t, out, "T0K")
	assert.NotContains(t, out, "sign=abc")
	assert.Contains(t, out, "corpid=a")
}

// resty replaces a nil Transport on the client it is given; NewClient must
// not let it modify a shared *http.Client such as http.DefaultClient.
func TestNewClientDoesNotModifyTheHTTPClient(t *testing.T) {
	t.Parallel()
	hc := &http.Client{Timeout: 3 * time.Second}
	_, err := NewClient(testCorp, testSecret, WithHTTPClient(hc))
	require.NoError(t, err)
	assert.Nil(t, hc.Transport)
	assert.Equal(t, 3*time.Second, hc.Timeout)
}

// NetworkError.Unwrap is documented to return the transport error, so that
// errors.As finds a *net.OpError (and errors.Is a syscall errno), while its
// text stays redacted.
func TestNetworkErrorUnwrapsToTransportError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		query bool // the failing request carries an access_token
	}{
		{"gettoken", false},
		{"getresult", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(testCorp, testSecret,
				WithBaseURL("http://127.0.0.1:1"), // nothing listens on port 1
				WithRetry(RetryPolicy{MaxAttempts: 1}))
			require.NoError(t, err)
			if tc.query {
				c.tokens.remember(Token{Value: "tok-secret-value", ExpiresAt: time.Now().Add(time.Hour)}, time.Hour)
				err = c.getJSON(context.Background(), "/cgi-bin/batch/getresult", nil, nil)
			} else {
				_, err = c.AccessToken(context.Background())
			}
			var ne *NetworkError
			require.ErrorAs(t, err, &ne)
			var oe *net.OpError
			require.ErrorAs(t, err, &oe, "got %v", err)
			assert.Equal(t, "dial", oe.Op)
			assert.ErrorIs(t, err, syscall.ECONNREFUSED)
			assert.NotContains(t, err.Error(), testSecret)
			assert.NotContains(t, err.Error(), "tok-secret-value")
		})
	}
}

// The *http.Client's own Timeout is a network error, though net/http makes
// it match context.DeadlineExceeded: a read retries it while the caller's
// ctx is still live; a submission (which may have reached WeCom) does not.
func TestHTTPClientTimeoutIsANetworkError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		kind      callKind
		wantCalls int64
		wantOK    bool
	}{
		{"read retries", callRead, 2, true},
		{"submit reports", callSubmit, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mt := httpmock.NewMockTransport()
			c, _ := mockClient(t, WithHTTPClient(&http.Client{Transport: mt, Timeout: 100 * time.Millisecond}))
			tokenResponder(t, mt)
			var calls atomic.Int64
			mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/batch/syncuser", func(r *http.Request) (*http.Response, error) {
				if calls.Add(1) == 1 {
					<-r.Context().Done() // WeCom is slow: the client's timeout fires
					return nil, r.Context().Err()
				}
				return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","jobid":"J"}`), nil
			})
			err := c.postJSON(context.Background(), "/cgi-bin/batch/syncuser", map[string]string{"media_id": "m"}, tc.kind, nil)
			assert.Equal(t, tc.wantCalls, calls.Load())
			if tc.wantOK {
				require.NoError(t, err)
			} else {
				var ne *NetworkError
				require.ErrorAs(t, err, &ne)
			}
		})
	}
}
