package redisstore_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/redisstore"
	"github.com/wecomkit/wecom/wecomtest"
)

// BenchmarkAccessTokenWarmRedis: a warm AccessToken on a client whose
// store is Redis. The client's in-process cache answers, so it must stay
// well under 1 µs/op and never touch Redis.
func BenchmarkAccessTokenWarmRedis(b *testing.B) {
	r := startRedis(b)
	srv := wecomtest.NewServer()
	b.Cleanup(srv.Close)
	store, err := redisstore.New(r.client(b))
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{}
	b.Cleanup(tr.CloseIdleConnections)
	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL),
		wecom.WithHTTPClient(&http.Client{Transport: tr}), wecom.WithTokenStore(store))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.AccessToken(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.AccessToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreGet: one Store.Get, a real Redis round trip (EVALSHA on
// loopback), for comparison with the warm path above.
func BenchmarkStoreGet(b *testing.B) {
	r := startRedis(b)
	store, err := redisstore.New(r.client(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Set(ctx, "k", wecom.Token{Value: "tok", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok, err := store.Get(ctx, "k"); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
