package wecom_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

const (
	pathSyncUser     = "/cgi-bin/batch/syncuser"
	pathReplaceUser  = "/cgi-bin/batch/replaceuser"
	pathReplaceParty = "/cgi-bin/batch/replaceparty"
	pathUpload       = "/cgi-bin/media/upload"
)

// fastWait keeps the tests quick.
var fastWait = []wecom.WaitOption{wecom.WithPollDelay(time.Millisecond, 10*time.Millisecond)}

// newFake starts a fake WeCom and a Client for it.
func newFake(t *testing.T, opts ...wecomtest.Option) (*wecomtest.Server, *wecom.Client) {
	t.Helper()
	srv := wecomtest.NewServer(opts...)
	t.Cleanup(srv.Close)
	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	require.NoError(t, err)
	return srv, c
}

// seedMembers adds n members u00..u(n-1) to department 1.
func seedMembers(t *testing.T, srv *wecomtest.Server, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("u%02d", i)
		require.NoError(t, srv.AddMember(wecomtest.Member{
			UserID: ids[i], Name: "User " + ids[i], Mobile: fmt.Sprintf("139%08d", i), Department: []int{1},
		}))
	}
	return ids
}

func member(id string, i int) wecom.Member {
	return wecom.Member{UserID: id, Name: "Name " + id, Mobile: fmt.Sprintf("139%08d", i), Departments: []int{1}}
}

func userIDs(srv *wecomtest.Server) []string {
	var out []string
	for _, m := range srv.Members() {
		out = append(out, m.UserID)
	}
	sort.Strings(out)
	return out
}

func TestE2ESyncCreatesAndUpdates(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 2, Name: "研发", ParentID: 1}))
	seedMembers(t, srv, 3) // u00 u01 u02
	file := []wecom.Member{
		{UserID: "u01", Name: "Renamed", Mobile: "13900000001", Departments: []int{2}, Position: "工程师"},
		{UserID: "new1", Name: "New One", Email: "new1@example.com", Departments: []int{2}, Gender: wecom.GenderFemale},
	}
	res, err := c.ImportMembers(context.Background(), wecom.ImportSync, file, wecom.ImportOptions{ToInvite: new(bool), Wait: fastWait})
	require.NoError(t, err)
	assert.Equal(t, wecom.BatchDone, res.Status)
	assert.Equal(t, wecom.JobTypeSyncUser, res.Type)
	assert.Equal(t, 2, res.Total)
	assert.Equal(t, 100, res.Percentage)
	assert.Empty(t, res.Failed())
	assert.ElementsMatch(t, []string{"u01", "new1"}, []string{res.Items[0].UserID, res.Items[1].UserID})

	assert.Equal(t, []string{"new1", "u00", "u01", "u02"}, userIDs(srv), "sync deletes nobody")
	u01, ok := srv.Member("u01")
	require.True(t, ok)
	assert.Equal(t, "Renamed", u01.Name)
	assert.Equal(t, []int{2}, u01.Department)
	assert.Equal(t, "工程师", u01.Position)
	n1, ok := srv.Member("new1")
	require.True(t, ok)
	assert.Equal(t, "2", n1.Gender)
	assert.Equal(t, 0, srv.CallCount(pathReplaceUser))
}

func TestE2EReplaceDeletes(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	ids := seedMembers(t, srv, 10)
	var file []wecom.Member
	for i, id := range ids[:8] { // u08 and u09 go
		file = append(file, member(id, i))
	}
	file = append(file, wecom.Member{UserID: "fresh", Name: "Fresh", Email: "fresh@example.com", Departments: []int{1}})
	res, err := c.ImportMembers(context.Background(), wecom.ImportReplace, file,
		wecom.ImportOptions{MaxDeletes: wecom.NoDeleteGuard, Wait: fastWait})
	require.NoError(t, err)
	assert.Equal(t, wecom.JobTypeReplaceUser, res.Type)
	assert.Empty(t, res.Failed())
	want := append(slices.Clone(ids[:8]), "fresh")
	sort.Strings(want)
	assert.Equal(t, want, userIDs(srv))
	assert.Equal(t, 0, srv.CallCount("/cgi-bin/export/simple_user"), "no plan without a guard")
}

