package wecom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Token is an access_token and the moment it stops being valid.
// See https://developer.work.weixin.qq.com/document/path/91039.
type Token struct {
	Value     string
	ExpiresAt time.Time
}

// TokenStore keeps access tokens, keyed by a string that names the corp and
// a hash of the secret (never the secret). Implementations must be safe for
// concurrent use. Get reports false when there is no token for key.
type TokenStore interface {
	Get(ctx context.Context, key string) (Token, bool, error)
	Set(ctx context.Context, key string, t Token) error
	// Invalidate removes the token for key only if its value is still
	// stale, so that a token another caller just fetched survives.
	Invalidate(ctx context.Context, key, stale string) error
}

// TokenLocker is implemented by a TokenStore that can serialize token
// fetches across processes. The client takes the lock before calling
// gettoken and re-reads the store after getting it, so N processes starting
// cold cause one gettoken.
type TokenLocker interface {
	LockToken(ctx context.Context, key string) (unlock func(), err error)
}

// NewMemoryTokenStore returns a TokenStore that keeps tokens in this
// process.
func NewMemoryTokenStore() TokenStore {
	return &memoryStore{m: make(map[string]Token)}
}

type memoryStore struct {
	mu sync.Mutex
	m  map[string]Token
}

func (s *memoryStore) Get(_ context.Context, key string) (Token, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[key]
	return t, ok, nil
}

func (s *memoryStore) Set(_ context.Context, key string, t Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = t
	return nil
}

func (s *memoryStore) Invalidate(_ context.Context, key, stale string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.m[key]; ok && t.Value == stale {
		delete(s.m, key)
	}
	return nil
}

// tokenCache sits in front of the TokenStore. The warm path is one atomic
// load and a clock read; a miss goes through singleflight (one gettoken per
// process) and, when the store is a TokenLocker, a cross-process lock.
type tokenCache struct {
	c      *Client
	store  TokenStore
	key    string
	margin time.Duration
	hot    atomic.Pointer[cachedToken]
	sf     singleflight.Group

	storeWarned atomic.Bool
	// stale is the token last invalidated here. fromStore refuses it: a
	// load that reads the store before the invalidation has reached it
	// must not bring the rejected token back.
	stale atomic.Pointer[string]
}

func newTokenCache(c *Client, store TokenStore, key string, margin time.Duration) *tokenCache {
	return &tokenCache{c: c, store: store, key: key, margin: margin}
}

// cachedToken is a token and the moment the cache stops handing it out.
type cachedToken struct {
	value     string
	refreshAt time.Time
}

// fresh reports whether t, read from the store, can still be used.
func (tc *tokenCache) fresh(t Token) bool {
	return t.Value != "" && tc.c.now().Before(t.ExpiresAt.Add(-tc.margin))
}

// remember puts t in the in-process cache. lifetime is how long t was
// issued for (0 when unknown); the refresh margin is at most a quarter of
// it, so short-lived tokens are still used.
func (tc *tokenCache) remember(t Token, lifetime time.Duration) {
	m := tc.margin
	if lifetime > 0 {
		m = min(m, lifetime/4)
	}
	tc.hot.Store(&cachedToken{value: t.Value, refreshAt: t.ExpiresAt.Add(-m)})
}

// tokenFetchTimeout bounds one shared gettoken, which outlives the ctx of
// the caller that happened to start it.
const tokenFetchTimeout = 30 * time.Second

// cached returns the token of the in-process cache, if it is still to be
// handed out.
func (tc *tokenCache) cached() (string, bool) {
	if t := tc.hot.Load(); t != nil && tc.c.now().Before(t.refreshAt) {
		return t.value, true
	}
	return "", false
}

