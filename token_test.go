package wecom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func TestAccessTokenCachedAndRefreshedAhead(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	c, mt := mockClient(t, WithClock(clk.Now), WithTokenRefreshMargin(5*time.Minute))
	n := tokenResponder(t, mt)
	ctx := context.Background()

	tok, err := c.AccessToken(ctx)
	require.NoError(t, err)
	assert.Equal(t, "tok-1", tok)
	for i := 0; i < 10; i++ {
		tok, _ = c.AccessToken(ctx)
		assert.Equal(t, "tok-1", tok)
	}
	assert.EqualValues(t, 1, n.Load())

	clk.Add(7200*time.Second - 6*time.Minute) // still outside the margin
	tok, _ = c.AccessToken(ctx)
	assert.Equal(t, "tok-1", tok)
	clk.Add(2 * time.Minute) // inside the 5 min margin: refreshed ahead of expiry
	tok, _ = c.AccessToken(ctx)
	assert.Equal(t, "tok-2", tok)
	assert.EqualValues(t, 2, n.Load())
}

func TestAccessTokenErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t, WithRetry(RetryPolicy{MaxAttempts: 1}))
	var calls atomic.Int64
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", func(*http.Request) (*http.Response, error) {
		if calls.Add(1) == 1 {
			return httpmock.NewStringResponse(200, `{"errcode":40001,"errmsg":"invalid credential"}`), nil
		}
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","access_token":"good","expires_in":7200}`), nil
	})
	_, err := c.AccessToken(context.Background())
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, CodeInvalidCredential, ae.Code)
	assert.NotContains(t, err.Error(), testSecret)
	tok, err := c.AccessToken(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "good", tok)
}

func TestAccessTokenBadResponses(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"errcode":0,"errmsg":"ok","expires_in":7200}`,
		`{"errcode":0,"errmsg":"ok","access_token":"x"}`,
		`{"errcode":0,"errmsg":"ok","access_token":"x","expires_in":0}`,
		`{"errcode":0,"errmsg":"ok","access_token":"` + strings.Repeat("a", 513) + `","expires_in":7200}`,
	} {
		c, mt := mockClient(t)
		mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", httpmock.NewStringResponder(200, body))
		_, err := c.AccessToken(context.Background())
		var re *ResponseError
		assert.ErrorAs(t, err, &re, body)
	}
}

func TestColdCallersShareOneGettoken(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t)
	var calls atomic.Int64
	release := make(chan struct{})
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", func(*http.Request) (*http.Response, error) {
		calls.Add(1)
		<-release
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","access_token":"shared","expires_in":7200}`), nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := c.AccessToken(context.Background())
			if err == nil && tok != "shared" {
				err = errors.New("wrong token " + tok)
			}
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them pile up on the flight
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, calls.Load())
}

func TestCancelledWaiterDoesNotFailTheFlight(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t)
	release := make(chan struct{})
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", func(*http.Request) (*http.Response, error) {
		<-release
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","access_token":"T","expires_in":7200}`), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.AccessToken(ctx); done <- err }()
	second := make(chan string)
	go func() { tok, _ := c.AccessToken(context.Background()); second <- tok }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	close(release)
	assert.Equal(t, "T", <-second)
}

// TestTokenExpiredRefetchesOnce: 100 goroutines failing together with 42001
// cause exactly one new gettoken, and each call is retried once.
func TestTokenExpiredRefetchesOnce(t *testing.T) {
	t.Parallel()
	for _, code := range []int{CodeAccessTokenExpired, CodeInvalidAccessToken, CodeInvalidCredential} {
		c, mt := mockClient(t)
		n := tokenResponder(t, mt)
		var apiCalls atomic.Int64
		mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/batch/getresult", func(r *http.Request) (*http.Response, error) {
			apiCalls.Add(1)
			if r.URL.Query().Get("access_token") == "tok-1" {
				return httpmock.NewStringResponse(200, fmt.Sprintf(`{"errcode":%d,"errmsg":"access_token expired"}`, code)), nil
			}
			return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","status":3}`), nil
		})
		_, err := c.AccessToken(context.Background())
		require.NoError(t, err)
		var wg sync.WaitGroup
		var failures atomic.Int64
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.getJSON(context.Background(), "/cgi-bin/batch/getresult", nil, nil); err != nil {
					failures.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.Zero(t, failures.Load(), "code %d", code)
		assert.EqualValues(t, 2, n.Load(), "code %d: one initial gettoken and exactly one refetch", code)
		assert.LessOrEqual(t, apiCalls.Load(), int64(200))
	}
}

// slowInvalidateStore counts Invalidate calls, each taking a while.
type slowInvalidateStore struct {
	TokenStore
	invalidates atomic.Int64
}

func (s *slowInvalidateStore) Invalidate(ctx context.Context, key, stale string) error {
	s.invalidates.Add(1)
	time.Sleep(20 * time.Millisecond) // a network round trip
	return s.TokenStore.Invalidate(ctx, key, stale)
}

