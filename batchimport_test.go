package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	mockBase  = "https://qyapi.weixin.qq.com"
	mockToken = "TOKEN-abc"
	testKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // 43 chars
)

// recorded is one request the mock saw.
type recorded struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
}

// mockAPI is a per-test WeCom stand-in on an httpmock transport.
type mockAPI struct {
	t  *testing.T
	mt *httpmock.MockTransport
	c  *Client

	mu   sync.Mutex
	reqs []recorded
}

func newMockAPI(t *testing.T) *mockAPI {
	t.Helper()
	m := &mockAPI{t: t, mt: httpmock.NewMockTransport()}
	m.on(http.MethodGet, "/cgi-bin/gettoken", `{"errcode":0,"errmsg":"ok","access_token":"`+mockToken+`","expires_in":7200}`)
	c, err := NewClient("corp1", "secret1",
		WithHTTPClient(&http.Client{Transport: m.mt}),
		WithBaseURL(mockBase),
		WithRetry(RetryPolicy{MaxAttempts: 3, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}))
	require.NoError(t, err)
	m.c = c
	return m
}

// on answers method path with the given bodies in turn; the last one
// repeats.
func (m *mockAPI) on(method, path string, bodies ...string) {
	var (
		mu sync.Mutex
		n  int
	)
	m.mt.RegisterResponder(method, mockBase+path, func(r *http.Request) (*http.Response, error) {
		var b []byte
		if r.Body != nil {
			b, _ = io.ReadAll(r.Body)
		}
		m.mu.Lock()
		m.reqs = append(m.reqs, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: b})
		m.mu.Unlock()
		mu.Lock()
		body := bodies[min(n, len(bodies)-1)]
		n++
		mu.Unlock()
		resp := httpmock.NewStringResponse(http.StatusOK, body)
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
}

// calls returns the requests made to path, in order.
func (m *mockAPI) calls(path string) []recorded {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []recorded
	for _, r := range m.reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (m *mockAPI) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reqs)
}

func ptr[T any](v T) *T { return &v }

func jsonMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "body %s", b)
	return m
}

func TestImportSubmissionBodies(t *testing.T) {
	t.Parallel()
	cb := &JobCallback{URL: "https://example.com/wecom/cb", Token: "tok123", EncodingAESKey: testKey}
	type submitFn func(c *Client, ctx context.Context) (string, error)
	tests := []struct {
		name       string
		path       string
		submit     submitFn
		wantInvite any // nil: key absent
		wantCB     bool
	}{
		{"sync default", pathSyncUser, func(c *Client, ctx context.Context) (string, error) {
			return c.SyncUser(ctx, SyncUserRequest{MediaID: "m1"})
		}, nil, false},
		{"sync invite true", pathSyncUser, func(c *Client, ctx context.Context) (string, error) {
			return c.SyncUser(ctx, SyncUserRequest{MediaID: "m1", ToInvite: ptr(true)})
		}, true, false},
		{"sync invite false", pathSyncUser, func(c *Client, ctx context.Context) (string, error) {
			return c.SyncUser(ctx, SyncUserRequest{MediaID: "m1", ToInvite: ptr(false), Callback: cb})
		}, false, true},
		{"replace user default", pathReplaceUser, func(c *Client, ctx context.Context) (string, error) {
			return c.ReplaceUser(ctx, ReplaceUserRequest{MediaID: "m1", Callback: cb})
		}, nil, true},
		{"replace user invite false", pathReplaceUser, func(c *Client, ctx context.Context) (string, error) {
			return c.ReplaceUser(ctx, ReplaceUserRequest{MediaID: "m1", ToInvite: ptr(false)})
		}, false, false},
		{"replace party", pathReplaceParty, func(c *Client, ctx context.Context) (string, error) {
			return c.ReplaceParty(ctx, ReplacePartyRequest{MediaID: "m1", Callback: cb})
		}, nil, true},
		{"replace party no callback", pathReplaceParty, func(c *Client, ctx context.Context) (string, error) {
			return c.ReplaceParty(ctx, ReplacePartyRequest{MediaID: "m1"})
		}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			m.on(http.MethodPost, tt.path, `{"errcode":0,"errmsg":"ok","jobid":"job-1"}`)
			jobID, err := tt.submit(m.c, context.Background())
			require.NoError(t, err)
			assert.Equal(t, "job-1", jobID)

			reqs := m.calls(tt.path)
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, mockToken, r.Query.Get("access_token"))
			body := jsonMap(t, r.Body)
			assert.Equal(t, "m1", body["media_id"])
			inv, has := body["to_invite"]
			if tt.wantInvite == nil {
				assert.False(t, has, "to_invite must be absent: %s", r.Body)
			} else {
				assert.Equal(t, tt.wantInvite, inv)
			}
			assert.NotContains(t, body, "callbacks")
			if tt.wantCB {
				assert.Equal(t, map[string]any{"url": cb.URL, "token": cb.Token, "encodingaeskey": testKey}, body["callback"])
			} else {
				assert.NotContains(t, body, "callback")
			}
		})
	}
}