func TestE2EReplaceTripsWeComGuard(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	ids := seedMembers(t, srv, 5)
	file := []wecom.Member{member("someone", 50)} // would delete 5 of 5
	_, err := c.ImportMembers(context.Background(), wecom.ImportReplace, file,
		wecom.ImportOptions{MaxDeletes: wecom.NoDeleteGuard, Wait: fastWait})
	var je *wecom.JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, wecom.CodeDeletionProtection, je.Code)
	assert.Equal(t, wecom.JobTypeReplaceUser, je.JobType)
	assert.NotEmpty(t, je.JobID)
	assert.ErrorIs(t, err, wecom.ErrTooManyDeletes)
	assert.True(t, wecom.IsCode(err, wecom.CodeDeletionProtection))
	assert.Equal(t, ids, userIDs(srv), "nothing changed")
	assert.Equal(t, 1, srv.CallCount(pathReplaceUser))
}

func TestE2EReplacePartyKeepsNonEmpty(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 2, Name: "Sales", ParentID: 1}))
	require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 3, Name: "Empty", ParentID: 1}))
	require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 5, Name: "Old", ParentID: 1}))
	require.NoError(t, srv.AddMember(wecomtest.Member{UserID: "s1", Name: "S1", Mobile: "13900000001", Department: []int{2}}))

	depts := []wecom.Department{
		{Name: "Engineering", ID: 4, ParentID: 1, Order: 10},
		{Name: "Backend", ID: 6, ParentID: 4},
		{Name: "Legacy", ID: 5, ParentID: 4}, // renamed and moved
	}
	res, err := c.ImportDepartments(context.Background(), depts, wecom.ImportOptions{ToInvite: new(bool), Wait: fastWait})
	require.NoError(t, err)
	assert.Equal(t, wecom.JobTypeReplaceParty, res.Type)
	assert.Empty(t, res.Failed())
	byID := map[int]wecom.BatchItem{}
	for _, it := range res.Items {
		byID[it.PartyID] = it
	}
	assert.Equal(t, wecom.PartyCreated, byID[4].Action)
	assert.Equal(t, wecom.PartyCreated, byID[6].Action)
	assert.True(t, byID[5].Action.Has(wecom.PartyRenamed|wecom.PartyMoved), "got %v", byID[5].Action)
	assert.Equal(t, "renamed|moved", byID[5].Action.String())

	var got []int
	for _, d := range srv.Departments() {
		got = append(got, d.ID)
	}
	sort.Ints(got)
	assert.Equal(t, []int{1, 2, 4, 5, 6}, got, "2 has a member and stays; empty 3 is deleted")
	_, ok := srv.Member("s1")
	assert.True(t, ok, "replaceparty deletes no member")

	body := srv.Requests()
	for _, r := range body {
		if r.Path == pathReplaceParty {
			assert.NotContains(t, string(r.Body), "to_invite")
		}
	}
}

func TestE2EPerRowFailures(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	require.NoError(t, srv.AddMember(wecomtest.Member{UserID: "alice", Name: "Alice", Mobile: "13900000001", Email: "alice@example.com", Department: []int{1}}))
	file := []wecom.Member{
		{UserID: "bob", Name: "Bob", Mobile: "13900000001", Departments: []int{1}},          // alice's mobile
		{UserID: "carol", Name: "Carol", Email: "alice@example.com", Departments: []int{1}}, // alice's email
		{UserID: "dave", Name: "Dave", Mobile: "13900000004", Departments: []int{1}},
	}
	res, err := c.ImportMembers(context.Background(), wecom.ImportSync, file, wecom.ImportOptions{Wait: fastWait})
	require.NoError(t, err, "row failures are not a call failure")
	failed := res.Failed()
	require.Len(t, failed, 2)
	codes := map[string]int{}
	for _, it := range failed {
		codes[it.UserID] = it.ErrCode
		assert.Error(t, it.Err())
	}
	assert.Equal(t, map[string]int{"bob": wecom.CodeMobileExists, "carol": wecom.CodeEmailExists}, codes)
	for _, it := range failed {
		if it.UserID == "bob" {
			assert.True(t, wecom.IsCode(it.Err(), wecom.CodeMobileExists))
		}
	}
	_, ok := srv.Member("dave")
	assert.True(t, ok)
	_, ok = srv.Member("bob")
	assert.False(t, ok)
}

