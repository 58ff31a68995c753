package wecom_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// TestE2ECallbackWakesWaiter: wecomtest delivers the encrypted, signed
// batch_job_result of a real import job to a CallbackHandler on httptest;
// the handler feeds a JobNotifier, and WaitBatchResult, polling only every
// 30 s, returns within a second of the callback.
func TestE2ECallbackWakesWaiter(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t, wecomtest.WithJobStepDelay(20*time.Millisecond))
	const cbToken = "cbToken123"
	cbKey := wecom.NewEncodingAESKey()
	cc, err := wecom.NewCallbackCrypto(cbToken, cbKey, srv.CorpID)
	require.NoError(t, err)

	var (
		mu     sync.Mutex
		events []*wecom.BatchJobEvent
		gotAt  time.Time
	)
	n := wecom.NewJobNotifier()
	h := wecom.NewCallbackHandler(cc, func(_ context.Context, ev *wecom.BatchJobEvent) error {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
		gotAt = time.Now()
		return nil
	}, wecom.WithJobNotifier(n))
	hs := httptest.NewServer(h)
	defer hs.Close()

	members := make([]wecom.Member, 200)
	for i := range members {
		members[i] = member(userIDFor(i), i)
	}
	cb := &wecom.JobCallback{URL: hs.URL + "/wecom/callback", Token: cbToken, EncodingAESKey: cbKey}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	res, err := c.ImportMembers(ctx, wecom.ImportSync, members, wecom.ImportOptions{
		Callback: cb,
		Wait:     []wecom.WaitOption{wecom.WithPollDelay(30*time.Second, 30*time.Second), wecom.WithNotifier(n)},
	})
	returned := time.Now()
	require.NoError(t, err)
	assert.Equal(t, wecom.BatchDone, res.Status)
	assert.Len(t, res.Items, 200)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 1)
	ev := events[0]
	assert.Equal(t, "sync_user", ev.JobType)
	assert.Equal(t, srv.CorpID, ev.ToUserName)
	assert.Equal(t, 0, ev.ErrCode)
	assert.False(t, ev.IsExport())
	assert.NotEmpty(t, ev.JobID)
	assert.Less(t, returned.Sub(gotAt), time.Second, "the wait must end within 1 s of the callback")
	assert.Less(t, returned.Sub(start), 15*time.Second)
}

func userIDFor(i int) string {
	return "cbuser" + string(rune('a'+i%26)) + string(rune('a'+(i/26)%26))
}
