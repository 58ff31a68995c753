//go:build ignore

// gen.go writes the quickstart's data: testdata/departments.csv (a
// 3-level tree of 30 departments), testdata/members.csv (2,000 members)
// and testdata/seed.csv (the 5 members the fake company starts with). The
// output is deterministic (fixed seed), so regenerating changes nothing:
//
//	go generate ./examples/quickstart
//
// Three member rows are made to fail on the server, with WeCom's per-row
// codes, while passing the client's validation (which would stop them
// before the upload):
//   - row 137 uses the mobile of seeded member wangjianguo: 60104;
//   - row 842 uses the email of seeded member lixiuying: 60106;
//   - row 1555 has an email with a parenthesis, which the client's syntax
//     check lets through and WeCom (and wecomtest) rejects: 60105.
package main

import (
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/wecomkit/wecom"
)

const memberCount = 2000

func main() {
	depts, leaves := departments()
	seed := []wecom.Member{
		{UserID: "wangjianguo", Name: "王建国", Mobile: "13900000001", Email: "wangjianguo@example.com", Departments: []int{1}, Position: "总经理", Gender: wecom.GenderMale},
		{UserID: "lixiuying", Name: "李秀英", Mobile: "13900000002", Email: "admin@example.com", Departments: []int{1}, Position: "行政主管", Gender: wecom.GenderFemale},
		{UserID: "zhangwei", Name: "张伟", Mobile: "13900000003", Departments: []int{1}, Position: "财务"},
		{UserID: "liuyang", Name: "刘洋", Email: "liuyang@example.com", Departments: []int{1}, Position: "法务"},
		{UserID: "chenjing", Name: "陈静", Mobile: "13900000005", Departments: []int{1}, Position: "前台", Gender: wecom.GenderFemale},
	}
	members := generateMembers(leaves)
	members[136].Mobile = seed[0].Mobile                // row 137: 60104 mobile existed
	members[841].Email = seed[1].Email                  // row 842: 60106 email existed
	members[1554].Email = "zhao.lei(sales)@example.com" // row 1555: 60105 invalid email

	write("departments.csv", func(f *os.File) error { return wecom.WriteDepartmentsCSV(f, depts) })
	write("members.csv", func(f *os.File) error { return wecom.WriteMembersCSV(f, members) })
	write("seed.csv", func(f *os.File) error { return wecom.WriteMembersCSV(f, seed) })
}

func write(name string, fn func(*os.File) error) {
	f, err := os.Create(filepath.Join("testdata", name))
	if err != nil {
		log.Fatal(err)
	}
	if err := fn(f); err != nil {
		log.Fatal(name, ": ", err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

// departments returns a tree under the root (1): divisions, their teams,
// and the sales regions' city offices; leaves are where members go.
func departments() (depts []wecom.Department, leaves []int) {
	type team struct {
		name   string
		cities []string
	}
	type division struct {
		name  string
		teams []team
	}
	var tree []division
	add := func(name string, teams ...team) { tree = append(tree, division{name, teams}) }
	add("总经办")
	add("研发中心", team{"后端组", nil}, team{"前端组", nil}, team{"移动端组", nil}, team{"测试组", nil}, team{"运维组", nil})
	add("产品部", team{"产品设计组", nil}, team{"用户研究组", nil})
	add("市场部", team{"品牌组", nil}, team{"渠道组", nil})
	add("销售中心",
		team{"华北大区", []string{"北京办事处", "天津办事处"}},
		team{"华东大区", []string{"上海办事处", "杭州办事处", "南京办事处"}},
		team{"华南大区", []string{"广州办事处", "深圳办事处"}},
		team{"西部大区", []string{"成都办事处", "西安办事处"}})
	add("职能中心", team{"人力资源部", nil}, team{"财务部", nil})

	id := 2
	next := func(name string, parent, order int) int {
		depts = append(depts, wecom.Department{Name: name, ID: id, ParentID: parent, Order: order})
		id++
		return id - 1
	}
	for i, div := range tree {
		d := next(div.name, 1, 1000-i*10)
		if len(div.teams) == 0 {
			leaves = append(leaves, d)
		}
		for j, t := range div.teams {
			td := next(t.name, d, 100-j)
			if len(t.cities) == 0 {
				leaves = append(leaves, td)
			}
			for k, c := range t.cities {
				leaves = append(leaves, next(c, td, 100-k))
			}
		}
	}
	return depts, leaves
}

var (
	surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
	given    = []rune("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红兰飞鹏辉建国志文斌宇浩凯欣怡思雨晨博子涵梓轩一诺依晴")
	posts    = []string{"工程师", "高级工程师", "专员", "经理", "主管", "助理", "顾问", "设计师", "分析师"}
)

func generateMembers(leaves []int) []wecom.Member {
	r := rand.New(rand.NewPCG(2024, 1))
	ms := make([]wecom.Member, memberCount)
	firstInDept := map[int]bool{}
	for i := range ms {
		name := string(surnames[r.IntN(len(surnames))]) + string(given[r.IntN(len(given))])
		if r.IntN(2) == 0 {
			name += string(given[r.IntN(len(given))])
		}
		m := wecom.Member{
			UserID:   fmt.Sprintf("emp%04d", i+1),
			Name:     name,
			Mobile:   fmt.Sprintf("138%08d", 10000000+i*7),
			Email:    fmt.Sprintf("emp%04d@example.com", i+1),
			Position: posts[r.IntN(len(posts))],
			Gender:   wecom.Gender(1 + r.IntN(2)),
		}
		dept := leaves[r.IntN(len(leaves))]
		m.Departments = []int{dept}
		if r.IntN(20) == 0 { // one in twenty also belongs to a second team
			if other := leaves[r.IntN(len(leaves))]; other != dept {
				m.Departments = append(m.Departments, other)
			}
		}
		if !firstInDept[dept] {
			firstInDept[dept] = true
			m.IsLeaderInDept = make([]bool, len(m.Departments))
			m.IsLeaderInDept[0] = true
			m.Position = "负责人"
		}
		ms[i] = m
	}
	return ms
}
