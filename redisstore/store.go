package redisstore

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wecomkit/wecom"
)

// Defaults of New.
const (
	// DefaultKeyPrefix is put in front of every key and channel name.
	DefaultKeyPrefix = "wecom:"
	// DefaultLockTTL is how long a token lock lives if its holder never
	// releases it (a crashed replica).
	DefaultLockTTL = 10 * time.Second
	// DefaultLockWait is how long LockToken waits for a lock another
	// replica holds before giving up.
	DefaultLockWait = 5 * time.Second
)

// unlockTimeout bounds the release of a token lock, which runs detached
// from the caller's ctx.
const unlockTimeout = 2 * time.Second

// Lock polling: a waiter retries SET NX every lockPollMin plus up to
// lockPollJitter, so it notices a released lock within ~15 ms.
const (
	lockPollMin    = 5 * time.Millisecond
	lockPollJitter = 10 * time.Millisecond
)

// ErrLockTimeout is returned (wrapped) by LockToken when another replica
// held the token lock for the whole of the lock wait. A wecom.Client that
// gets it fetches a token without the lock.
var ErrLockTimeout = errors.New("redisstore: timed out waiting for the redis token lock")

// Store is a wecom.TokenStore and wecom.TokenLocker on Redis, so that the
// replicas of a service share one access_token and fetch it once.
//
// A token is stored as its raw value under prefix+key, with a Redis TTL
// equal to its remaining lifetime; Get derives ExpiresAt from the TTL, so
// replicas need not agree on the clock. Invalidate and the release of a
// lock are compare-and-delete Lua scripts. Store is safe for concurrent use.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	lockTTL  time.Duration
	lockWait time.Duration
	log      *slog.Logger
}

var (
	_ wecom.TokenStore  = (*Store)(nil)
	_ wecom.TokenLocker = (*Store)(nil)
)

// Option configures New.
type Option func(*Store)

// WithKeyPrefix sets the prefix of every key the Store writes (default
// DefaultKeyPrefix, "wecom:"). The token of a client lives under
// prefix+key, where key is the wecom.Client's store key (the corp id and a
// hash of the secret, never the secret); its lock under prefix+key+":lock".
func WithKeyPrefix(p string) Option {
	return func(s *Store) { s.prefix = p }
}

// WithLockTTL sets how long a token lock lives when its holder does not
// release it (default DefaultLockTTL, 10 s). It must be positive, and
// longer than a gettoken takes.
func WithLockTTL(d time.Duration) Option {
	return func(s *Store) { s.lockTTL = d }
}

// WithLockWait bounds how long LockToken waits for a lock held by another
// replica (default DefaultLockWait, 5 s). 0 tries once. It must not be
// negative.
func WithLockWait(d time.Duration) Option {
	return func(s *Store) { s.lockWait = d }
}

// WithLogger sets the logger for failures the Store cannot return, such as
// a lock release that did not reach Redis (default: silent). Nothing it
// logs contains a token.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns a Store on rdb (a *redis.Client, *redis.ClusterClient,
// *redis.Ring or failover client). The Store does not own rdb: close it
// yourself. New fails on a nil rdb or an invalid option.
func New(rdb redis.UniversalClient, opts ...Option) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: nil redis client")
	}
	s := &Store{
		rdb:      rdb,
		prefix:   DefaultKeyPrefix,
		lockTTL:  DefaultLockTTL,
		lockWait: DefaultLockWait,
		log:      slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	if s.lockTTL <= 0 {
		return nil, fmt.Errorf("redisstore: lock TTL %v is not positive", s.lockTTL)
	}
	if s.lockWait < 0 {
		return nil, fmt.Errorf("redisstore: lock wait %v is negative", s.lockWait)
	}
	return s, nil
}

// getScript reads a token and its remaining lifetime in one atomic step.
var getScript = redis.NewScript(`return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}`)