func TestImportSubmissionValidation(t *testing.T) {
	t.Parallel()
	good := JobCallback{URL: "https://example.com/cb", Token: "tok", EncodingAESKey: testKey}
	with := func(f func(*JobCallback)) *JobCallback { cb := good; f(&cb); return &cb }
	tests := []struct {
		name    string
		req     SyncUserRequest
		wantIs  error
		wantSub string
	}{
		{"empty media id", SyncUserRequest{}, ErrRequired, "MediaID"},
		{"media id with newline", SyncUserRequest{MediaID: "a\nb"}, ErrInvalidValue, "MediaID"},
		{"short key", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.EncodingAESKey = "short" })}, ErrInvalidAESKey, "EncodingAESKey"},
		{"key with symbol", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.EncodingAESKey = testKey[:42] + "+" })}, ErrInvalidAESKey, "EncodingAESKey"},
		{"no url", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.URL = "" })}, ErrRequired, "Callback.URL"},
		{"relative url", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.URL = "/cb" })}, ErrInvalidValue, "Callback.URL"},
		{"ftp url", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.URL = "ftp://x/cb" })}, ErrInvalidValue, "Callback.URL"},
		{"no token", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.Token = "" })}, ErrRequired, "Callback.Token"},
		{"long token", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.Token = strings.Repeat("a", 33) })}, ErrInvalidValue, "Callback.Token"},
		{"token symbol", SyncUserRequest{MediaID: "m", Callback: with(func(c *JobCallback) { c.Token = "a-b" })}, ErrInvalidValue, "Callback.Token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			m.on(http.MethodPost, pathSyncUser, `{"errcode":0,"errmsg":"ok","jobid":"job-1"}`)
			m.on(http.MethodPost, pathReplaceUser, `{"errcode":0,"errmsg":"ok","jobid":"job-1"}`)
			m.on(http.MethodPost, pathReplaceParty, `{"errcode":0,"errmsg":"ok","jobid":"job-1"}`)
			ctx := context.Background()
			_, err1 := m.c.SyncUser(ctx, tt.req)
			_, err2 := m.c.ReplaceUser(ctx, ReplaceUserRequest(tt.req))
			_, err3 := m.c.ReplaceParty(ctx, ReplacePartyRequest{MediaID: tt.req.MediaID, Callback: tt.req.Callback})
			for _, err := range []error{err1, err2, err3} {
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.wantIs)
				assert.Contains(t, err.Error(), tt.wantSub)
				assert.NotContains(t, err.Error(), testKey, "the key must not leak into errors")
			}
			assert.Zero(t, m.total(), "validation must precede any network call")
		})
	}
}

func TestSubmissionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		answers   []string
		wantCode  int
		wantCalls int
		tooMany   bool
	}{
		{"deletion guard at submit", []string{`{"errcode":45026,"errmsg":"delete too many"}`}, CodeDeletionProtection, 1, true},
		{"job running not retried", []string{`{"errcode":302008,"errmsg":"running"}`}, CodeImportJobRunning, 1, false},
		{"system busy not retried for a submission", []string{`{"errcode":-1,"errmsg":"busy"}`}, CodeSystemBusy, 1, false},
		{"rate limit retried", []string{`{"errcode":45009,"errmsg":"freq"}`, `{"errcode":0,"errmsg":"ok","jobid":"j"}`}, 0, 2, false},
		{"missing jobid", []string{`{"errcode":0,"errmsg":"ok"}`}, 0, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			m.on(http.MethodPost, pathReplaceUser, tt.answers...)
			jobID, err := m.c.ReplaceUser(context.Background(), ReplaceUserRequest{MediaID: "m"})
			assert.Len(t, m.calls(pathReplaceUser), tt.wantCalls)
			switch {
			case tt.wantCode != 0:
				var ae *APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tt.wantCode, ae.Code)
				assert.Equal(t, tt.tooMany, errors.Is(err, ErrTooManyDeletes))
			case tt.name == "missing jobid":
				var re *ResponseError
				require.ErrorAs(t, err, &re)
			default:
				require.NoError(t, err)
				assert.Equal(t, "j", jobID)
			}
		})
	}
}

func TestGetBatchResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want *BatchResult
	}{
		{
			name: "user job",
			body: `{"errcode":0,"errmsg":"ok","status":3,"type":"sync_user","total":3,"percentage":100,"remaintime":0,
				"result":[{"userid":"lisi","errcode":0,"errmsg":"ok"},{"userid":"zhangsan","errcode":60104,"errmsg":"mobile existed"},{"userid":"w","errcode":"0","errmsg":"ok"}]}`,
			want: &BatchResult{Status: BatchDone, Type: JobTypeSyncUser, Total: 3, Percentage: 100, Items: []BatchItem{
				{UserID: "lisi", ErrMsg: "ok"},
				{UserID: "zhangsan", ErrCode: 60104, ErrMsg: "mobile existed"},
				{UserID: "w", ErrMsg: "ok"},
			}},
		},
		{
			name: "party job",
			body: `{"errcode":0,"errmsg":"ok","status":3,"type":"replace_party","total":2,"percentage":100,
				"result":[{"action":1,"partyid":2,"errcode":0,"errmsg":"ok"},{"action":6,"partyid":"3","errcode":60123,"errmsg":"bad"}]}`,
			want: &BatchResult{Status: BatchDone, Type: JobTypeReplaceParty, Total: 2, Percentage: 100, Items: []BatchItem{
				{PartyID: 2, Action: PartyCreated, ErrMsg: "ok"},
				{PartyID: 3, Action: PartyRenamed | PartyMoved, ErrCode: 60123, ErrMsg: "bad"},
			}},
		},
		{
			name: "running, numbers as strings",
			body: `{"errcode":"0","errmsg":"ok","status":"2","type":"replace_user","total":"0","percentage":"40"}`,
			want: &BatchResult{Status: BatchRunning, Type: JobTypeReplaceUser, Percentage: 40},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			m.on(http.MethodGet, pathBatchResult, tt.body)
			got, err := m.c.GetBatchResult(context.Background(), "job/1?x")
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			reqs := m.calls(pathBatchResult)
			require.Len(t, reqs, 1)
			assert.Equal(t, http.MethodGet, reqs[0].Method)
			assert.Equal(t, "job/1?x", reqs[0].Query.Get("jobid"))
			assert.Equal(t, mockToken, reqs[0].Query.Get("access_token"))
		})
	}
}

func TestGetBatchResultErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantJob   bool
		wantCode  int
		wantTypeS string
		tooMany   bool
	}{
		{"deletion guard", `{"errcode":45026,"errmsg":"protect","type":"replace_user","status":3}`, true, 45026, "replace_user", true},
		{"import failure", `{"errcode":302005,"errmsg":"import fail, please retry later","type":"replace_user"}`, true, 302005, "replace_user", false},
		{"unknown job", `{"errcode":40088,"errmsg":"jobid not found"}`, false, 40088, "", false},
		{"purged", `{"errcode":40089,"errmsg":"purged"}`, false, 40089, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			m.on(http.MethodGet, pathBatchResult, tt.body)
			res, err := m.c.GetBatchResult(context.Background(), "job-1")
			require.Error(t, err)
			assert.Nil(t, res)
			assert.True(t, IsCode(err, tt.wantCode))
			assert.Equal(t, tt.tooMany, errors.Is(err, ErrTooManyDeletes))
			var je *JobError
			if tt.wantJob {
				require.ErrorAs(t, err, &je)
				assert.Equal(t, JobError{JobID: "job-1", JobType: tt.wantTypeS, Code: tt.wantCode, Message: je.Message}, *je)
			} else {
				assert.False(t, errors.As(err, &je))
				var ae *APIError
				require.ErrorAs(t, err, &ae)
			}
			assert.Len(t, m.calls(pathBatchResult), 1, "these codes are not retried")
		})
	}
}

func TestGetBatchResultBadJobID(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	for _, id := range []string{"", strings.Repeat("x", 65), "a b"} {
		_, err := m.c.GetBatchResult(context.Background(), id)
		assert.Error(t, err)
		_, err = m.c.WaitBatchResult(context.Background(), id)
		assert.Error(t, err)
	}
	assert.Zero(t, m.total())
}

func TestBatchTypesHelpers(t *testing.T) {
	t.Parallel()
	for a, want := range map[PartyAction]string{
		0: "none", PartyCreated: "created", PartyRenamed | PartyMoved: "renamed|moved",
		PartyRenamed | PartyMoved | PartyReordered: "renamed|moved|reordered", PartyCreated | 0x30: "created|0x30",
	} {
		assert.Equal(t, want, a.String())
	}
	a := PartyRenamed | PartyMoved
	assert.True(t, a.Has(PartyMoved))
	assert.True(t, a.Has(PartyRenamed|PartyMoved))
	assert.False(t, a.Has(PartyCreated))
	assert.False(t, a.Has(PartyMoved|PartyReordered))
	assert.False(t, a.Has(0))

	assert.Equal(t, "started", BatchStarted.String())
	assert.Equal(t, "running", BatchRunning.String())
	assert.Equal(t, "done", BatchDone.String())
	assert.Equal(t, "BatchStatus(7)", BatchStatus(7).String())
	assert.Equal(t, "sync", ImportSync.String())
	assert.Equal(t, "replace", ImportReplace.String())

	r := &BatchResult{Status: BatchDone, Items: []BatchItem{
		{UserID: "a"}, {UserID: "b", ErrCode: CodeMobileExists, ErrMsg: "mobile existed"}, {PartyID: 4, ErrCode: CodeInvalidParentID, ErrMsg: "x"},
	}}
	assert.True(t, r.Done())
	failed := r.Failed()
	require.Len(t, failed, 2)
	assert.NoError(t, r.Items[0].Err())
	err := failed[0].Err()
	assert.True(t, IsCode(err, CodeMobileExists))
	var ie *ItemError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, "b", ie.UserID)
	assert.Contains(t, err.Error(), `user "b"`)
	assert.Contains(t, failed[1].Err().Error(), "department 4")
	assert.Nil(t, (&BatchResult{Items: []BatchItem{{UserID: "a"}}}).Failed())
}