func TestE2EWaitsFor302008(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t, wecomtest.WithJobStepDelay(15*time.Millisecond))
	ctx := context.Background()
	// Start a slow job behind ImportMembers' back.
	var buf []wecom.Member
	for i := range 20 {
		buf = append(buf, member(fmt.Sprintf("first%02d", i), i))
	}
	first := mustUpload(t, c, buf)
	firstJob, err := c.SyncUser(ctx, wecom.SyncUserRequest{MediaID: first})
	require.NoError(t, err)
	require.True(t, srv.ImportRunning())

	_, err = c.SyncUser(ctx, wecom.SyncUserRequest{MediaID: first})
	require.True(t, wecom.IsCode(err, wecom.CodeImportJobRunning), "the single-call API reports 302008: %v", err)

	res, err := c.ImportMembers(ctx, wecom.ImportSync, []wecom.Member{member("second", 99)}, wecom.ImportOptions{Wait: fastWait})
	require.NoError(t, err)
	assert.Equal(t, []wecom.BatchItem{{UserID: "second", ErrMsg: "ok"}}, res.Items)
	assert.GreaterOrEqual(t, srv.CallCount(pathSyncUser), 4, "first + refused + at least one 302008 + accepted")
	assert.Equal(t, 2, srv.CallCount(pathUpload), "ImportMembers uploaded once")

	done, err := c.GetBatchResult(ctx, firstJob)
	require.NoError(t, err)
	assert.Equal(t, wecom.BatchDone, done.Status, "the second job ran after the first")
}

func mustUpload(t *testing.T, c *wecom.Client, members []wecom.Member) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, wecom.WriteMembersCSV(&b, members))
	m, err := c.UploadFile(context.Background(), "m.csv", bytes.NewReader(b.Bytes()))
	require.NoError(t, err)
	return m.MediaID
}

func TestE2EProgress(t *testing.T) {
	t.Parallel()
	_, c := newFake(t, wecomtest.WithJobStepDelay(3*time.Millisecond))
	var file []wecom.Member
	for i := range 40 {
		file = append(file, member(fmt.Sprintf("p%02d", i), i))
	}
	var (
		mu   sync.Mutex
		seen []int
	)
	wait := append(slices.Clone(fastWait), wecom.WithProgress(func(p int) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	}))
	res, err := c.ImportMembers(context.Background(), wecom.ImportSync, file, wecom.ImportOptions{Wait: wait})
	require.NoError(t, err)
	assert.Len(t, res.Items, 40)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, seen)
	assert.Equal(t, 100, seen[len(seen)-1])
	assert.True(t, slices.IsSorted(seen), "percentages rise: %v", seen)
	assert.Equal(t, len(seen), len(slices.Compact(slices.Clone(seen))), "reported only on change: %v", seen)
	assert.Greater(t, len(seen), 2, "intermediate percentages seen: %v", seen)
}

func TestE2ECancelMidWait(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t, wecomtest.WithJobStepDelay(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := append(slices.Clone(fastWait), wecom.WithProgress(func(int) { cancel() }))
	start := time.Now()
	_, err := c.ImportMembers(ctx, wecom.ImportSync, []wecom.Member{member("x", 1)}, wecom.ImportOptions{Wait: wait})
	var we *wecom.WaitError
	require.ErrorAs(t, err, &we)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int(wecom.BatchStarted), we.Status)
	assert.NotEmpty(t, we.JobID)
	assert.Less(t, time.Since(start), 900*time.Millisecond, "the wait ends at once")
	assert.Equal(t, 1, srv.CallCount(pathSyncUser))
}

func TestE2EInvite(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	seedMembers(t, srv, 2)
	res, err := c.Invite(context.Background(), wecom.InviteRequest{Users: []string{"u00", "ghost"}, Parties: []int{1, 77}})
	require.NoError(t, err)
	assert.Equal(t, &wecom.InviteResult{InvalidUsers: []string{"ghost"}, InvalidParties: []int{77}}, res)
}

