package wecomtest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var exportJobID = regexp.MustCompile(`^jobid_[0-9a-f]{32}$`)

func submitExport(t testing.TB, s *Server, tok, kind string, body obj) string {
	t.Helper()
	m := postJSON(t, s.api("export/"+kind, tok), body)
	wantCode(t, m, 0)
	id := str(t, m, "jobid")
	if !exportJobID.MatchString(id) {
		t.Fatalf("export jobid %q", id)
	}
	return id
}

// fetchAll downloads, checks size and md5, decrypts independently.
func fetchAll(t testing.TB, list []obj, key string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range list {
		st, b, _ := download(t, str(t, f, "url"))
		if st != 200 {
			t.Fatalf("download HTTP %d: %s", st, b)
		}
		sum := md5.Sum(b)
		if len(b) != num(t, f, "size") || hex.EncodeToString(sum[:]) != str(t, f, "md5") {
			t.Fatalf("size/md5 mismatch")
		}
		out = append(out, independentDecrypt(t, key, b))
	}
	return out
}

func TestExportSubmitErrors(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	tok := token(t, s)
	tests := []struct {
		kind string
		body any
		code int
	}{
		{"user", obj{}, 40058},
		{"user", obj{"encoding_aeskey": "short"}, 40058},
		{"user", obj{"encoding_aeskey": strings.Repeat("a", 42) + "!"}, 40058},
		{"user", obj{"encoding_aeskey": testKey, "block_size": 9999}, 40058},
		{"user", obj{"encoding_aeskey": testKey, "block_size": 1000001}, 40058},
		{"simple_user", obj{"encoding_aeskey": testKey, "block_size": -1}, 40058},
		{"department", "nope", 40058},
		{"taguser", obj{"encoding_aeskey": testKey}, 40068},
		{"taguser", obj{"encoding_aeskey": testKey, "tagid": 7}, 40068},
		{"user", obj{"encoding_aeskey": testKey, "block_size": 10000}, 0},
		{"user", obj{"encoding_aeskey": testKey}, 0},
	}
	for _, tc := range tests {
		wantCode(t, postJSON(t, s.api("export/"+tc.kind, tok), tc.body), tc.code)
	}
	wantCode(t, getJSON(t, s.api("export/get_result", tok, "jobid", "jobid_00000000000000000000000000000000")), 40088)
	wantCode(t, getJSON(t, s.api("export/get_result", tok)), 40058)
}

