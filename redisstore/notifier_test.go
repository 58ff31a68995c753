package redisstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/redisstore"
	"github.com/wecomkit/wecom/wecomtest"
)

func newNotifier(t *testing.T, rdb redis.UniversalClient, opts ...redisstore.NotifierOption) *redisstore.Notifier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := redisstore.NewNotifier(ctx, rdb, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	return n
}

func receive(t *testing.T, ch <-chan *wecom.BatchJobEvent, within time.Duration) *wecom.BatchJobEvent {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
		return nil
	}
}

func TestNotifierAcrossReplicas(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	a := newNotifier(t, r.client(t)) // separate connections, as on two hosts
	b := newNotifier(t, r.client(t))
	assert.Equal(t, "wecom:jobs", a.Channel())

	evA, cancelA := a.JobNotifier().Subscribe("job-x")
	defer cancelA()
	evB, cancelB := b.JobNotifier().Subscribe("job-x")
	defer cancelB()
	other, cancelO := a.JobNotifier().Subscribe("job-y")
	defer cancelO()

	sent := &wecom.BatchJobEvent{
		ToUserName: "wwcorp", FromUserName: "sys", CreateTime: time.Unix(1_700_000_000, 0),
		MsgType: "event", Event: "batch_job_result",
		JobID: "job-x", JobType: "sync_user", ErrCode: 60123, ErrMsg: "invalid party id",
	}
	start := time.Now()
	require.NoError(t, b.JobNotifier().Notify(context.Background(), sent))
	got := receive(t, evA, time.Second)
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, sent, got, "every field crosses Redis")
	assert.True(t, got.CreateTime.Equal(sent.CreateTime))
	assert.Equal(t, sent, receive(t, evB, time.Second), "the publishing replica delivers to itself through Redis")
	select {
	case ev := <-other:
		t.Fatalf("event for another job delivered: %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}

	// A late subscriber on A still sees it (the JobNotifier's retention).
	late, cancelL := a.JobNotifier().Subscribe("job-x")
	defer cancelL()
	assert.Equal(t, "job-x", receive(t, late, time.Second).JobID)
}

func TestNotifierChannelOptions(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	p := newNotifier(t, rdb, redisstore.WithNotifierKeyPrefix("svc:"))
	assert.Equal(t, "svc:jobs", p.Channel())
	c1 := newNotifier(t, rdb, redisstore.WithChannel("custom"), redisstore.WithJobNotifierOptions(wecom.WithNotifierRetention(0, 0)))
	c2 := newNotifier(t, rdb, redisstore.WithChannel("custom"))
	assert.Equal(t, "custom", c1.Channel())

	onP, cancel := p.JobNotifier().Subscribe("j")
	defer cancel()
	on1, cancel1 := c1.JobNotifier().Subscribe("j")
	defer cancel1()
	require.NoError(t, c2.JobNotifier().Notify(context.Background(), &wecom.BatchJobEvent{JobID: "j"}))
	assert.Equal(t, "j", receive(t, on1, time.Second).JobID)
	select {
	case <-onP:
		t.Fatal("a notifier on another channel got the event")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestNotifierDropsMalformedMessages(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	lc := &logCounter{}
	n := newNotifier(t, rdb, redisstore.WithNotifierLogger(slog.New(lc)))
	ch, cancel := n.JobNotifier().Subscribe("good")
	defer cancel()
	ctx := context.Background()
	for _, junk := range []string{"", "not json", `{"job_id":""}`, `{"job_id":12}`, `[1,2]`, "\xff\xfe", `{"job_id":"good","err_code":"x"}`} {
		require.NoError(t, rdb.Publish(ctx, n.Channel(), junk).Err())
	}
	require.NoError(t, rdb.Publish(ctx, n.Channel(), `{"job_id":"good","job_type":"export_user","create_time":1700000000}`).Err())
	ev := receive(t, ch, time.Second)
	assert.Equal(t, "export_user", ev.JobType)
	assert.True(t, ev.IsExport())
	assert.Equal(t, 7, lc.count("malformed job event"), lc.all())
}

func TestNotifierRedisDown(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	rdb := r.client(t)
	n := newNotifier(t, rdb)
	ch, cancel := n.JobNotifier().Subscribe("j1")
	defer cancel()
	r.Kill()

	err := n.JobNotifier().Notify(context.Background(), &wecom.BatchJobEvent{JobID: "j1"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis")
	assert.Equal(t, "j1", receive(t, ch, time.Second).JobID, "delivered locally when Redis is down")

	ctx, cancelCtx := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelCtx()
	_, err = redisstore.NewNotifier(ctx, rdb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redisstore: subscribing to redis")

	_, err = redisstore.NewNotifier(ctx, nil)
	assert.Error(t, err)
	assert.Error(t, n.Publish(ctx, nil))
	assert.Error(t, n.Publish(ctx, &wecom.BatchJobEvent{}))

	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with Redis down")
	}
	assert.NoError(t, n.Close(), "Close is idempotent")
}

// End to end: wecomtest delivers the callback of a real import job to the
// handler of replica B; replica A, waiting with a 30 s poll delay, returns
// within a second of it.
func TestE2ECallbackOnOtherReplicaWakesWaiter(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	srv := wecomtest.NewServer(wecomtest.WithJobStepDelay(20 * time.Millisecond))
	t.Cleanup(srv.Close)
	reps := newReplicas(t, 1, srv, r.client(t))
	notifierA := newNotifier(t, r.client(t))
	notifierB := newNotifier(t, r.client(t))

	const cbToken = "cbToken123"
	cbKey := wecom.NewEncodingAESKey()
	cc, err := wecom.NewCallbackCrypto(cbToken, cbKey, srv.CorpID)
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		gotAt time.Time
		jobs  []string
	)
	hB := wecom.NewCallbackHandler(cc, func(_ context.Context, ev *wecom.BatchJobEvent) error {
		mu.Lock()
		defer mu.Unlock()
		gotAt = time.Now()
		jobs = append(jobs, ev.JobID)
		return nil
	}, wecom.WithJobNotifier(notifierB.JobNotifier()))
	hs := httptest.NewServer(hB)
	defer hs.Close()

	members := make([]wecom.Member, 50)
	for i := range members {
		id := fmt.Sprintf("e2e%03d", i)
		members[i] = wecom.Member{UserID: id, Name: "Name " + id, Mobile: fmt.Sprintf("139%08d", i), Departments: []int{1}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	res, err := reps[0].c.ImportMembers(ctx, wecom.ImportSync, members, wecom.ImportOptions{
		Callback: &wecom.JobCallback{URL: hs.URL + "/wecom/callback", Token: cbToken, EncodingAESKey: cbKey},
		Wait:     []wecom.WaitOption{wecom.WithPollDelay(30*time.Second, 30*time.Second), wecom.WithNotifier(notifierA.JobNotifier())},
	})
	returned := time.Now()
	require.NoError(t, err)
	assert.Equal(t, wecom.BatchDone, res.Status)
	assert.Len(t, res.Items, 50)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, jobs, 1, "replica B received the callback")
	assert.Less(t, returned.Sub(gotAt), time.Second, "A's wait ends within 1 s of B's callback")
	assert.Less(t, returned.Sub(start), 15*time.Second)
}