func TestE2EGetBatchResultUnknownJob(t *testing.T) {
	t.Parallel()
	_, c := newFake(t)
	_, err := c.GetBatchResult(context.Background(), "nope")
	var ae *wecom.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, wecom.CodeJobNotFound, ae.Code)
	var je *wecom.JobError
	assert.False(t, errors.As(err, &je))
}

func TestE2EPlanReplaceMembers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file []string
		want wecom.ReplacePlan
	}{
		{"mixed, case-insensitive", []string{"U01", "u02", "n1"}, wecom.ReplacePlan{
			Create: []string{"n1"}, Update: []string{"U01", "u02"},
			Delete: []string{"u00", "u03", "u04", "u05", "u06", "u07", "u08", "u09"}, Current: 10,
		}},
		{"everyone stays", []string{"u00", "u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09"}, wecom.ReplacePlan{
			Update: []string{"u00", "u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09"}, Current: 10,
		}},
		{"everyone goes", []string{"n1"}, wecom.ReplacePlan{
			Create: []string{"n1"},
			Delete: []string{"u00", "u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09"}, Current: 10, TripsGuard: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, c := newFake(t)
			seedMembers(t, srv, 10)
			var file []wecom.Member
			for i, id := range tt.file {
				file = append(file, member(id, i))
			}
			plan, err := c.PlanReplaceMembers(context.Background(), file)
			require.NoError(t, err)
			assert.Equal(t, &tt.want, plan)
			assert.Equal(t, 0, srv.CallCount(pathUpload)+srv.CallCount(pathReplaceUser), "a plan changes nothing")
			assert.Equal(t, 10, srv.MemberCount())
		})
	}
}

func TestE2EMaxDeletes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		max     int
		refused bool
	}{
		{"zero value refuses any deletion", 0, true},
		{"one is not enough", 1, true},
		{"exactly enough", 2, false},
		{"no guard", wecom.NoDeleteGuard, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, c := newFake(t)
			ids := seedMembers(t, srv, 5)
			file := []wecom.Member{member("u00", 0), member("u01", 1), member("u02", 2)} // u03, u04 would go
			res, err := c.ImportMembers(context.Background(), wecom.ImportReplace, file,
				wecom.ImportOptions{MaxDeletes: tt.max, Wait: fastWait})
			if !tt.refused {
				require.NoError(t, err)
				assert.Empty(t, res.Failed())
				assert.Equal(t, ids[:3], userIDs(srv))
				assert.Equal(t, 1, srv.CallCount(pathReplaceUser))
				return
			}
			require.ErrorIs(t, err, wecom.ErrTooManyDeletes)
			var tm *wecom.TooManyDeletesError
			require.ErrorAs(t, err, &tm)
			assert.Equal(t, tt.max, tm.Max)
			assert.Equal(t, []string{"u03", "u04"}, tm.Plan.Delete)
			assert.Equal(t, 5, tm.Plan.Current)
			assert.False(t, tm.Plan.TripsGuard)
			assert.Equal(t, 0, srv.CallCount(pathReplaceUser), "nothing submitted")
			assert.Equal(t, 0, srv.CallCount(pathUpload), "nothing uploaded")
			assert.Equal(t, ids, userIDs(srv))
		})
	}
}

func TestE2EMaxDeletesZeroValueAllowsNoDeletion(t *testing.T) {
	t.Parallel()
	srv, c := newFake(t)
	seedMembers(t, srv, 2)
	file := []wecom.Member{member("u00", 0), member("u01", 1), member("new", 7)}
	res, err := c.ImportMembers(context.Background(), wecom.ImportReplace, file, wecom.ImportOptions{Wait: fastWait})
	require.NoError(t, err)
	assert.Len(t, res.Items, 3)
	assert.Equal(t, []string{"new", "u00", "u01"}, userIDs(srv))
	assert.Equal(t, 1, srv.CallCount("/cgi-bin/export/simple_user"), "the plan exported the directory")
}