func TestExportShapes(t *testing.T) {
	t.Parallel()
	s := newSrv(t, WithMinBlockSize(1), WithJobStepDelay(20*time.Millisecond))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddDepartment(Department{ID: 2, Name: "广州研发中心", NameEn: "RDGZ", ParentID: 1, Order: 10, DepartmentLeader: []string{"zhangsan"}}))
	must(s.AddDepartment(Department{ID: 3, Name: "b", ParentID: 2}))
	must(s.AddMember(Member{UserID: "zhangsan", Name: "张三", Department: []int{1, 2}, Order: []int{1, 2}, Position: "p", Mobile: "138",
		Gender: "1", Email: "z@x.com", BizMail: "z@biz.com", IsLeaderInDept: []int{1, 0}, DirectLeader: []string{"lisi"},
		Avatar: "http://a", ThumbAvatar: "http://t", Telephone: "020-1", Alias: "al", Address: "addr\n\"q\"", MainDepartment: 2,
		ExtAttr: map[string]string{"爱好": "旅游"}, QRCode: "http://qr", ExternalPosition: "ep"}))
	must(s.AddMember(Member{UserID: "lisi", Name: "李四", Department: []int{3}, Email: "l@x.com", Status: 2}))
	must(s.AddTag(Tag{ID: 5, Name: "乒乓球协会", UserIDs: []string{"zhangsan", "lisi"}, PartyIDs: []int{2, 3}}))
	tok := token(t, s)

	t.Run("status progression", func(t *testing.T) {
		id := submitExport(t, s, tok, "department", obj{"encoding_aeskey": testKey, "block_size": 1})
		seen := map[int]bool{}
		for {
			m := getJSON(t, s.api("export/get_result", tok, "jobid", id))
			st := num(t, m, "status")
			seen[st] = true
			if st != 2 && m["data_list"] != nil {
				t.Fatal("data_list before status 2")
			}
			if st == 2 {
				break
			}
			time.Sleep(3 * time.Millisecond)
		}
		if !seen[0] || !seen[1] {
			t.Fatalf("statuses %v", seen)
		}
	})

	tests := []struct {
		kind  string
		body  obj
		files int
		want  []string // decrypted JSON per file
	}{
		{"simple_user", obj{"block_size": 1}, 2, []string{
			`{"userlist":[{"userid":"lisi","name":"李四","department":[3],"open_userid":"%lisi"}]}`,
			`{"userlist":[{"userid":"zhangsan","name":"张三","department":[1,2],"open_userid":"%zhangsan"}]}`,
		}},
		{"user", obj{}, 1, []string{`{"userlist":[` +
			`{"userid":"lisi","name":"李四","department":[3],"order":[0],"position":"","mobile":"","gender":"0","email":"l@x.com","biz_mail":"","is_leader_in_dept":[0],"direct_leader":[],"avatar":"","thumb_avatar":"","telephone":"","alias":"","address":"","open_userid":"%lisi","main_department":3,"extattr":{"attrs":[]},"status":2,"qr_code":"","external_position":""},` +
			`{"userid":"zhangsan","name":"张三","department":[1,2],"order":[1,2],"position":"p","mobile":"138","gender":"1","email":"z@x.com","biz_mail":"z@biz.com","is_leader_in_dept":[1,0],"direct_leader":["lisi"],"avatar":"http://a","thumb_avatar":"http://t","telephone":"020-1","alias":"al","address":"addr\n\"q\"","open_userid":"%zhangsan","main_department":2,"extattr":{"attrs":[{"type":0,"name":"爱好","text":{"value":"旅游"}}]},"status":1,"qr_code":"http://qr","external_position":"ep"}` +
			`]}`}},
		{"department", obj{"block_size": 2}, 2, []string{
			`{"department":[{"id":1,"name":"测试企业","name_en":"","department_leader":[],"parentid":0,"order":100000000},{"id":2,"name":"广州研发中心","name_en":"RDGZ","department_leader":["zhangsan"],"parentid":1,"order":10}]}`,
			`{"department":[{"id":3,"name":"b","name_en":"","department_leader":[],"parentid":2,"order":0}]}`,
		}},
		{"taguser", obj{"tagid": 5, "block_size": 3}, 2, []string{
			`{"tagname":"乒乓球协会","userlist":[{"userid":"zhangsan","name":"张三"},{"userid":"lisi","name":"李四"}],"partylist":[2]}`,
			`{"tagname":"乒乓球协会","userlist":[],"partylist":[3]}`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			body := obj{"encoding_aeskey": testKey}
			for k, v := range tc.body {
				body[k] = v
			}
			list := waitExport(t, s, tok, submitExport(t, s, tok, tc.kind, body))
			if len(list) != tc.files {
				t.Fatalf("%d files, want %d", len(list), tc.files)
			}
			plains := fetchAll(t, list, testKey)
			for i, p := range plains {
				want := tc.want[i]
				for _, u := range []string{"lisi", "zhangsan"} {
					m, _ := s.Member(u)
					want = strings.ReplaceAll(want, "%"+u, m.OpenUserID)
				}
				if string(p) != want {
					t.Errorf("file %d:\n got %s\nwant %s", i, p, want)
				}
				if !json.Valid(p) {
					t.Errorf("file %d is not JSON", i)
				}
			}
		})
	}
}

