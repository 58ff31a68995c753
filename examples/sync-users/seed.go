package main

import "github.com/wecomkit/wecom"

// The fake company sync-users starts from when no real corp is configured:
// two departments, zhangsan (who the sample file updates) and two members
// the file does not list (whom a replace would delete).
var (
	seedDepartments = []wecom.Department{
		{Name: "研发部", ID: 2, ParentID: 1},
		{Name: "销售部", ID: 3, ParentID: 1},
	}
	seedMembers = []wecom.Member{
		{UserID: "zhangsan", Name: "张三", Mobile: "13800000001", Departments: []int{2}, Position: "工程师"},
		{UserID: "olduser1", Name: "老员工一", Email: "old1@example.com", Departments: []int{2}},
		{UserID: "olduser2", Name: "老员工二", Email: "old2@example.com", Departments: []int{3}},
	}
)
