package wecom_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/wecomkit/wecom"
)

func ExampleWriteMembersCSV() {
	members := []wecom.Member{
		{
			UserID: "zhangsan", Name: "张三", Mobile: "+86-13800000000",
			Departments: []int{1, 2}, IsLeaderInDept: []bool{false, true},
			Position: "工程师", Gender: wecom.GenderMale,
			ExtAttrs: map[string]string{"工号": "007"},
		},
		{UserID: "lisi", Name: "李四", Email: "lisi@example.com", Departments: []int{2}, Disabled: true},
	}
	if err := wecom.WriteMembersCSV(os.Stdout, members); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用),工号
	// 张三,zhangsan,+86-13800000000,,1;2,工程师,男,0;1,,,,,0,,007
	// 李四,lisi,,lisi@example.com,2,,,,,,,,1,,
}

func ExampleWriteMembersCSV_validation() {
	members := []wecom.Member{
		{UserID: "zhangsan", Name: "张三", Mobile: "13800000000", Departments: []int{1}},
		{UserID: "ZhangSan", Name: "张三", Mobile: "13800000001", Departments: []int{1}},
	}
	err := wecom.WriteMembersCSV(os.Stdout, members) // writes nothing: row 2 is bad
	var ce *wecom.CSVError
	if errors.As(err, &ce) {
		fmt.Println(ce.Row, ce.Column, errors.Is(err, wecom.ErrDuplicate))
	}
	fmt.Println(err)
	// Output:
	// 2 帐号 true
	// wecom: csv row 2, column "帐号": duplicate: userid "ZhangSan" is also in row 1 (userids are case-insensitive)
}

func ExampleWriteDepartmentsCSV() {
	depts := []wecom.Department{
		{Name: "总公司", ID: 1},
		{Name: "研发", ID: 2, ParentID: 1, Order: 100},
		{Name: "后端", ID: 3, ParentID: 2},
	}
	if err := wecom.WriteDepartmentsCSV(os.Stdout, depts); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 部门名称,部门ID,父部门ID,排序
	// 总公司,1,0,0
	// 研发,2,1,100
	// 后端,3,2,0
}

func ExampleMemberCSVWriter() {
	w, err := wecom.NewMemberCSVWriter(os.Stdout, []string{"工号"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range 2 { // e.g. rows read from a database cursor
		m := wecom.Member{
			UserID: fmt.Sprintf("user%d", i), Name: fmt.Sprintf("成员%d", i),
			Email: fmt.Sprintf("user%d@example.com", i), Departments: []int{1},
			ExtAttrs: map[string]string{"工号": fmt.Sprint(1000 + i)},
		}
		if err := w.Write(m); err != nil {
			fmt.Println(err) // sticky: discard the output
			return
		}
	}
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用),工号
	// 成员0,user0,,user0@example.com,1,,,,,,,,0,,1000
	// 成员1,user1,,user1@example.com,1,,,,,,,,0,,1001
}
