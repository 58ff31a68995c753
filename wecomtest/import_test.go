package wecomtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSyncUserRows(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	if err := s.AddDepartment(Department{ID: 2, Name: "研发", ParentID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(Member{UserID: "owner", Name: "Owner", Department: []int{1}, Mobile: "13900000000", Email: "own@x.com"}); err != nil {
		t.Fatal(err)
	}
	s.AddExtAttr("爱好")
	tok := token(t, s)
	// BOM, CRLF, 账号 spelling, quoted field with a comma, an unknown column,
	// a registered extension attribute column.
	csv := "\xef\xbb\xbf姓名,账号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用),爱好,未知列\r\n" +
		"张三,zhangsan,13800000001,zs@x.com,1;2,\"工程师,高级\",男,0;1,5;6,老张,\"北京\"\"东城\"\"\",010-1234,0,,旅游,zzz\r\n" +
		",noname,13800000002,,1,,,,,,,,,,,\r\n" +
		"坏ID,-bad,13800000003,,1,,,,,,,,,,,\r\n" +
		"手机,badmobile,abc,,1,,,,,,,,,,,\r\n" +
		"重复手机,dupmobile,13900000000,,1,,,,,,,,,,,\r\n" +
		"邮箱,bademail,,not-an-email,1,,,,,,,,,,,\r\n" +
		"重复邮箱,dupemail,,OWN@x.com,1,,,,,,,,,,,\r\n" +
		"无部门,nodept,13800000004,,,,,,,,,,,,,\r\n" +
		"坏部门,baddept,13800000005,,1;x,,,,,,,,,,,\r\n" +
		"大部门,hugedept,13800000009,,9223372036854775807,,,,,,,,,,,\r\n" +
		"多部门,manydept,13800000006,,1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21,,,,,,,,,,,\r\n" +
		"都空,noreach,,,1,,,,,,,,,,,\r\n" +
		"领导,badleader,13800000007,,1;2,,,1,,,,,,,,\r\n" +
		"女士,lisi,,lisi@x.com,2,,2,,,,,,1,,,\r\n" +
		"新部门,newdept,13800000008,,77,,,,,,,,,,,\r\n"
	m := runImport(t, s, tok, "syncuser", csv)
	wantCode(t, m, 0)
	if str(t, m, "type") != "sync_user" || num(t, m, "total") != 15 || num(t, m, "percentage") != 100 {
		t.Fatalf("bad getresult %v", m)
	}
	want := map[string]int{
		"zhangsan": 0, "noname": 60112, "-bad": 40003, "badmobile": 60103, "dupmobile": 60104,
		"bademail": 60105, "dupemail": 60106, "nodept": 60127, "baddept": 60123, "hugedept": 60123,
		"manydept": 60110, "noreach": 60129, "badleader": 60132, "lisi": 0, "newdept": 0,
	}
	got := rowCodes(t, m)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("row %s: errcode %d, want %d", k, got[k], v)
		}
	}
	for _, it := range m["result"].([]any) {
		if r := it.(obj); num(t, r, "errcode") == 0 && str(t, r, "errmsg") != "ok" {
			t.Errorf("ok row errmsg %v", r)
		}
	}
	zs, ok := s.Member("ZhangSan")
	if !ok {
		t.Fatal("zhangsan not created")
	}
	wantM := Member{UserID: "zhangsan", Name: "张三", Department: []int{1, 2}, Order: []int{5, 6}, Position: "工程师,高级",
		Mobile: "13800000001", Gender: "1", Email: "zs@x.com", IsLeaderInDept: []int{0, 1}, Telephone: "010-1234",
		Alias: "老张", Address: `北京"东城"`, MainDepartment: 1, Status: 1, Enable: 1, ExtAttr: map[string]string{"爱好": "旅游"}}
	wantM.OpenUserID = zs.OpenUserID
	if fmt.Sprintf("%+v", zs) != fmt.Sprintf("%+v", wantM) {
		t.Fatalf("zhangsan:\n got %+v\nwant %+v", zs, wantM)
	}
	if ls, _ := s.Member("lisi"); ls.Status != 2 || ls.Enable != 0 || ls.Gender != "2" {
		t.Fatalf("lisi: %+v", ls)
	}
	nd, _ := s.Member("newdept")
	d77, ok := s.Department(77)
	if !ok || nd.Department[0] != 77 {
		t.Fatal("department 77 not created")
	}
	other, _ := s.Department(d77.ParentID)
	if other.Name != OtherDepartmentName || other.ParentID != 1 {
		t.Fatalf("77 is under %+v", other)
	}
	if len(s.Members()) != 4 {
		t.Fatalf("members: %d", len(s.Members()))
	}
}

