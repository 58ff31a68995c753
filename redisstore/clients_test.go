package redisstore_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/redisstore"
	"github.com/wecomkit/wecom/wecomtest"
)

const pathGetToken = "/cgi-bin/gettoken"

// logCounter is a slog.Handler that remembers the messages logged.
type logCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	h.msgs = append(h.msgs, b.String())
	h.mu.Unlock()
	return nil
}

// count reports how many messages contain sub.
func (h *logCounter) count(sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

func (h *logCounter) all() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.msgs, "\n")
}

// replica is one process of a service: its own Store, HTTP client and
// wecom.Client, sharing one Redis with the others.
type replica struct {
	c   *wecom.Client
	log *logCounter
}

func newReplicas(t *testing.T, n int, srv *wecomtest.Server, rdb redis.UniversalClient) []replica {
	t.Helper()
	out := make([]replica, n)
	for i := range out {
		store, err := redisstore.New(rdb)
		require.NoError(t, err)
		tr := &http.Transport{MaxIdleConnsPerHost: 100}
		t.Cleanup(tr.CloseIdleConnections)
		lc := &logCounter{}
		c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL),
			wecom.WithHTTPClient(&http.Client{Transport: tr}), // each test's ctx bounds the calls
			wecom.WithTokenStore(store), wecom.WithLogger(slog.New(lc)))
		require.NoError(t, err)
		out[i] = replica{c: c, log: lc}
	}
	return out
}

// together runs fn on g goroutines per replica, all released at once.
func together(replicas []replica, g int, fn func(c *wecom.Client)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, r := range replicas {
		for range g {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				fn(r.c)
			}()
		}
	}
	close(start)
	wg.Wait()
}

// 8 replicas x 100 goroutines starting cold cause one gettoken; a token
// expiry that all 800 run into causes one refetch.
func TestReplicasShareOneGettoken(t *testing.T) {
	// Not parallel: its 800 goroutines would distort the latency bounds
	// of the notifier tests running beside it.
	r := startRedis(t)
	rdb := r.client(t)
	srv := wecomtest.NewServer()
	t.Cleanup(srv.Close)
	replicas := newReplicas(t, 8, srv, rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var failures atomic.Int64
	tokens := sync.Map{}
	together(replicas, 100, func(c *wecom.Client) {
		tok, err := c.AccessToken(ctx)
		if !assert.NoError(t, err) {
			failures.Add(1)
			return
		}
		tokens.Store(tok, true)
	})
	require.Zero(t, failures.Load())
	assert.Equal(t, 1, srv.CallCount(pathGetToken), "one gettoken for 800 cold callers on 8 replicas")
	n := 0
	tokens.Range(func(any, any) bool { n++; return true })
	assert.Equal(t, 1, n, "every caller got the same token")

	jobID, err := replicas[0].c.ExportSimpleUser(ctx, wecom.ExportRequest{})
	require.NoError(t, err)
	require.Equal(t, 1, srv.CallCount(pathGetToken))

	// WeCom expires the token: all 800 callers get 42001 with it, and
	// exactly one of them fetches the next one.
	srv.ExpireTokens()
	together(replicas, 100, func(c *wecom.Client) {
		_, err := c.GetExportResult(ctx, jobID)
		if !assert.NoError(t, err) {
			failures.Add(1)
		}
	})
	require.Zero(t, failures.Load())
	assert.Equal(t, 2, srv.CallCount(pathGetToken), "one refetch for 800 callers on 8 replicas")
	for i, rep := range replicas {
		assert.Zero(t, rep.log.count("token store failed"), "replica %d: %s", i, rep.log.all())
	}
}

func TestKeysHoldNoSecret(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	srv := wecomtest.NewServer()
	t.Cleanup(srv.Close)
	reps := newReplicas(t, 2, srv, rdb)
	ctx := context.Background()
	for _, rep := range reps {
		_, err := rep.c.AccessToken(ctx)
		require.NoError(t, err)
	}
	// Hold a lock too, so its key is scanned.
	store, err := redisstore.New(rdb)
	require.NoError(t, err)
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1, "one token for one (corp, secret)")
	unlock, err := store.LockToken(ctx, strings.TrimPrefix(keys[0], redisstore.DefaultKeyPrefix))
	require.NoError(t, err)
	defer unlock()

	keys, err = rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 2)
	for _, k := range keys {
		assert.True(t, strings.HasPrefix(k, redisstore.DefaultKeyPrefix), k)
		assert.Contains(t, k, srv.CorpID)
		assert.NotContains(t, k, srv.CorpSecret, "a key holds the secret")
	}
}

// Redis dies while 8 replicas are busy: every call still succeeds, a token
// expiry after the death is handled by fetching directly, and each replica
// logs the store failure once.
func TestRedisKilledCallsKeepWorking(t *testing.T) {
	// Not parallel: its 800 goroutines would distort the latency bounds
	// of the notifier tests running beside it.
	r := startRedis(t)
	rdb := r.client(t)
	srv := wecomtest.NewServer()
	t.Cleanup(srv.Close)
	replicas := newReplicas(t, 8, srv, rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	jobID, err := replicas[0].c.ExportSimpleUser(ctx, wecom.ExportRequest{})
	require.NoError(t, err)
	together(replicas, 1, func(c *wecom.Client) { _, _ = c.AccessToken(ctx) }) // warm all
	require.Equal(t, 1, srv.CallCount(pathGetToken))

	// Each goroutine calls until stopped, and at least twice after the
	// token expired, so every one of them exercises the Redis-less path.
	stop := make(chan struct{})
	var expired atomic.Bool
	var calls, afterExpiry, failures atomic.Int64
	var firstErr atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		together(replicas, 10, func(c *wecom.Client) {
			for n := 0; ; {
				select {
				case <-stop:
					if n >= 2 {
						return
					}
				default:
				}
				after := expired.Load()
				_, err := c.AccessToken(ctx)
				if err == nil {
					_, err = c.GetExportResult(ctx, jobID)
				}
				calls.Add(1)
				if after {
					n++
					afterExpiry.Add(1)
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}()
	time.Sleep(100 * time.Millisecond)
	r.Kill()
	time.Sleep(100 * time.Millisecond)
	srv.ExpireTokens() // every replica must now get a token without Redis
	expired.Store(true)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done

	assert.Zero(t, failures.Load(), "first error: %v (of %d calls)", firstErr.Load(), calls.Load())
	assert.GreaterOrEqual(t, afterExpiry.Load(), int64(2*8*10))
	got := srv.CallCount(pathGetToken)
	assert.GreaterOrEqual(t, got, 2, "the expired token was replaced")
	if !assert.LessOrEqual(t, got, 1+len(replicas), "at most one direct fetch per replica") {
		for i, rep := range replicas {
			t.Logf("replica %d: %d fetches\n%s", i, rep.log.count("fetched access token"), rep.log.all())
		}
	}
	for i, rep := range replicas {
		assert.Equal(t, 1, rep.log.count("token store failed; fetching tokens directly"), "replica %d logs once:\n%s", i, rep.log.all())
		assert.Contains(t, rep.log.all(), "redis", "the log names Redis")
	}

	// A replica starting while Redis is down works too.
	late := newReplicas(t, 1, srv, rdb)[0]
	tok, err := late.c.AccessToken(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, tok)
	assert.Equal(t, 1, late.log.count("token store failed"))
}
