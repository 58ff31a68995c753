package wecom

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A poll whose retry would sleep past ctx's deadline gives up at once with
// context.DeadlineExceeded, before ctx itself is done. The wait still ended
// because of ctx, so it must be a *WaitError carrying the last status.
func TestWaitErrorWhenRetryWouldOutlastDeadline(t *testing.T) {
	t.Parallel()
	busy := `{"errcode":-1,"errmsg":"system busy"}`
	running := `{"errcode":0,"errmsg":"ok","status":2,"type":"sync_user","total":10,"percentage":40,"result":[]}`
	cases := []struct {
		name        string
		answers     []string
		wantStatus  int
		wantPercent int
	}{
		{"never polled", []string{busy}, -1, 0},
		{"after a running poll", []string{running, busy}, 2, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, mt := mockClient(t, WithRetry(RetryPolicy{MaxAttempts: 5, MinDelay: time.Hour, MaxDelay: time.Hour}))
			tokenResponder(t, mt)
			var n atomic.Int64
			mt.RegisterResponder(http.MethodGet, testBase+"/cgi-bin/batch/getresult", func(*http.Request) (*http.Response, error) {
				i := int(n.Add(1)) - 1
				return httpmock.NewStringResponse(200, tc.answers[min(i, len(tc.answers)-1)]), nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := c.WaitBatchResult(ctx, "J1", WithPollDelay(time.Millisecond, time.Millisecond))
			var we *WaitError
			require.ErrorAs(t, err, &we, "got %v", err)
			assert.Equal(t, "J1", we.JobID)
			assert.Equal(t, tc.wantStatus, we.Status)
			assert.Equal(t, tc.wantPercent, we.Percentage)
			assert.True(t, errors.Is(err, context.DeadlineExceeded))
			assert.True(t, IsCode(err, CodeSystemBusy), "the last API error is kept: %v", err)
		})
	}
}