// compareAndDelete deletes KEYS[1] only if it still holds ARGV[1]. It
// serves Invalidate (a token another replica just stored survives) and
// the release of a lock (a lock that expired and was taken by another
// replica survives).
var compareAndDelete = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`)

func (s *Store) tokenKey(key string) string { return s.prefix + key }
func (s *Store) lockKey(key string) string  { return s.prefix + key + ":lock" }

// Get returns the token stored for key, with ExpiresAt computed from its
// Redis TTL. It reports false when there is none.
func (s *Store) Get(ctx context.Context, key string) (wecom.Token, bool, error) {
	if key == "" {
		return wecom.Token{}, false, errors.New("redisstore: Get: empty key")
	}
	now := time.Now()
	vals, err := getScript.Run(ctx, s.rdb, []string{s.tokenKey(key)}).Slice()
	if err != nil {
		return wecom.Token{}, false, fmt.Errorf("redisstore: reading token from redis: %w", err)
	}
	if len(vals) != 2 {
		return wecom.Token{}, false, fmt.Errorf("redisstore: reading token from redis: unexpected reply of %d elements", len(vals))
	}
	v, _ := vals[0].(string)
	pttl, _ := vals[1].(int64)
	// pttl is -2 when the key is gone and -1 when it has no TTL, which
	// this Store never writes: treat both as no token.
	if v == "" || pttl <= 0 {
		return wecom.Token{}, false, nil
	}
	return wecom.Token{Value: v, ExpiresAt: now.Add(time.Duration(pttl) * time.Millisecond)}, true, nil
}

// Set stores t for key with a TTL of the time left until t.ExpiresAt. A
// token that has already expired is not stored.
func (s *Store) Set(ctx context.Context, key string, t wecom.Token) error {
	if key == "" {
		return errors.New("redisstore: Set: empty key")
	}
	if t.Value == "" {
		return errors.New("redisstore: Set: empty token")
	}
	ttl := time.Until(t.ExpiresAt)
	if ttl < time.Millisecond {
		return nil
	}
	if err := s.rdb.Set(ctx, s.tokenKey(key), t.Value, ttl).Err(); err != nil {
		return fmt.Errorf("redisstore: writing token to redis: %w", err)
	}
	return nil
}

// Invalidate deletes the token stored for key only if it is still stale,
// atomically, so that it never deletes a token another replica has just
// fetched.
func (s *Store) Invalidate(ctx context.Context, key, stale string) error {
	if key == "" {
		return errors.New("redisstore: Invalidate: empty key")
	}
	if stale == "" {
		return nil
	}
	if err := compareAndDelete.Run(ctx, s.rdb, []string{s.tokenKey(key)}, stale).Err(); err != nil {
		return fmt.Errorf("redisstore: invalidating token in redis: %w", err)
	}
	return nil
}

// LockToken takes the lock that serializes gettoken for key across
// replicas: SET NX PX with a random value, retried every 5–15 ms until it
// is acquired, the lock wait (WithLockWait) elapses — the error then wraps
// ErrLockTimeout — or ctx ends. The returned unlock releases the lock if
// this caller still holds it (compare-and-delete); it runs even after ctx
// has ended, and is safe to call more than once. A lock whose holder dies
// expires after the lock TTL (WithLockTTL).
func (s *Store) LockToken(ctx context.Context, key string) (unlock func(), err error) {
	if key == "" {
		return nil, errors.New("redisstore: LockToken: empty key")
	}
	lk := s.lockKey(key)
	val, err := randomValue()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(s.lockWait)
	var timer *time.Timer
	for {
		ok, err := s.rdb.SetNX(ctx, lk, val, s.lockTTL).Result()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("redisstore: waiting for the redis token lock: %w", ctx.Err())
			}
			return nil, fmt.Errorf("redisstore: taking the token lock in redis: %w", err)
		}
		if ok {
			return s.unlocker(ctx, lk, val), nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%w (waited %v)", ErrLockTimeout, s.lockWait)
		}
		d := min(lockPollMin+rand.N(lockPollJitter), left)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("redisstore: waiting for the redis token lock: %w", ctx.Err())
		case <-timer.C:
		}
	}
}

// unlocker returns the release of the lock lk held with val.
func (s *Store) unlocker(ctx context.Context, lk, val string) func() {
	// The caller's ctx may end before unlock runs; a lock left behind
	// would stall the other replicas for the whole lock TTL.
	base := context.WithoutCancel(ctx)
	var once sync.Once
	return func() { once.Do(func() { s.unlock(base, lk, val) }) }
}

// unlock deletes lk if it still holds val.
func (s *Store) unlock(base context.Context, lk, val string) {
	ctx, cancel := context.WithTimeout(base, unlockTimeout)
	defer cancel()
	if err := compareAndDelete.Run(ctx, s.rdb, []string{lk}, val).Err(); err != nil {
		s.log.Warn("redisstore: releasing the token lock in redis failed; it expires by itself",
			slog.Duration("lock_ttl", s.lockTTL), slog.String("error", err.Error()))
	}
}

// randomValue returns an unguessable lock value.
func randomValue() (string, error) {
	var b [16]byte
	if _, err := cryptorand.Read(b[:]); err != nil {
		return "", fmt.Errorf("redisstore: random lock value: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
