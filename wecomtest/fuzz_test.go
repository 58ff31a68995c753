package wecomtest

import (
	"slices"
	"testing"
)

// fuzzServer is a server with one seeded member and two departments, for
// applying fuzzed import files. Each run gets its own, so that a crash
// reproduces from its input alone.
func fuzzServer(t *testing.T) *Server {
	s := NewServer(WithJobStepDelay(0))
	t.Cleanup(s.Close)
	if err := s.AddDepartment(Department{ID: 2, Name: "研发", ParentID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(Member{UserID: "old", Name: "Old", Mobile: "13900000009", Department: []int{2}}); err != nil {
		t.Fatal(err)
	}
	s.AddExtAttr("工号")
	return s
}

// FuzzParseMemberCSV feeds arbitrary member files to the fake server's
// parser and, when they parse, through a whole syncuser or replaceuser
// job: no panic, only the documented file-level codes, one result per row,
// and every row reported successful is in the directory afterwards.
func FuzzParseMemberCSV(f *testing.F) {
	f.Add([]byte(MemberCSVHeader+"\n张三,zhangsan,13800000000,,1,,男,0,0,,,,0,\n"), false)
	f.Add([]byte("\xef\xbb\xbf姓名,账号,所在部门,手机号,工号\r\nA,a,\"1;2\",13800000001,E1\r\n\r\nB,A,2,13800000002,E2\r\n"), true)
	f.Add([]byte("姓名,帐号,所在部门\n\"x\ny\",u1,1\n"), false)
	f.Add([]byte("姓名,帐号,所在部门,是否部门内领导,排序\nN,u2,1;2;3,1;0,9;9;9\n"), true)
	f.Add([]byte("姓名,帐号\nN,u3\n"), false)
	f.Add([]byte("姓名,帐号,所在部门,邮箱\nN,u4,99999999999999999999,a@b\n"), false)
	f.Add([]byte("姓名,帐号,所在部门\n\"unterminated,u5,1\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, replace bool) {
		mf, ferr := parseMemberCSV(data, []string{"工号"})
		if ferr != nil {
			if ferr.code != 40092 && ferr.code != 302003 {
				t.Fatalf("file-level code %d: %v", ferr.code, ferr)
			}
			return
		}
		if len(mf.rows) == 0 {
			t.Fatal("a parsed file without rows")
		}
		seen := map[string]bool{}
		for i := range mf.rows {
			row := validateMemberRow(&mf.rows[i])
			if id := mf.rows[i].cells[mcUserID]; id != "" {
				if seen[userKey(id)] {
					t.Fatalf("userid %q twice in a parsed file", id)
				}
				seen[userKey(id)] = true
			}
			if row.code == 0 && (len(row.depts) == 0 || len(row.depts) > 20 || slices.ContainsFunc(row.depts, func(d int) bool { return d <= 0 })) {
				t.Fatalf("row accepted with departments %v", row.depts)
			}
		}
		s := fuzzServer(t)
		typ := JobSyncUser
		if replace {
			typ = JobReplaceUser
		}
		j := &importJob{id: "fuzz", typ: typ, data: data}
		if ferr := s.runMemberImport(j, []string{"工号"}); ferr != nil {
			if ferr.code != 45026 {
				t.Fatalf("import of a parsed file failed with %v", ferr)
			}
			return
		}
		if len(j.userResults) != len(mf.rows) {
			t.Fatalf("%d results for %d rows", len(j.userResults), len(mf.rows))
		}
		for _, r := range j.userResults {
			if r.ErrCode != 0 {
				continue
			}
			if _, ok := s.Member(r.UserID); !ok {
				t.Fatalf("row %q reported ok but is not in the directory", r.UserID)
			}
		}
	})
}

// FuzzParseDepartmentCSV does the same for department files and
// replaceparty: no panic, only file-level codes WeCom documents for the
// file, one result per row when the file is accepted, and the root
// department never lost.
func FuzzParseDepartmentCSV(f *testing.F) {
	f.Add([]byte(DepartmentCSVHeader + "\n公司,1,0,0\n研发,2,1,10\nQA,3,2,\n"))
	f.Add([]byte("\xef\xbb\xbf部门ID,父部门ID,部门名称\r\n2,1,A\r\n3,2,B\r\n4,3,C\r\n"))
	f.Add([]byte(DepartmentCSVHeader + "\n研发,2,3,1\n测试,3,2,1\n"))
	f.Add([]byte(DepartmentCSVHeader + "\nA,2,1,1\nA,3,1,1\n"))
	f.Add([]byte(DepartmentCSVHeader + "\nA,2,1,-5\n\"B\",2,1,\n"))
	f.Add([]byte("部门名称,部门ID\nA,2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, ferr := parseDepartmentCSV(data)
		if ferr != nil {
			if ferr.code != 40092 {
				t.Fatalf("file-level code %d: %v", ferr.code, ferr)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("a parsed file without rows")
		}
		s := fuzzServer(t)
		j := &importJob{id: "fuzz", typ: JobReplaceParty, data: data}
		if ferr := s.runPartyImport(j); ferr != nil {
			switch ferr.code {
			case 302004, 302006, 302007, 81001, 81002, 40092:
			default:
				t.Fatalf("import of a parsed file failed with %v", ferr)
			}
			return
		}
		if len(j.partyResults) > len(recs) {
			t.Fatalf("%d results for %d rows", len(j.partyResults), len(recs))
		}
		if _, ok := s.Department(1); !ok {
			t.Fatal("the root department is gone")
		}
	})
}
