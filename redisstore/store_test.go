package redisstore_test

import (
	"context"
	"errors"
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
)

func newStore(t *testing.T, rdb redis.UniversalClient, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(rdb, opts...)
	require.NoError(t, err)
	return s
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := redisstore.New(nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis")

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	_, err = redisstore.New(rdb, redisstore.WithLockTTL(0))
	assert.ErrorContains(t, err, "lock TTL")
	_, err = redisstore.New(rdb, redisstore.WithLockWait(-time.Second))
	assert.ErrorContains(t, err, "lock wait")
	_, err = redisstore.New(rdb, nil, redisstore.WithLogger(nil))
	assert.NoError(t, err)
}

func TestSetGetWithTTL(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	s := newStore(t, rdb, redisstore.WithKeyPrefix("app1:"))
	ctx := context.Background()

	_, ok, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.False(t, ok, "nothing stored yet")

	exp := time.Now().Add(90 * time.Second)
	require.NoError(t, s.Set(ctx, "k", wecom.Token{Value: "tok-1", ExpiresAt: exp}))

	raw, err := rdb.Get(ctx, "app1:k").Result()
	require.NoError(t, err)
	assert.Equal(t, "tok-1", raw, "stored raw under prefix+key")
	ttl, err := rdb.PTTL(ctx, "app1:k").Result()
	require.NoError(t, err)
	assert.InDelta(t, float64(90*time.Second), float64(ttl), float64(2*time.Second), "TTL matches the expiry")

	got, ok, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "tok-1", got.Value)
	assert.WithinDuration(t, exp, got.ExpiresAt, 2*time.Second)

	// An expired token is not stored; an empty one is refused.
	require.NoError(t, s.Set(ctx, "old", wecom.Token{Value: "x", ExpiresAt: time.Now().Add(-time.Second)}))
	n, err := rdb.Exists(ctx, "app1:old").Result()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Error(t, s.Set(ctx, "k", wecom.Token{ExpiresAt: exp}))
	_, _, err = s.Get(ctx, "")
	assert.Error(t, err)

	// The key really expires with the token.
	require.NoError(t, s.Set(ctx, "short", wecom.Token{Value: "s", ExpiresAt: time.Now().Add(400 * time.Millisecond)}))
	_, ok, _ = s.Get(ctx, "short")
	assert.True(t, ok)
	time.Sleep(600 * time.Millisecond)
	_, ok, err = s.Get(ctx, "short")
	require.NoError(t, err)
	assert.False(t, ok, "gone after its expiry")
}

func TestInvalidateComparesValue(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := newStore(t, r.client(t))
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)

	require.NoError(t, s.Set(ctx, "k", wecom.Token{Value: "fresh", ExpiresAt: exp}))
	// Another replica rejects the token it used before "fresh" was stored.
	require.NoError(t, s.Invalidate(ctx, "k", "stale"))
	got, ok, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok, "a fresher token survives")
	assert.Equal(t, "fresh", got.Value)

	require.NoError(t, s.Invalidate(ctx, "k", "fresh"))
	_, ok, err = s.Get(ctx, "k")
	require.NoError(t, err)
	assert.False(t, ok, "the stale value is removed")
	require.NoError(t, s.Invalidate(ctx, "k", "fresh"), "invalidating a missing token is fine")
}

func TestLockTokenExclusiveAndBounded(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	s := newStore(t, rdb, redisstore.WithLockWait(200*time.Millisecond))
	ctx := context.Background()

	unlock, err := s.LockToken(ctx, "k")
	require.NoError(t, err)

	start := time.Now()
	_, err = s.LockToken(ctx, "k")
	waited := time.Since(start)
	require.ErrorIs(t, err, redisstore.ErrLockTimeout)
	assert.Contains(t, err.Error(), "redis")
	assert.GreaterOrEqual(t, waited, 200*time.Millisecond)
	assert.Less(t, waited, 2*time.Second, "the wait is bounded (well below the 5 s default)")

	// A waiter (with the default wait) gets the lock within a few polls
	// of its release.
	patient := newStore(t, rdb)
	got := make(chan time.Time, 1)
	go func() {
		u, err := patient.LockToken(ctx, "k")
		if assert.NoError(t, err) {
			got <- time.Now()
			u()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	released := time.Now()
	unlock()
	unlock() // idempotent
	select {
	case at := <-got:
		assert.Less(t, at.Sub(released), 500*time.Millisecond, "polls every 5-15 ms")
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not get the released lock")
	}

	// ctx ends the wait.
	unlock, err = s.LockToken(ctx, "k")
	require.NoError(t, err)
	defer unlock()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, err = s.LockToken(cctx, "k")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// The unlock of a lock that expired and was taken by another replica must
// not release the other replica's lock; an unlock after the caller's ctx
// ended still releases.
func TestLockTokenUnlockIsCompareAndDelete(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	// A's lock expires quickly; B's outlives the test, however slow it runs.
	sA := newStore(t, rdb, redisstore.WithLockTTL(50*time.Millisecond), redisstore.WithLockWait(0))
	sB := newStore(t, rdb, redisstore.WithLockWait(0))
	ctx := context.Background()

	unlockA, err := sA.LockToken(ctx, "k")
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // A's lock expired
	unlockB, err := sB.LockToken(ctx, "k")
	require.NoError(t, err)
	unlockA()
	_, err = sA.LockToken(ctx, "k")
	require.ErrorIs(t, err, redisstore.ErrLockTimeout, "B still holds the lock")
	unlockB()
	u, err := sA.LockToken(ctx, "k")
	require.NoError(t, err, "B's unlock released it")
	u()

	cctx, cancel := context.WithCancel(ctx)
	unlock, err := sB.LockToken(cctx, "k2")
	require.NoError(t, err)
	cancel()
	unlock()
	u, err = sB.LockToken(ctx, "k2")
	require.NoError(t, err, "released despite the cancelled ctx")
	u()
}

// Many lockers: never two holders at once.
func TestLockTokenMutualExclusion(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	var inside, maxInside, total atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		s := newStore(t, rdb)
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				unlock, err := s.LockToken(context.Background(), "k")
				if !assert.NoError(t, err) {
					return
				}
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				total.Add(1)
				unlock()
			}()
		}
	}
	wg.Wait()
	assert.EqualValues(t, 20, total.Load())
	assert.EqualValues(t, 1, maxInside.Load())
}

func TestRedisDownErrorsNameRedis(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	s := newStore(t, rdb)
	r.Kill()
	ctx := context.Background()

	_, _, err := s.Get(ctx, "k")
	assertRedisErr(t, err)
	assertRedisErr(t, s.Set(ctx, "k", wecom.Token{Value: "v", ExpiresAt: time.Now().Add(time.Hour)}))
	assertRedisErr(t, s.Invalidate(ctx, "k", "v"))
	_, err = s.LockToken(ctx, "k")
	assertRedisErr(t, err)
	assert.False(t, errors.Is(err, redisstore.ErrLockTimeout), "a down Redis is not a held lock")
}

func assertRedisErr(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, "redisstore: "), msg)
	assert.Contains(t, msg, "redis", msg)
}
