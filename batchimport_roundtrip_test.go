package wecom_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// TestE2EMemberRoundTripEveryField writes members with WriteMembersCSV and
// checks that the fake server reads every field back to the same value.
func TestE2EMemberRoundTripEveryField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode wecom.ImportMode
		m    wecom.Member
		want wecomtest.Member
	}{
		{"sync, all fields", wecom.ImportSync, wecom.Member{
			UserID: "Full.User-1", Name: "张三", Mobile: "+86-13800000000", Email: "zs@example.com",
			Departments: []int{2, 3}, Position: "工程师", Gender: wecom.GenderMale,
			IsLeaderInDept: []bool{true, false}, Order: []int{10, 4294967295},
			Alias: "Sam", Address: "深圳", Telephone: "0755-1234", Disabled: true,
			ExtAttrs: map[string]string{"工号": "A001", "爱好": "跑步"},
		}, wecomtest.Member{
			UserID: "Full.User-1", Name: "张三", Mobile: "+86-13800000000", Email: "zs@example.com",
			Department: []int{2, 3}, Position: "工程师", Gender: "1",
			IsLeaderInDept: []int{1, 0}, Order: []int{10, 4294967295},
			Alias: "Sam", Address: "深圳", Telephone: "0755-1234", Status: 2, Enable: 0,
			ExtAttr: map[string]string{"工号": "A001", "爱好": "跑步"}, MainDepartment: 2,
		}},
		{"replace, female, enabled", wecom.ImportReplace, wecom.Member{
			UserID: "f1", Name: "Li", Email: "li@example.com", Departments: []int{3},
			Gender: wecom.GenderFemale, IsLeaderInDept: []bool{true}, Order: []int{0},
		}, wecomtest.Member{
			UserID: "f1", Name: "Li", Email: "li@example.com", Department: []int{3},
			Gender: "2", IsLeaderInDept: []int{1}, Order: []int{0}, Status: 1, Enable: 1, MainDepartment: 3,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, c := newFake(t)
			srv.AddExtAttr("工号")
			srv.AddExtAttr("爱好")
			require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 2, Name: "A", ParentID: 1}))
			require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 3, Name: "B", ParentID: 1}))
			res, err := c.ImportMembers(context.Background(), tt.mode, []wecom.Member{tt.m},
				wecom.ImportOptions{MaxDeletes: wecom.NoDeleteGuard, Wait: fastWait})
			require.NoError(t, err)
			require.Empty(t, res.Failed())
			got, ok := srv.Member(tt.m.UserID)
			require.True(t, ok)
			got.OpenUserID = ""
			assert.Equal(t, tt.want, got)
		})
	}
}
