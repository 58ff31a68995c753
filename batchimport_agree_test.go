package wecom_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// TestE2EClientAndFakeAgreeOnMembers: a member the client's validation
// accepts must be imported by the fake server without a per-row error; a
// member WeCom (the fake) would reject must be refused by the client
// before any network call, naming the column.
func TestE2EClientAndFakeAgreeOnMembers(t *testing.T) {
	t.Parallel()
	base := func() wecom.Member {
		return wecom.Member{UserID: "u1", Name: "Name", Mobile: "13800000000", Departments: []int{1}}
	}
	tests := []struct {
		name    string
		mut     func(m *wecom.Member)
		wantCol string // "" when the client must accept the row
	}{
		{"plain", func(*wecom.Member) {}, ""},
		{"name with a tab", func(m *wecom.Member) { m.Name = "a\tb" }, wecom.CSVColName},
		{"name with NUL", func(m *wecom.Member) { m.Name = "a\x00b" }, wecom.CSVColName},
		{"name with DEL", func(m *wecom.Member) { m.Name = "a\x7fb" }, wecom.CSVColName},
		{"name with inner spaces", func(m *wecom.Member) { m.Name = "a  b" }, ""},
		{"name of spaces only", func(m *wecom.Member) { m.Name = "   " }, wecom.CSVColName},
		{"name of an ideographic space only", func(m *wecom.Member) { m.Name = "\u3000" }, wecom.CSVColName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := base()
			tt.mut(&m)
			err := wecom.ValidateMembers([]wecom.Member{m})
			if tt.wantCol != "" {
				var ce *wecom.CSVError
				require.ErrorAs(t, err, &ce, "the fake rejects this row: the client must refuse it first")
				assert.Equal(t, 1, ce.Row)
				assert.Equal(t, tt.wantCol, ce.Column)
				return
			}
			require.NoError(t, err)
			srv, c := newFake(t)
			res, err := c.ImportMembers(context.Background(), wecom.ImportSync, []wecom.Member{m}, wecom.ImportOptions{Wait: fastWait})
			require.NoError(t, err)
			require.Empty(t, res.Failed(), "a row the client accepts must not fail in the fake")
			got, ok := srv.Member(m.UserID)
			require.True(t, ok)
			assert.Equal(t, m.Name, got.Name)
		})
	}
}

// TestE2EClientAndFakeAgreeOnDepartments: a department file the client
// accepts must be applied by the fake without a file or row error.
func TestE2EClientAndFakeAgreeOnDepartments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dname   string
		wantCol string
	}{
		{"plain", "研发", ""},
		{"name with a tab", "a\tb", wecom.CSVColDeptName},
		{"name with a control character", "a\x01b", wecom.CSVColDeptName},
		{"name of spaces only", "  ", wecom.CSVColDeptName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			depts := []wecom.Department{{Name: tt.dname, ID: 2, ParentID: 1}}
			err := wecom.ValidateDepartments(depts)
			if tt.wantCol != "" {
				var ce *wecom.CSVError
				require.ErrorAs(t, err, &ce, "the fake rejects this file: the client must refuse it first")
				assert.Equal(t, 1, ce.Row)
				assert.Equal(t, tt.wantCol, ce.Column)
				return
			}
			require.NoError(t, err)
			srv, c := newFake(t)
			res, err := c.ImportDepartments(context.Background(), depts, wecom.ImportOptions{Wait: fastWait})
			require.NoError(t, err)
			require.Empty(t, res.Failed())
			d, ok := srv.Department(2)
			require.True(t, ok)
			assert.Equal(t, wecomtest.Department{ID: 2, Name: tt.dname, ParentID: 1}, d)
		})
	}
}