func TestWaitBatchResultProgress(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	m.on(http.MethodGet, pathBatchResult,
		`{"errcode":0,"errmsg":"ok","status":1,"type":"sync_user","total":0,"percentage":0}`,
		`{"errcode":0,"errmsg":"ok","status":2,"type":"sync_user","total":0,"percentage":30}`,
		`{"errcode":0,"errmsg":"ok","status":2,"type":"sync_user","total":0,"percentage":30}`,
		`{"errcode":0,"errmsg":"ok","status":2,"type":"sync_user","total":0,"percentage":70}`,
		`{"errcode":0,"errmsg":"ok","status":3,"type":"sync_user","total":1,"percentage":100,"result":[{"userid":"a","errcode":0,"errmsg":"ok"}]}`)
	var seen []int
	res, err := m.c.WaitBatchResult(context.Background(), "job-1",
		WithPollDelay(time.Millisecond, 2*time.Millisecond), WithProgress(func(p int) { seen = append(seen, p) }))
	require.NoError(t, err)
	assert.Equal(t, []int{0, 30, 70, 100}, seen)
	assert.Equal(t, BatchDone, res.Status)
	assert.Equal(t, []BatchItem{{UserID: "a", ErrMsg: "ok"}}, res.Items)
	assert.Len(t, m.calls(pathBatchResult), 5)
}

func TestWaitBatchResultJobError(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	m.on(http.MethodGet, pathBatchResult,
		`{"errcode":0,"errmsg":"ok","status":2,"type":"replace_user","total":0,"percentage":10}`,
		`{"errcode":45026,"errmsg":"protect","type":"replace_user"}`)
	_, err := m.c.WaitBatchResult(context.Background(), "job-1", WithPollDelay(time.Millisecond, time.Millisecond))
	var je *JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, CodeDeletionProtection, je.Code)
	assert.ErrorIs(t, err, ErrTooManyDeletes)
}

func TestWaitBatchResultCancel(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	m.on(http.MethodGet, pathBatchResult, `{"errcode":0,"errmsg":"ok","status":2,"type":"sync_user","total":0,"percentage":40}`)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := m.c.WaitBatchResult(ctx, "job-1", WithPollDelay(time.Millisecond, 5*time.Millisecond))
	var we *WaitError
	require.ErrorAs(t, err, &we)
	assert.Equal(t, "job-1", we.JobID)
	assert.Equal(t, int(BatchRunning), we.Status)
	assert.Equal(t, 40, we.Percentage)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestWaitBatchResultBadOption(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	_, err := m.c.WaitBatchResult(context.Background(), "job-1", WithPollDelay(0, time.Second))
	require.Error(t, err)
	assert.Zero(t, m.total())
}

func TestInvite(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	m.on(http.MethodPost, pathInvite, `{"errcode":0,"errmsg":"ok","invaliduser":["nobody"],"invalidparty":[9],"invalidtag":["7"]}`)
	res, err := m.c.Invite(context.Background(), InviteRequest{Users: []string{"a", "nobody"}, Parties: []int{1, 9}, Tags: []int{7}})
	require.NoError(t, err)
	assert.Equal(t, &InviteResult{InvalidUsers: []string{"nobody"}, InvalidParties: []int{9}, InvalidTags: []int{7}}, res)
	reqs := m.calls(pathInvite)
	require.Len(t, reqs, 1)
	assert.Equal(t, http.MethodPost, reqs[0].Method)
	assert.Equal(t, mockToken, reqs[0].Query.Get("access_token"))
	assert.JSONEq(t, `{"user":["a","nobody"],"party":[1,9],"tag":[7]}`, string(reqs[0].Body))

	m2 := newMockAPI(t)
	m2.on(http.MethodPost, pathInvite, `{"errcode":0,"errmsg":"ok"}`)
	res, err = m2.c.Invite(context.Background(), InviteRequest{Tags: []int{3}})
	require.NoError(t, err)
	assert.Equal(t, &InviteResult{}, res)
	assert.JSONEq(t, `{"tag":[3]}`, string(m2.calls(pathInvite)[0].Body))
}

func TestInviteValidation(t *testing.T) {
	t.Parallel()
	many := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = "u"
		}
		return s
	}
	ints := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i + 1
		}
		return s
	}
	tests := []struct {
		name string
		req  InviteRequest
		want error
	}{
		{"empty", InviteRequest{}, ErrRequired},
		{"empty slices", InviteRequest{Users: []string{}, Parties: []int{}}, ErrRequired},
		{"too many users", InviteRequest{Users: many(1001)}, ErrInvalidValue},
		{"too many parties", InviteRequest{Parties: ints(101)}, ErrInvalidValue},
		{"too many tags", InviteRequest{Tags: ints(101)}, ErrInvalidValue},
		{"empty userid", InviteRequest{Users: []string{"a", ""}}, ErrInvalidValue},
		{"zero party", InviteRequest{Parties: []int{0}}, ErrInvalidValue},
		{"negative tag", InviteRequest{Tags: []int{-1}}, ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			_, err := m.c.Invite(context.Background(), tt.req)
			assert.ErrorIs(t, err, tt.want)
			assert.Zero(t, m.total())
		})
	}
	// The limits themselves are allowed.
	m := newMockAPI(t)
	m.on(http.MethodPost, pathInvite, `{"errcode":0,"errmsg":"ok"}`)
	_, err := m.c.Invite(context.Background(), InviteRequest{Users: many(1000), Parties: ints(100), Tags: ints(100)})
	assert.NoError(t, err)
}

