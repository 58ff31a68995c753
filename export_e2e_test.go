package wecom_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// newExportServer starts a fake WeCom with 3 departments, 7 members and a
// tag, accepting block sizes from 2.
func newExportServer(t *testing.T) (*wecomtest.Server, *wecom.Client) {
	t.Helper()
	srv := wecomtest.NewServer(wecomtest.WithMinBlockSize(2))
	t.Cleanup(srv.Close)
	require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 2, Name: "研发", NameEn: "RD", ParentID: 1, Order: 10}))
	require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 3, Name: "销售", ParentID: 1, Order: 20, DepartmentLeader: []string{"u1"}}))
	for i := 1; i <= 7; i++ {
		require.NoError(t, srv.AddMember(wecomtest.Member{
			UserID: fmt.Sprintf("u%d", i), Name: fmt.Sprintf("用户%d", i), Department: []int{2 + i%2},
			Mobile: fmt.Sprintf("1380000000%d", i), Gender: fmt.Sprint(i % 3), Position: "工程师\"A\"",
			ExtAttr: map[string]string{"工号": fmt.Sprintf("E%d", i)},
		}))
	}
	require.NoError(t, srv.AddTag(wecomtest.Tag{ID: 5, Name: "乒乓球协会", UserIDs: []string{"u1", "u2", "u3"}, PartyIDs: []int{2, 3}}))
	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL),
		wecom.WithRetry(wecom.RetryPolicy{MaxAttempts: 3, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}))
	require.NoError(t, err)
	wecom.SetMinExportBlockSize(c, 2)
	return srv, c
}