// get returns a usable token.
func (tc *tokenCache) get(ctx context.Context) (string, error) {
	if v, ok := tc.cached(); ok {
		return v, nil
	}
	ch := tc.sf.DoChan("token", func() (any, error) {
		// The fetch is shared by every waiting caller, so one caller's
		// cancellation must not fail the others: detach it, with a bound.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenFetchTimeout)
		defer cancel()
		return tc.load(fctx)
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// load finds a token in the store or fetches one.
func (tc *tokenCache) load(ctx context.Context) (string, error) {
	// A flight that ended between the caller's look at the cache and the
	// start of this one has just filled it; without this, a store that is
	// down would make this flight fetch a second token.
	if v, ok := tc.cached(); ok {
		return v, nil
	}
	if t, ok := tc.fromStore(ctx); ok {
		return t, nil
	}
	if l, ok := tc.store.(TokenLocker); ok {
		unlock, err := l.LockToken(ctx, tc.key)
		if err != nil {
			tc.warnStore("lock", err)
		} else {
			defer unlock()
			// Another process may have fetched while we waited.
			if t, ok := tc.fromStore(ctx); ok {
				return t, nil
			}
		}
	}
	t, lifetime, err := tc.c.fetchToken(ctx)
	if err != nil {
		return "", err
	}
	if err := tc.store.Set(ctx, tc.key, t); err != nil {
		tc.warnStore("set", err)
	}
	tc.remember(t, lifetime)
	return t.Value, nil
}

func (tc *tokenCache) fromStore(ctx context.Context) (string, bool) {
	t, ok, err := tc.store.Get(ctx, tc.key)
	if err != nil {
		tc.warnStore("get", err)
		return "", false
	}
	if !ok || !tc.fresh(t) {
		return "", false
	}
	if tc.isStale(t.Value) {
		return "", false
	}
	tc.remember(t, 0)
	// An invalidation of this very token may have landed between the check
	// and remember: take it back out rather than hand it out again.
	if tc.isStale(t.Value) {
		if h := tc.hot.Load(); h != nil && h.value == t.Value {
			tc.hot.CompareAndSwap(h, nil)
		}
		return "", false
	}
	return t.Value, true
}

// isStale reports whether v is the token last invalidated here.
func (tc *tokenCache) isStale(v string) bool {
	st := tc.stale.Load()
	return st != nil && *st == v
}

// warnStore logs a store failure once per client; the client goes on
// without the store (fetching tokens directly).
func (tc *tokenCache) warnStore(op string, err error) {
	if tc.storeWarned.CompareAndSwap(false, true) {
		tc.c.log.Warn("wecom: token store failed; fetching tokens directly", slog.String("op", op), slog.String("error", redact(err.Error())))
	}
}

// invalidate drops stale from the cache and the store, unless a newer
// token has replaced it already. Callers rejected with the same token at
// the same time share one store round trip (with a shared store, N
// goroutines failing together would otherwise send N invalidations), and
// each returns only after it is done, so its next read of the store cannot
// bring stale back. A caller whose ctx ends stops waiting and gets nil: its
// call fails on ctx anyway, and that is no store failure.
func (tc *tokenCache) invalidate(ctx context.Context, stale string) error {
	tc.stale.Store(&stale) // before the cache is cleared: no load may take it back
	if t := tc.hot.Load(); t != nil && t.value == stale {
		tc.hot.CompareAndSwap(t, nil)
	}
	ch := tc.sf.DoChan("invalidate\x00"+stale, func() (any, error) {
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenFetchTimeout)
		defer cancel()
		return nil, tc.store.Invalidate(ictx, tc.key, stale)
	})
	select {
	case <-ctx.Done():
		return nil
	case r := <-ch:
		return r.Err
	}
}

// AccessToken returns a valid access_token, from the cache or from
// gettoken, for calling WeCom APIs this library does not wrap.
// See https://developer.work.weixin.qq.com/document/path/91039.
func (c *Client) AccessToken(ctx context.Context) (string, error) {
	if ctx == nil {
		return "", errors.New("wecom: nil context")
	}
	return c.tokens.get(ctx)
}

type tokenResponse struct {
	AccessToken string   `json:"access_token"`
	ExpiresIn   *flexInt `json:"expires_in"`
}

// fetchToken calls gettoken and returns the token and its lifetime.
func (c *Client) fetchToken(ctx context.Context) (Token, time.Duration, error) {
	var tr tokenResponse
	q := url.Values{"corpid": {c.corpID}, "corpsecret": {c.secret}}
	err := c.call(ctx, apiCall{method: http.MethodGet, path: "/cgi-bin/gettoken", query: q, kind: callRead, noToken: true}, &tr)
	if err != nil {
		return Token{}, 0, err
	}
	if tr.AccessToken == "" || tr.ExpiresIn == nil || *tr.ExpiresIn <= 0 {
		return Token{}, 0, &ResponseError{Path: "/cgi-bin/gettoken", StatusCode: http.StatusOK, Reason: "no access_token or expires_in in the response"}
	}
	if len(tr.AccessToken) > 512 {
		return Token{}, 0, &ResponseError{Path: "/cgi-bin/gettoken", StatusCode: http.StatusOK, Reason: fmt.Sprintf("access_token of %d bytes exceeds the documented 512", len(tr.AccessToken))}
	}
	c.log.Debug("wecom: fetched access token", slog.Int64("expires_in", int64(*tr.ExpiresIn)))
	lifetime := time.Duration(*tr.ExpiresIn) * time.Second
	return Token{Value: tr.AccessToken, ExpiresAt: c.now().Add(lifetime)}, lifetime, nil
}