var testMembers = []Member{
	{UserID: "zhangsan", Name: "张三", Mobile: "13800000001", Departments: []int{1}},
	{UserID: "lisi", Name: "李四", Email: "lisi@example.com", Departments: []int{1, 2}},
}

func TestImportMembersResubmitsOn302008(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	m.on(http.MethodPost, "/cgi-bin/media/upload", `{"errcode":0,"errmsg":"","type":"file","media_id":"MEDIA1","created_at":"1380000000"}`)
	m.on(http.MethodPost, pathSyncUser,
		`{"errcode":302008,"errmsg":"another job is running"}`,
		`{"errcode":0,"errmsg":"ok","jobid":"job-2"}`)
	m.on(http.MethodGet, pathBatchResult,
		`{"errcode":0,"errmsg":"ok","status":3,"type":"sync_user","total":2,"percentage":100,"result":[{"userid":"zhangsan","errcode":0,"errmsg":"ok"},{"userid":"lisi","errcode":60104,"errmsg":"mobile existed"}]}`)
	var progress []int
	res, err := m.c.ImportMembers(context.Background(), ImportSync, testMembers, ImportOptions{
		ToInvite: ptr(false),
		Wait:     []WaitOption{WithPollDelay(time.Millisecond, 2*time.Millisecond), WithProgress(func(p int) { progress = append(progress, p) })},
	})
	require.NoError(t, err, "per-row failures are not an error")
	require.Len(t, res.Failed(), 1)
	assert.Equal(t, "lisi", res.Failed()[0].UserID)
	assert.Equal(t, []int{100}, progress)

	uploads := m.calls("/cgi-bin/media/upload")
	require.Len(t, uploads, 1, "a 302008 must not re-upload")
	assert.Contains(t, string(uploads[0].Body), `filename="members.csv"`)
	assert.Contains(t, string(uploads[0].Body), "姓名,帐号,手机号")
	assert.Contains(t, string(uploads[0].Body), "张三,zhangsan,13800000001")
	subs := m.calls(pathSyncUser)
	require.Len(t, subs, 2, "resubmitted once")
	for _, s := range subs {
		assert.JSONEq(t, `{"media_id":"MEDIA1","to_invite":false}`, string(s.Body))
	}
	assert.Equal(t, "job-2", m.calls(pathBatchResult)[0].Query.Get("jobid"))
}