func TestSyncUserMerge(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	tok := token(t, s)
	wantCode(t, runImport(t, s, tok, "syncuser", memberCSV(
		"A,a,13800000001,a@x.com,1,职位A,男,,,aliasA,地址A,,0,",
		"B,b,13800000002,,1,,,,,,,,,",
	)), 0)
	// only 姓名/帐号/所在部门/职位 columns; 职位 empty for b → unchanged
	wantCode(t, runImport(t, s, tok, "syncuser", "姓名,帐号,所在部门,职位\nA2,a,1,\nB2,b,1,新职位\n"), 0)
	a, _ := s.Member("a")
	if a.Name != "A2" || a.Position != "职位A" || a.Mobile != "13800000001" || a.Email != "a@x.com" || a.Gender != "1" || a.Alias != "aliasA" {
		t.Fatalf("a: %+v", a)
	}
	b, _ := s.Member("b")
	if b.Name != "B2" || b.Position != "新职位" || b.Mobile != "13800000002" {
		t.Fatalf("b: %+v", b)
	}
	// a member absent from a sync file is untouched; a new one needs mobile or email
	m := runImport(t, s, tok, "syncuser", "姓名,帐号,所在部门\nC,c,1\n")
	if rowCodes(t, m)["c"] != 60129 || len(s.Members()) != 2 {
		t.Fatalf("%v", m)
	}
}

func TestReplaceUser(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	for i := range 10 {
		if err := s.AddMember(Member{UserID: fmt.Sprintf("u%d", i), Name: "n", Department: []int{1}, Mobile: fmt.Sprintf("1380000000%d", i), Avatar: "http://a"}); err != nil {
			t.Fatal(err)
		}
	}
	tok := token(t, s)
	// keep u0..u7 (delete 2 of 10 = 20%), u0 takes u9's mobile (u9 is being deleted)
	rows := []string{"新名,u0,13800000009,,1,,,,,,,,,"}
	for i := 1; i < 8; i++ {
		rows = append(rows, fmt.Sprintf("n,u%d,,u%d@x.com,1,,,,,,,,1,", i, i))
	}
	rows = append(rows, "新人,new1,13700000000,,1,,,,,,,,,")
	m := runImport(t, s, tok, "replaceuser", memberCSV(rows...))
	wantCode(t, m, 0)
	if str(t, m, "type") != "replace_user" {
		t.Fatal(m)
	}
	for k, v := range rowCodes(t, m) {
		if v != 0 {
			t.Errorf("row %s: %d", k, v)
		}
	}
	var ids []string
	for _, mm := range s.Members() {
		ids = append(ids, mm.UserID)
	}
	if !slices.Equal(ids, []string{"new1", "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}) {
		t.Fatalf("members %v", ids)
	}
	u0, _ := s.Member("u0")
	if u0.Name != "新名" || u0.Mobile != "13800000009" || u0.Avatar != "http://a" {
		t.Fatalf("u0 %+v", u0)
	}
	u1, _ := s.Member("u1")
	if u1.Mobile != "" || u1.Email != "u1@x.com" || u1.Status != 2 {
		t.Fatalf("file must win entirely: %+v", u1)
	}
}

func TestReplaceUserDeletionGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cur, keep int
		trips     bool
	}{
		{10, 2, false},    // del 8 = 80%: not more than 80%
		{10, 1, true},     // del 9 = 90%
		{300, 239, true},  // del 61: > 50 and 20.3%
		{300, 241, false}, // del 59: 19.7%
		{300, 250, false}, // del 50 never trips (neither > 50 nor < 50)
		{200, 149, true},  // del 51 > 20% of 200
		{1000, 949, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("cur%d_keep%d", tc.cur, tc.keep), func(t *testing.T) {
			t.Parallel()
			s := newSrv(t, WithCallbackRetries(0, 0))
			for i := range tc.cur {
				if err := s.AddMember(Member{UserID: fmt.Sprintf("u%d", i), Name: "n", Department: []int{1}, Email: fmt.Sprintf("u%d@x.com", i)}); err != nil {
					t.Fatal(err)
				}
			}
			tok := token(t, s)
			var rows []string
			for i := range tc.keep {
				rows = append(rows, fmt.Sprintf("n,u%d,,u%d@x.com,1,,,,,,,,,", i, i))
			}
			m := runImport(t, s, tok, "replaceuser", memberCSV(rows...))
			if !tc.trips {
				wantCode(t, m, 0)
				if len(s.Members()) != tc.keep {
					t.Fatalf("members %d", len(s.Members()))
				}
				return
			}
			wantCode(t, m, 45026)
			if str(t, m, "type") != "replace_user" || num(t, m, "status") != 3 || m["result"] != nil {
				t.Fatalf("failed-job shape %v", m)
			}
			if len(s.Members()) != tc.cur {
				t.Fatal("nothing may be applied when the guard trips")
			}
		})
	}
}