func exportAndWait(t *testing.T, c *wecom.Client, kind wecom.ExportKind, tagID, block int) (*wecom.ExportResult, string) {
	t.Helper()
	ctx := context.Background()
	job, err := c.StartExport(ctx, kind, tagID, wecom.ExportRequest{BlockSize: block})
	require.NoError(t, err)
	res, err := c.WaitExportResult(ctx, job.JobID, wecom.WithPollDelay(time.Millisecond, 10*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, wecom.ExportDone, res.Status)
	return res, job.EncodingAESKey
}

func TestExportE2E(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, c := newExportServer(t)

	t.Run("user", func(t *testing.T) {
		res, key := exportAndWait(t, c, wecom.ExportKindUser, 0, 3)
		assert.Len(t, res.DataList, 3, "7 members in blocks of 3")
		var got []wecom.ExportedUser
		for u, err := range c.ExportedUsers(ctx, res, key) {
			require.NoError(t, err)
			got = append(got, u)
		}
		require.Len(t, got, 7)
		u := got[0]
		assert.Equal(t, "u1", u.UserID)
		assert.Equal(t, "用户1", u.Name)
		assert.Equal(t, []int{3}, u.Department)
		assert.Equal(t, wecom.GenderMale, u.Gender)
		assert.Equal(t, wecom.GenderFemale, got[1].Gender)
		assert.Equal(t, `工程师"A"`, u.Position)
		assert.Equal(t, "13800000001", u.Mobile)
		assert.Equal(t, 1, u.Status)
		assert.NotEmpty(t, u.OpenUserID)
		require.Len(t, u.ExtAttr.Attrs, 1)
		assert.Equal(t, "工号", u.ExtAttr.Attrs[0].Name)
		assert.Equal(t, "E1", u.ExtAttr.Attrs[0].Text.Value)
	})
	t.Run("simple_user", func(t *testing.T) {
		res, key := exportAndWait(t, c, wecom.ExportKindSimpleUser, 0, 2)
		assert.Len(t, res.DataList, 4)
		n := 0
		for u, err := range c.ExportedUsers(ctx, res, key) {
			require.NoError(t, err)
			n++
			assert.Equal(t, fmt.Sprintf("u%d", n), u.UserID)
			assert.NotEmpty(t, u.OpenUserID)
			assert.Empty(t, u.Mobile)
		}
		assert.Equal(t, 7, n)
	})
	t.Run("department", func(t *testing.T) {
		res, key := exportAndWait(t, c, wecom.ExportKindDepartment, 0, 2)
		assert.Len(t, res.DataList, 2)
		var got []wecom.ExportedDepartment
		for d, err := range c.ExportedDepartments(ctx, res, key) {
			require.NoError(t, err)
			got = append(got, d)
		}
		require.Len(t, got, 3)
		assert.Equal(t, 1, got[0].ID)
		assert.Equal(t, wecom.ExportedDepartment{ID: 2, Name: "研发", NameEn: "RD", ParentID: 1, Order: 10, DepartmentLeader: []string{}}, got[1])
		assert.Equal(t, []string{"u1"}, got[2].DepartmentLeader)
	})
	t.Run("taguser", func(t *testing.T) {
		res, key := exportAndWait(t, c, wecom.ExportKindTagUser, 5, 2)
		assert.Len(t, res.DataList, 3, "3 users + 2 departments in blocks of 2")
		var got []wecom.ExportedTagMember
		for m, err := range c.ExportedTagUsers(ctx, res, key) {
			require.NoError(t, err)
			got = append(got, m)
		}
		assert.Equal(t, []wecom.ExportedTagMember{
			{TagName: "乒乓球协会", UserID: "u1", Name: "用户1"},
			{TagName: "乒乓球协会", UserID: "u2", Name: "用户2"},
			{TagName: "乒乓球协会", UserID: "u3", Name: "用户3"},
			{TagName: "乒乓球协会", PartyID: 2},
			{TagName: "乒乓球协会", PartyID: 3},
		}, got)
		assert.True(t, got[3].IsDepartment())
		assert.False(t, got[0].IsDepartment())
	})
	t.Run("unknown tag", func(t *testing.T) {
		_, err := c.ExportTagUser(ctx, 99, wecom.ExportRequest{EncodingAESKey: wecom.NewEncodingAESKey()})
		var ae *wecom.APIError
		assert.ErrorAs(t, err, &ae)
	})
}

func TestExportE2EFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	collect := func(c *wecom.Client, res *wecom.ExportResult, key string) (int, error) {
		n := 0
		for _, err := range c.ExportedUsers(ctx, res, key) {
			if err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	cases := []struct {
		name  string
		fault wecomtest.Fault
		check func(t *testing.T, n int, err error)
	}{
		{"drop mid-body resumes", wecomtest.Fault{DropAfter: 100}, func(t *testing.T, n int, err error) {
			require.NoError(t, err)
			assert.Equal(t, 7, n)
		}},
		{"dropped connection retried", wecomtest.Fault{Drop: true, Times: 2}, func(t *testing.T, n int, err error) {
			require.NoError(t, err)
			assert.Equal(t, 7, n)
		}},
		{"5xx retried", wecomtest.Fault{Status: http.StatusBadGateway, Times: 2}, func(t *testing.T, n int, err error) {
			require.NoError(t, err)
			assert.Equal(t, 7, n)
		}},
		{"corrupted", wecomtest.Fault{Corrupt: true}, func(t *testing.T, n int, err error) {
			assert.ErrorIs(t, err, wecom.ErrChecksumMismatch)
			assert.Zero(t, n)
		}},
		{"truncated every time", wecomtest.Fault{Truncate: true, Times: -1}, func(t *testing.T, n int, err error) {
			assert.Error(t, err)
			assert.Zero(t, n)
		}},
		{"expired URL", wecomtest.Fault{Status: http.StatusForbidden}, func(t *testing.T, n int, err error) {
			assert.ErrorIs(t, err, wecom.ErrExportURLExpired)
			assert.NotContains(t, err.Error(), "sign=")
			assert.Zero(t, n)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, c := newExportServer(t)
			res, key := exportAndWait(t, c, wecom.ExportKindUser, 0, 0)
			srv.InjectFault(wecomtest.ExportFilePath, tc.fault)
			n, err := collect(c, res, key)
			tc.check(t, n, err)
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		_, c := newExportServer(t)
		res, _ := exportAndWait(t, c, wecom.ExportKindUser, 0, 0)
		n, err := collect(c, res, wecom.NewEncodingAESKey())
		assert.Error(t, err)
		assert.Zero(t, n)
		var de *wecom.ExportDecodeError
		assert.True(t, errors.Is(err, wecom.ErrBadPadding) || errors.As(err, &de), "%v", err)
	})
	t.Run("expired by the clock", func(t *testing.T) {
		t.Parallel()
		var skew atomic.Int64
		srv := wecomtest.NewServer(wecomtest.WithClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }))
		t.Cleanup(srv.Close)
		c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
		require.NoError(t, err)
		res, key := exportAndWait(t, c, wecom.ExportKindDepartment, 0, 0)
		skew.Store(int64(3 * time.Hour))
		var errs []error
		for _, err := range c.ExportedDepartments(ctx, res, key) {
			errs = append(errs, err)
		}
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], wecom.ErrExportURLExpired)
		var re *wecom.ResponseError
		assert.ErrorAs(t, errs[0], &re)
	})
}