func TestImportMembers302008UntilCtxEnds(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	m.on(http.MethodPost, "/cgi-bin/media/upload", `{"errcode":0,"errmsg":"","type":"file","media_id":"MEDIA1","created_at":"1380000000"}`)
	m.on(http.MethodPost, pathSyncUser, `{"errcode":302008,"errmsg":"another job is running"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	_, err := m.c.ImportMembers(ctx, ImportSync, testMembers, ImportOptions{
		Wait: []WaitOption{WithPollDelay(time.Millisecond, 5*time.Millisecond)},
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, IsCode(err, CodeImportJobRunning))
	assert.Greater(t, len(m.calls(pathSyncUser)), 1)
	assert.Len(t, m.calls("/cgi-bin/media/upload"), 1)
}

func TestImportDepartments(t *testing.T) {
	t.Parallel()
	m := newMockAPI(t)
	m.on(http.MethodPost, "/cgi-bin/media/upload", `{"errcode":0,"errmsg":"","type":"file","media_id":"MEDIA2","created_at":"1380000000"}`)
	m.on(http.MethodPost, pathReplaceParty, `{"errcode":0,"errmsg":"ok","jobid":"job-3"}`)
	m.on(http.MethodGet, pathBatchResult,
		`{"errcode":0,"errmsg":"ok","status":2,"type":"replace_party","total":0,"percentage":50}`,
		`{"errcode":0,"errmsg":"ok","status":3,"type":"replace_party","total":1,"percentage":100,"result":[{"action":1,"partyid":2,"errcode":0,"errmsg":"ok"}]}`)
	cb := &JobCallback{URL: "https://example.com/cb", Token: "t", EncodingAESKey: testKey}
	res, err := m.c.ImportDepartments(context.Background(), []Department{{Name: "研发", ID: 2, ParentID: 1}}, ImportOptions{
		ToInvite: ptr(true), // ignored: replaceparty has no to_invite
		Callback: cb,
		Wait:     []WaitOption{WithPollDelay(time.Millisecond, 2*time.Millisecond)},
	})
	require.NoError(t, err)
	assert.Equal(t, []BatchItem{{PartyID: 2, Action: PartyCreated, ErrMsg: "ok"}}, res.Items)
	up := m.calls("/cgi-bin/media/upload")
	require.Len(t, up, 1)
	assert.Contains(t, string(up[0].Body), `filename="departments.csv"`)
	assert.Contains(t, string(up[0].Body), "部门名称,部门ID,父部门ID,排序\n研发,2,1,")
	sub := m.calls(pathReplaceParty)
	require.Len(t, sub, 1)
	assert.JSONEq(t, `{"media_id":"MEDIA2","callback":{"url":"https://example.com/cb","token":"t","encodingaeskey":"`+testKey+`"}}`, string(sub[0].Body))
}

func TestImportValidationBeforeNetwork(t *testing.T) {
	t.Parallel()
	badMember := []Member{{UserID: "a", Name: "A", Departments: []int{1}}} // neither mobile nor email
	tests := []struct {
		name   string
		run    func(c *Client) error
		wantAs any
		wantIs error
	}{
		{"invalid member", func(c *Client) error {
			_, err := c.ImportMembers(context.Background(), ImportSync, badMember, ImportOptions{})
			return err
		}, new(*CSVError), nil},
		{"invalid member in replace", func(c *Client) error {
			_, err := c.ImportMembers(context.Background(), ImportReplace, badMember, ImportOptions{})
			return err
		}, new(*CSVError), nil},
		{"no members", func(c *Client) error {
			_, err := c.ImportMembers(context.Background(), ImportReplace, nil, ImportOptions{MaxDeletes: NoDeleteGuard})
			return err
		}, nil, ErrRequired},
		{"zero mode", func(c *Client) error {
			_, err := c.ImportMembers(context.Background(), 0, testMembers, ImportOptions{})
			return err
		}, nil, ErrInvalidValue},
		{"max deletes below -1", func(c *Client) error {
			_, err := c.ImportMembers(context.Background(), ImportReplace, testMembers, ImportOptions{MaxDeletes: -2})
			return err
		}, nil, ErrInvalidValue},
		{"bad callback key", func(c *Client) error {
			_, err := c.ImportMembers(context.Background(), ImportSync, testMembers, ImportOptions{Callback: &JobCallback{URL: "https://x/", Token: "t", EncodingAESKey: "k"}})
			return err
		}, nil, ErrInvalidAESKey},
		{"bad wait option", func(c *Client) error {
			_, err := c.ImportMembers(context.Background(), ImportSync, testMembers, ImportOptions{Wait: []WaitOption{WithPollDelay(2, 1)}})
			return err
		}, nil, nil},
		{"invalid department", func(c *Client) error {
			_, err := c.ImportDepartments(context.Background(), []Department{{Name: "a", ID: 2, ParentID: 99}}, ImportOptions{})
			return err
		}, new(*CSVError), nil},
		{"no departments", func(c *Client) error {
			_, err := c.ImportDepartments(context.Background(), nil, ImportOptions{})
			return err
		}, nil, ErrRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			err := tt.run(m.c)
			require.Error(t, err)
			if tt.wantAs != nil {
				assert.ErrorAs(t, err, tt.wantAs)
			}
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.Zero(t, m.total(), "nothing may be sent")
		})
	}
}

func TestPlanReplace(t *testing.T) {
	t.Parallel()
	mem := func(ids ...string) []Member {
		out := make([]Member, len(ids))
		for i, id := range ids {
			out[i] = Member{UserID: id}
		}
		return out
	}
	p := planReplace(mem("Zed", "alice", "Bob"), []string{"bob", "carol", "ALICE", "dave"})
	assert.Equal(t, &ReplacePlan{
		Create:  []string{"Zed"},
		Update:  []string{"Bob", "alice"},
		Delete:  []string{"carol", "dave"},
		Current: 4,
	}, p)
	p = planReplace(mem("a"), []string{"a", "b", "c", "d", "e"})
	assert.Equal(t, []string{"b", "c", "d", "e"}, p.Delete)
	assert.False(t, p.TripsGuard, "4 of 5 is exactly 80%: not more")
	p = planReplace(mem("x"), []string{"a", "b", "c", "d", "e"})
	assert.True(t, p.TripsGuard, "5 of 5")
	assert.Len(t, p.Create, 1)
}

func TestTripsDeletionGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		del, cur int
		want     bool
	}{
		{0, 0, false},
		{0, 10, false},
		{8, 10, false},  // 80%: not more than 80%
		{9, 10, true},   // 90%
		{49, 61, true},  // 80.3%
		{49, 62, false}, // 79%
		{50, 50, false}, // exactly 50 never trips
		{51, 255, false},
		{51, 254, true}, // 20.08%
		{100, 1000, false},
		{201, 1000, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tripsDeletionGuard(tt.del, tt.cur), "del=%d cur=%d", tt.del, tt.cur)
	}
}

// TestWaitBatchResultDeadlineDuringRetry: when a poll's retry backoff
// would outlast ctx's deadline, the wait ends as one cut short by ctx: a
// *WaitError carrying the last status and percentage seen.
func TestWaitBatchResultDeadlineDuringRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer string
	}{
		{"system busy", `{"errcode":-1,"errmsg":"busy"}`},
		{"rate limited", `{"errcode":45009,"errmsg":"freq"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMockAPI(t)
			c, err := NewClient("corp1", "secret1",
				WithHTTPClient(&http.Client{Transport: m.mt}),
				WithBaseURL(mockBase),
				WithRetry(RetryPolicy{MaxAttempts: 5, MinDelay: time.Minute, MaxDelay: time.Minute}))
			require.NoError(t, err)
			m.on(http.MethodGet, pathBatchResult,
				`{"errcode":0,"errmsg":"ok","status":2,"type":"sync_user","total":0,"percentage":40}`, tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = c.WaitBatchResult(ctx, "job-1", WithPollDelay(time.Millisecond, time.Millisecond))
			var we *WaitError
			require.ErrorAs(t, err, &we, "got %v", err)
			assert.Equal(t, "job-1", we.JobID)
			assert.Equal(t, int(BatchRunning), we.Status)
			assert.Equal(t, 40, we.Percentage)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
}