func TestImportFileErrors(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	if err := s.AddDepartment(Department{ID: 5, Name: "existing", ParentID: 1}); err != nil {
		t.Fatal(err)
	}
	tok := token(t, s)
	tests := []struct {
		name, kind, typ, csv string
		code                 int
	}{
		{"empty file", "syncuser", "sync_user", "\xef\xbb\xbf\n\n", 40092},
		{"header only", "replaceuser", "replace_user", MemberCSVHeader + "\n", 40092},
		{"missing 所在部门", "syncuser", "sync_user", "姓名,帐号,手机号\na,a,138\n", 40092},
		{"bad quoting", "syncuser", "sync_user", memberCSV(`a,"a,1380000,,1`), 40092},
		{"duplicate userid", "syncuser", "sync_user", memberCSV("a,dup,13800000001,,1", "b,DUP,13800000002,,1"), 302003},
		{"party empty", "replaceparty", "replace_party", "", 40092},
		{"party header", "replaceparty", "replace_party", "名称,ID\nx,2\n", 40092},
		{"party dup id", "replaceparty", "replace_party", DepartmentCSVHeader + "\na,2,1,\nb,2,1,\n", 302006},
		{"party siblings", "replaceparty", "replace_party", DepartmentCSVHeader + "\na,2,1,\na,3,1,\n", 302007},
		{"party unknown parent", "replaceparty", "replace_party", DepartmentCSVHeader + "\na,2,9,\n", 302004},
		{"party cycle", "replaceparty", "replace_party", DepartmentCSVHeader + "\na,2,3,\nb,3,2,\n", 302004},
		{"party empty name", "replaceparty", "replace_party", DepartmentCSVHeader + "\n,2,1,\n", 302004},
		{"party bad id", "replaceparty", "replace_party", DepartmentCSVHeader + "\nx,abc,1,\n", 302004},
	}
	for _, tc := range tests {
		body := tc.csv
		if len(body) <= 5 { // media/upload needs > 5 bytes; pad with blank lines
			body += "\n\n\n\n\n\n"
		}
		m := runImport(t, s, tok, tc.kind, body)
		if num(t, m, "errcode") != tc.code {
			t.Errorf("%s: errcode %d, want %d: %v", tc.name, num(t, m, "errcode"), tc.code, m)
			continue
		}
		wantCode(t, m, tc.code)
		if str(t, m, "type") != tc.typ || num(t, m, "status") != 3 {
			t.Errorf("%s: shape %v", tc.name, m)
		}
	}
	if len(s.Departments()) != 2 || len(s.Members()) != 0 {
		t.Fatal("failed jobs must not change the directory")
	}
}