func TestExportFileServing(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newSrv(t, WithClock(clk.Now), WithTokenTTL(100*time.Hour))
	for i := range 50 {
		if err := s.AddMember(Member{UserID: fmt.Sprintf("user%03d", i), Name: "名字", Department: []int{1}, Email: fmt.Sprintf("u%d@x.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	tok := token(t, s)
	id := submitExport(t, s, tok, "user", obj{"encoding_aeskey": testKey})
	list := waitExport(t, s, tok, id)
	u := str(t, list[0], "url")
	if !strings.HasPrefix(u, s.URL+ExportFilePath) {
		t.Fatalf("url %s", u)
	}
	st, full, hdr := download(t, u)
	if st != 200 || hdr.Get("Accept-Ranges") != "bytes" || len(full) != num(t, list[0], "size") {
		t.Fatalf("HTTP %d %v", st, hdr)
	}
	t.Run("range", func(t *testing.T) {
		st, part, hdr := download(t, u, "Range", "bytes=100-299")
		if st != 206 || string(part) != string(full[100:300]) || hdr.Get("Content-Range") != fmt.Sprintf("bytes 100-299/%d", len(full)) {
			t.Fatalf("HTTP %d %q", st, hdr.Get("Content-Range"))
		}
		st, part, _ = download(t, u, "Range", fmt.Sprintf("bytes=%d-", len(full)-10))
		if st != 206 || string(part) != string(full[len(full)-10:]) {
			t.Fatalf("suffix range HTTP %d", st)
		}
		st, _, _ = download(t, u, "Range", fmt.Sprintf("bytes=%d-", len(full)+10))
		if st != 416 {
			t.Fatalf("unsatisfiable range: HTTP %d", st)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		pu, _ := url.Parse(u)
		q := pu.Query()
		q.Set("sign", strings.Repeat("0", 64))
		pu.RawQuery = q.Encode()
		st, b, _ := download(t, pu.String())
		if st != 403 || !strings.Contains(string(b), "AccessDenied") {
			t.Fatalf("HTTP %d %s", st, b)
		}
		st, _, _ = download(t, s.URL+ExportFilePath+id+"/1")
		if st != 403 {
			t.Fatalf("unsigned: HTTP %d", st)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		clk.Advance(ExportURLTTL)
		if st, _, _ := download(t, u); st != 200 {
			t.Fatalf("at the deadline: HTTP %d", st)
		}
		clk.Advance(time.Second)
		st, b, _ := download(t, u)
		if st != 403 || !strings.Contains(string(b), "expired") {
			t.Fatalf("expired: HTTP %d %s", st, b)
		}
		// a fresh get_result hands out fresh URLs
		list2 := waitExport(t, s, tok, id)
		if st, b, _ := download(t, str(t, list2[0], "url")); st != 200 || string(b) != string(full) {
			t.Fatalf("fresh url HTTP %d", st)
		}
	})
}

// TestImportExport10k imports 10,000 members from CSV, exports them in
// several files, and decrypts the files with crypto/cipher directly.
func TestImportExport10k(t *testing.T) {
	t.Parallel()
	s := newSrv(t, WithMinBlockSize(1000))
	tok := token(t, s)
	const n = 10000
	var sb strings.Builder
	sb.WriteString(MemberCSVHeader + "\n")
	for i := range n {
		gender := []string{"", "男", "女"}[i%3]
		fmt.Fprintf(&sb, "名字%d,user%05d,+86-138%08d,u%d@example.com,%d;%d,职位%d,%s,0;1,%d;%d,别名%d,\"地址,%d\",010-%d,%d,\n",
			i, i, i, i, 1, 2+i%7, i, gender, i, i+1, i, i, i, i%2)
	}
	m := runImport(t, s, tok, "replaceparty", DepartmentCSVHeader+"\na,2,1,\nb,3,1,\nc,4,1,\nd,5,1,\ne,6,1,\nf,7,1,\ng,8,1,\n")
	wantCode(t, m, 0)
	m = runImport(t, s, tok, "syncuser", sb.String())
	wantCode(t, m, 0)
	for k, v := range rowCodes(t, m) {
		if v != 0 {
			t.Fatalf("row %s: %d", k, v)
		}
	}
	key := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456"
	list := waitExport(t, s, tok, submitExport(t, s, tok, "user", obj{"encoding_aeskey": key, "block_size": 3000}))
	if len(list) != 4 {
		t.Fatalf("%d files, want 4", len(list))
	}
	type user struct {
		UserID         string `json:"userid"`
		Name           string `json:"name"`
		Department     []int  `json:"department"`
		Order          []int  `json:"order"`
		Position       string `json:"position"`
		Mobile         string `json:"mobile"`
		Gender         string `json:"gender"`
		Email          string `json:"email"`
		IsLeaderInDept []int  `json:"is_leader_in_dept"`
		Telephone      string `json:"telephone"`
		Alias          string `json:"alias"`
		Address        string `json:"address"`
		MainDepartment int    `json:"main_department"`
		Status         int    `json:"status"`
	}
	var got []user
	for i, p := range fetchAll(t, list, key) {
		var doc struct {
			UserList []user `json:"userlist"`
		}
		if err := json.Unmarshal(p, &doc); err != nil {
			t.Fatal(err)
		}
		if want := min(3000, n-3000*i); len(doc.UserList) != want {
			t.Fatalf("file %d has %d records, want %d", i, len(doc.UserList), want)
		}
		got = append(got, doc.UserList...)
	}
	if len(got) != n {
		t.Fatalf("%d users", len(got))
	}
	for i, u := range got {
		want := user{
			UserID: fmt.Sprintf("user%05d", i), Name: fmt.Sprintf("名字%d", i), Department: []int{1, 2 + i%7},
			Order: []int{i, i + 1}, Position: fmt.Sprintf("职位%d", i), Mobile: fmt.Sprintf("+86-138%08d", i),
			Gender: []string{"0", "1", "2"}[i%3], Email: fmt.Sprintf("u%d@example.com", i), IsLeaderInDept: []int{0, 1},
			Telephone: fmt.Sprintf("010-%d", i), Alias: fmt.Sprintf("别名%d", i), Address: fmt.Sprintf("地址,%d", i),
			MainDepartment: 1, Status: 1 + i%2,
		}
		if fmt.Sprint(u) != fmt.Sprint(want) {
			t.Fatalf("member %d:\n got %+v\nwant %+v", i, u, want)
		}
	}
	if !slices.IsSortedFunc(got, func(a, b user) int { return strings.Compare(a.UserID, b.UserID) }) {
		t.Fatal("not sorted")
	}
}