// TestTokenExpiredInvalidatesOnce: 100 goroutines rejected together with
// the same token share the store invalidation instead of sending 100.
func TestTokenExpiredInvalidatesOnce(t *testing.T) {
	t.Parallel()
	store := &slowInvalidateStore{TokenStore: NewMemoryTokenStore()}
	c, mt := mockClient(t, WithTokenStore(store))
	n := tokenResponder(t, mt)
	const callers = 100
	var arrived sync.WaitGroup
	arrived.Add(callers)
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/batch/getresult", func(r *http.Request) (*http.Response, error) {
		if r.URL.Query().Get("access_token") == "tok-1" {
			arrived.Done()
			arrived.Wait() // all callers hold the rejected token at once
			return httpmock.NewStringResponse(200, `{"errcode":42001,"errmsg":"access_token expired"}`), nil
		}
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","status":3}`), nil
	})
	_, err := c.AccessToken(context.Background())
	require.NoError(t, err)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.getJSON(context.Background(), "/cgi-bin/batch/getresult", nil, nil); err != nil {
				failures.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, failures.Load())
	assert.EqualValues(t, 2, n.Load())
	assert.LessOrEqual(t, store.invalidates.Load(), int64(10), "invalidations are shared, not one per caller")
}

func TestTokenExpiredIsRetriedOnlyOnce(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t)
	n := tokenResponder(t, mt)
	var apiCalls atomic.Int64
	mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/batch/syncuser", func(*http.Request) (*http.Response, error) {
		apiCalls.Add(1)
		return httpmock.NewStringResponse(200, `{"errcode":42001,"errmsg":"access_token expired"}`), nil
	})
	err := c.postJSON(context.Background(), "/cgi-bin/batch/syncuser", map[string]string{"media_id": "m"}, callSubmit, nil)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.True(t, ae.TokenExpired())
	assert.EqualValues(t, 2, apiCalls.Load())
	assert.EqualValues(t, 2, n.Load())
	assert.NotContains(t, err.Error(), "tok-")
}

func TestMemoryStoreCompareAndInvalidate(t *testing.T) {
	t.Parallel()
	s := NewMemoryTokenStore()
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "k", Token{Value: "new", ExpiresAt: time.Now().Add(time.Hour)}))
	require.NoError(t, s.Invalidate(ctx, "k", "old"))
	tok, ok, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "new", tok.Value)
	require.NoError(t, s.Invalidate(ctx, "k", "new"))
	_, ok, _ = s.Get(ctx, "k")
	assert.False(t, ok)
}

func TestStoreKeyHoldsNoSecret(t *testing.T) {
	t.Parallel()
	k := storeKey("ww1", "my-very-secret")
	assert.NotContains(t, k, "my-very-secret")
	assert.Contains(t, k, "ww1")
	assert.NotEqual(t, k, storeKey("ww1", "other-secret"))
	assert.NotEqual(t, k, storeKey("ww2", "my-very-secret"))
}

// lockingStore records LockToken calls and shares its tokens.
type lockingStore struct {
	TokenStore
	mu    sync.Mutex
	locks atomic.Int64
}

func (s *lockingStore) LockToken(ctx context.Context, key string) (func(), error) {
	s.locks.Add(1)
	s.mu.Lock()
	return s.mu.Unlock, nil
}

// Two clients (two "processes") sharing a locking store fetch one token.
func TestTokenLockerSharesAcrossClients(t *testing.T) {
	t.Parallel()
	store := &lockingStore{TokenStore: NewMemoryTokenStore()}
	mt := httpmock.NewMockTransport()
	n := tokenResponder(t, mt)
	var clients []*Client
	for i := 0; i < 4; i++ {
		c, err := NewClient(testCorp, testSecret, WithBaseURL(testBase), WithHTTPClient(&http.Client{Transport: mt}), WithTokenStore(store))
		require.NoError(t, err)
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		for i := 0; i < 25; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := c.AccessToken(context.Background())
				assert.NoError(t, err)
				assert.Equal(t, "tok-1", tok)
			}()
		}
	}
	wg.Wait()
	assert.EqualValues(t, 1, n.Load())
	assert.GreaterOrEqual(t, store.locks.Load(), int64(1))
}

// failingStore fails every operation: the client still works.
type failingStore struct{}

func (failingStore) Get(context.Context, string) (Token, bool, error) {
	return Token{}, false, errors.New("store down")
}
func (failingStore) Set(context.Context, string, Token) error { return errors.New("store down") }
func (failingStore) Invalidate(context.Context, string, string) error {
	return errors.New("store down")
}

func TestFailingStoreFallsBack(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t, WithTokenStore(failingStore{}))
	n := tokenResponder(t, mt)
	for i := 0; i < 5; i++ {
		tok, err := c.AccessToken(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "tok-1", tok)
	}
	assert.EqualValues(t, 1, n.Load())
}