func TestImportProgressAndLock(t *testing.T) {
	t.Parallel()
	s := newSrv(t, WithJobStepDelay(30*time.Millisecond))
	tok := token(t, s)
	var rows []string
	for i := range 100 {
		rows = append(rows, fmt.Sprintf("n,u%d,,u%d@x.com,1,,,,,,,,,", i, i))
	}
	id := submit(t, s, tok, "syncuser", memberCSV(rows...), nil)
	if !s.ImportRunning() {
		t.Fatal("ImportRunning")
	}
	// any import type is refused while one runs
	mid := upload(t, s, tok, []byte(DepartmentCSVHeader+"\na,2,1,\n"))
	wantCode(t, postJSON(t, s.api("batch/replaceparty", tok), obj{"media_id": mid}), 302008)
	wantCode(t, postJSON(t, s.api("batch/syncuser", tok), obj{"media_id": mid}), 302008)
	seen := map[int]bool{}
	last := -1
	for {
		m := getJSON(t, s.api("batch/getresult", tok, "jobid", id))
		wantCode(t, m, 0)
		st, p := num(t, m, "status"), num(t, m, "percentage")
		seen[st] = true
		if p < last {
			t.Fatalf("percentage went down %d → %d", last, p)
		}
		if st != 3 && m["result"] != nil {
			t.Fatal("result before status 3")
		}
		if st == 2 && p > 0 && p < 100 {
			seen[20] = true
		}
		last = p
		if st == 3 {
			if p != 100 || len(m["result"].([]any)) != 100 {
				t.Fatalf("final %v", m)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !seen[1] || !seen[2] || !seen[20] {
		t.Fatalf("statuses seen: %v", seen)
	}
	wantCode(t, postJSON(t, s.api("batch/replaceparty", tok), obj{"media_id": mid}), 0)
}

func TestGetResultRetention(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	tok := token(t, s)
	var ids []string
	for i := range 6 {
		ids = append(ids, submit(t, s, tok, "syncuser", memberCSV(fmt.Sprintf("n,u%d,,u%d@x.com,1", i, i)), nil))
		waitJob(t, s, tok, ids[i])
	}
	wantCode(t, getJSON(t, s.api("batch/getresult", tok, "jobid", ids[0])), 40089)
	for _, id := range ids[1:] {
		wantCode(t, getJSON(t, s.api("batch/getresult", tok, "jobid", id)), 0)
	}
	wantCode(t, getJSON(t, s.api("batch/getresult", tok, "jobid", "S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4")), 40088)
	wantCode(t, getJSON(t, s.api("batch/getresult", tok)), 40058)
	if s.JobCount() != 6 {
		t.Fatal(s.JobCount())
	}
}

func TestReplaceParty(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	for _, d := range []Department{
		{ID: 2, Name: "A", ParentID: 1, Order: 1},
		{ID: 3, Name: "B", ParentID: 1},
		{ID: 4, Name: "B-child", ParentID: 3},
		{ID: 5, Name: "empty", ParentID: 1},
		{ID: 6, Name: "has member", ParentID: 1},
		{ID: 7, Name: "empty child", ParentID: 6},
	} {
		if err := s.AddDepartment(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddMember(Member{UserID: "m", Name: "m", Department: []int{6}, Email: "m@x.com"}); err != nil {
		t.Fatal(err)
	}
	tok := token(t, s)
	csv := DepartmentCSVHeader + "\n" +
		"根,1,0,\n" + // rename root
		"A2,2,3,9\n" + // rename + move + order = 14
		"B,3,1,0\n" + // unchanged (order 0 = keep)
		"C,8,3,\n" + // create, its parent listed earlier
		"D,9,8,\n" + // create under a new department (applied after its parent)
		"bad:name,10,1,\n"
	m := runImport(t, s, tok, "replaceparty", csv)
	wantCode(t, m, 0)
	if str(t, m, "type") != "replace_party" || num(t, m, "total") != 6 {
		t.Fatal(m)
	}
	wantAct := map[int][2]int{1: {2, 0}, 2: {14, 0}, 3: {0, 0}, 8: {1, 0}, 9: {1, 0}, 10: {0, 60125}}
	items := m["result"].([]any)
	if len(items) != len(wantAct) {
		t.Fatalf("result items %v", items)
	}
	for i, it := range items {
		r := it.(obj)
		id := num(t, r, "partyid")
		if w := wantAct[id]; num(t, r, "action") != w[0] || num(t, r, "errcode") != w[1] {
			t.Errorf("party %d: %v, want action %d errcode %d", id, r, w[0], w[1])
		}
		if i == 0 && id != 1 {
			t.Error("results must follow file order")
		}
	}
	var ids []int
	for _, d := range s.Departments() {
		ids = append(ids, d.ID)
	}
	// 4 (B-child) is not in the file but 3 keeps it? No: 4 is empty → deleted.
	// 5 empty → deleted; 6 has a member → kept; 7 empty child of 6 → deleted.
	if !slices.Equal(ids, []int{1, 2, 3, 6, 8, 9}) {
		t.Fatalf("departments %v", ids)
	}
	if r, _ := s.Department(1); r.Name != "根" {
		t.Fatal("root not renamed")
	}
	// moving the member out lets the kept department go
	wantCode(t, runImport(t, s, tok, "syncuser", memberCSV("m,m,,m@x.com,2")), 0)
	if _, ok := s.Department(6); ok {
		t.Fatal("department 6 should be deleted once empty")
	}
}

func TestInvite(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	if err := s.AddMember(Member{UserID: "a", Name: "a", Department: []int{1}, Email: "a@x.com"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTag(Tag{ID: 3, Name: "t", UserIDs: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	tok := token(t, s)
	many := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	users := make([]string, 1001)
	for i := range users {
		users[i] = "a"
	}
	tests := []struct {
		name string
		body any
		code int
	}{
		{"all empty", obj{"user": []string{}, "party": []int{}, "tag": []int{}}, 82001},
		{"nothing", obj{}, 82001},
		{"users over 1000", obj{"user": users}, 40058},
		{"users 1000", obj{"user": users[:1000]}, 0},
		{"party over 100", obj{"party": many(101)}, 40058},
		{"tag over 100", obj{"tag": many(101)}, 40058},
		{"bad json", "[", 40058},
		{"bad party type", obj{"party": []any{true}}, 40058},
	}
	for _, tc := range tests {
		wantCode(t, postJSON(t, s.api("batch/invite", tok), tc.body), tc.code)
	}
	m := postJSON(t, s.api("batch/invite", tok), obj{"user": []string{"A", "ghost"}, "party": []any{1, "2"}, "tag": []any{3, 4}})
	wantCode(t, m, 0)
	if fmt.Sprint(m["invaliduser"], m["invalidparty"], m["invalidtag"]) != "[ghost] [2] [4]" {
		t.Fatalf("invalid lists %v", m)
	}
}

func TestSeedValidation(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	bad := []error{
		s.AddDepartment(Department{ID: 1, Name: "again", ParentID: 0}),
		s.AddDepartment(Department{ID: 2, Name: "x", ParentID: 99}),
		s.AddDepartment(Department{ID: 2, Name: "a:b", ParentID: 1}),
		s.AddMember(Member{UserID: "-x", Name: "n", Department: []int{1}}),
		s.AddMember(Member{UserID: "x", Name: "", Department: []int{1}}),
		s.AddMember(Member{UserID: "x", Name: "n", Department: []int{42}}),
		s.AddMember(Member{UserID: "x", Name: "n"}),
		s.AddTag(Tag{Name: "t", UserIDs: []string{"ghost"}}),
	}
	for i, err := range bad {
		if err == nil {
			t.Errorf("case %d: want an error", i)
		}
	}
	if err := s.AddDepartment(Department{Name: "auto", ParentID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(Member{UserID: "x", Name: "n", Department: []int{2}, Mobile: "1"}); err != nil {
		t.Fatal(err)
	}
	if s.AddMember(Member{UserID: "X", Name: "n", Department: []int{2}}) == nil ||
		s.AddMember(Member{UserID: "y", Name: "n", Department: []int{2}, Mobile: "1"}) == nil {
		t.Fatal("duplicates accepted")
	}
	if err := s.AddTag(Tag{Name: "t", UserIDs: []string{"x"}, PartyIDs: []int{2}}); err != nil {
		t.Fatal(err)
	}
	tags := s.Tags()
	if len(tags) != 1 || tags[0].ID != 1 || !strings.EqualFold(tags[0].UserIDs[0], "x") {
		t.Fatalf("%+v", tags)
	}
	m, _ := s.Member("x")
	m.Department[0] = 99 // copies: mutation must not leak in
	if m2, _ := s.Member("x"); m2.Department[0] != 2 || m2.Status != 1 || m2.Enable != 1 || m2.Gender != "0" || m2.MainDepartment != 2 {
		t.Fatalf("%+v", m2)
	}
}
