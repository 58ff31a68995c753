package exampleutil

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/wecomkit/wecom"
)

// The readers must give back exactly what the library's writers wrote,
// or the examples would import something other than their files.
func TestReadRoundTrip(t *testing.T) {
	t.Parallel()
	members := []wecom.Member{
		{UserID: "zhangsan", Name: "张三", Mobile: "+86-13800000000", Departments: []int{1, 2},
			IsLeaderInDept: []bool{false, true}, Order: []int{3, 4}, Position: "工程师", Gender: wecom.GenderMale,
			Alias: "Zhang", Address: "北京", Telephone: "010-1234", ExtAttrs: map[string]string{"工号": "007"}},
		{UserID: "lisi", Name: "李四", Email: "lisi@example.com", Departments: []int{2}, Gender: wecom.GenderFemale, Disabled: true},
	}
	var buf bytes.Buffer
	if err := wecom.WriteMembersCSV(&buf, members); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMembersCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, members) {
		t.Errorf("members:\n got %+v\nwant %+v", got, members)
	}

	depts := []wecom.Department{{Name: "总公司", ID: 1}, {Name: "研发", ID: 2, ParentID: 1, Order: 100}}
	buf.Reset()
	if err := wecom.WriteDepartmentsCSV(&buf, depts); err != nil {
		t.Fatal(err)
	}
	gotD, err := ReadDepartmentsCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotD, depts) {
		t.Errorf("departments:\n got %+v\nwant %+v", gotD, depts)
	}
}