// TestFailingStoreRefetchesOnce: with the store down, callers rejected
// together still cause one gettoken; a caller that missed the cache just
// as the shared fetch ended must not start a second one.
func TestFailingStoreRefetchesOnce(t *testing.T) {
	t.Parallel()
	for range 20 {
		c, mt := mockClient(t, WithTokenStore(failingStore{}))
		n := tokenResponder(t, mt)
		mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/batch/getresult", func(r *http.Request) (*http.Response, error) {
			if r.URL.Query().Get("access_token") == "tok-1" {
				return httpmock.NewStringResponse(200, `{"errcode":42001,"errmsg":"access_token expired"}`), nil
			}
			return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","status":3}`), nil
		})
		_, err := c.AccessToken(context.Background())
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.NoError(t, c.getJSON(context.Background(), "/cgi-bin/batch/getresult", nil, nil))
			}()
		}
		wg.Wait()
		require.EqualValues(t, 2, n.Load(), "one initial gettoken and one refetch")
	}
}

// blockingInvalidateStore holds Invalidate until released.
type blockingInvalidateStore struct {
	TokenStore
	entered, release chan struct{}
}

func (s *blockingInvalidateStore) Invalidate(ctx context.Context, key, stale string) error {
	close(s.entered)
	<-s.release
	return s.TokenStore.Invalidate(ctx, key, stale)
}

// TestRejectedTokenNotReloadedFromStore: while the store is still removing
// a rejected token (a network round trip), a caller that misses the cache
// must not load that token back from the store.
func TestRejectedTokenNotReloadedFromStore(t *testing.T) {
	t.Parallel()
	store := &blockingInvalidateStore{TokenStore: NewMemoryTokenStore(), entered: make(chan struct{}), release: make(chan struct{})}
	c, mt := mockClient(t, WithTokenStore(store))
	n := tokenResponder(t, mt)
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/batch/getresult", func(r *http.Request) (*http.Response, error) {
		if r.URL.Query().Get("access_token") == "tok-1" {
			return httpmock.NewStringResponse(200, `{"errcode":42001,"errmsg":"access_token expired"}`), nil
		}
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","status":3}`), nil
	})
	ctx := context.Background()
	tok, err := c.AccessToken(ctx)
	require.NoError(t, err)
	require.Equal(t, "tok-1", tok)

	done := make(chan error, 1)
	go func() { done <- c.getJSON(ctx, "/cgi-bin/batch/getresult", nil, nil) }()
	<-store.entered // tok-1 rejected; the store still holds it
	tok, err = c.AccessToken(ctx)
	require.NoError(t, err)
	assert.Equal(t, "tok-2", tok, "the rejected token came back from the store")
	close(store.release)
	require.NoError(t, <-done)
	assert.EqualValues(t, 2, n.Load())
}

func BenchmarkAccessTokenWarm(b *testing.B) {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", httpmock.NewStringResponder(200, `{"errcode":0,"errmsg":"ok","access_token":"T","expires_in":7200}`))
	c, _ := NewClient(testCorp, testSecret, WithBaseURL(testBase), WithHTTPClient(&http.Client{Transport: mt}))
	ctx := context.Background()
	if _, err := c.AccessToken(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AccessToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessTokenCold1000: 1,000 concurrent cold callers per
// iteration; reports gettoken calls per iteration (must be 1).
func BenchmarkAccessTokenCold1000(b *testing.B) {
	var calls atomic.Int64
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", func(*http.Request) (*http.Response, error) {
		calls.Add(1)
		time.Sleep(time.Millisecond) // a network round trip
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","access_token":"T","expires_in":7200}`), nil
	})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c, _ := NewClient(testCorp, testSecret, WithBaseURL(testBase), WithHTTPClient(&http.Client{Transport: mt}))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j := 0; j < 1000; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := c.AccessToken(context.Background()); err != nil {
					b.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	b.ReportMetric(float64(calls.Load())/float64(b.N), "gettoken/op")
}

// A gettoken answer the client cannot use must not put the token it holds
// into the error (whose ResponseError quotes the start of the body) or the log.
func TestBadGettokenResponseHidesToken(t *testing.T) {
	t.Parallel()
	const tok = "TOKENVALUE0123456789abcdefghijklmnopqrstuvwxyz"
	cases := []struct{ name, body string }{
		{"expires_in not an integer", `{"errcode":0,"errmsg":"ok","access_token":"` + tok + `","expires_in":"soon"}`},
		{"truncated", `{"errcode":0,"errmsg":"ok","access_token":"` + tok},
		{"spaced JSON", `{"errcode": 0, "access_token" : "` + tok + `", "expires_in": 7200.5}`},
		{"HTTP 502 echoing JSON", `{"access_token":"` + tok + `"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer // written by the flight, read after it ended
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, mt := mockClient(t, WithLogger(logger))
			status := 200
			if strings.HasPrefix(tc.name, "HTTP 502") {
				status = 502
			}
			mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/gettoken", httpmock.NewStringResponder(status, tc.body))
			_, err := c.AccessToken(context.Background())
			var re *ResponseError
			require.ErrorAs(t, err, &re)
			assert.NotContains(t, err.Error(), tok[:8])
			assert.NotContains(t, logs.String(), tok[:8])
		})
	}
}
