package wecom

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// memberRecord formats m as the fields of one template row, independently of
// csv.go's appendRow, for round-trip checks and the encoding/csv baseline.
func memberRecord(m Member, ext []string) []string {
	join := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, ";")
	}
	gender := map[Gender]string{GenderUnset: "", GenderMale: "男", GenderFemale: "女"}[m.Gender]
	disabled := "0"
	if m.Disabled {
		disabled = "1"
	}
	rec := []string{
		m.Name, m.UserID, m.Mobile, m.Email,
		join(len(m.Departments), func(i int) string { return strconv.Itoa(m.Departments[i]) }),
		m.Position, gender,
		join(len(m.IsLeaderInDept), func(i int) string {
			if m.IsLeaderInDept[i] {
				return "1"
			}
			return "0"
		}),
		join(len(m.Order), func(i int) string { return strconv.Itoa(m.Order[i]) }),
		m.Alias, m.Address, m.Telephone, disabled, "",
	}
	for _, name := range ext {
		rec = append(rec, m.ExtAttrs[name])
	}
	return rec
}

var memberHeaderFields = []string{"姓名", "帐号", "手机号", "邮箱", "所在部门", "职位", "性别", "是否部门内领导", "排序",
	"别名", "地址", "座机", "禁用", "禁用项说明：(0-启用;1-禁用)"}

func validMember(i int) Member {
	return Member{
		UserID:         fmt.Sprintf("user%03d", i),
		Name:           fmt.Sprintf("张三%d", i),
		Mobile:         fmt.Sprintf("+86-138%08d", i),
		Email:          fmt.Sprintf("user%d@example.com", i),
		Departments:    []int{1, 2},
		Position:       "工程师",
		Gender:         GenderMale,
		IsLeaderInDept: []bool{true, false},
		Order:          []int{10, 0},
		Alias:          "Zhang",
		Address:        "北京市海淀区",
		Telephone:      "010-12345678",
	}
}

func TestWriteMembersCSVGolden(t *testing.T) {
	t.Parallel()
	const header = "姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用)"
	tests := []struct {
		name    string
		members []Member
		want    string
	}{
		{"no members", nil, header + "\n"},
		{
			"full and minimal rows",
			[]Member{
				validMember(1),
				{UserID: "li.si@corp", Name: "李四", Email: "lisi@example.com", Departments: []int{3}, Gender: GenderFemale, Disabled: true},
				{UserID: "W5", Name: "王五", Mobile: "13800000000", Departments: []int{1}},
			},
			header + "\n" +
				"张三1,user001,+86-13800000001,user1@example.com,1;2,工程师,男,1;0,10;0,Zhang,北京市海淀区,010-12345678,0,\n" +
				"李四,li.si@corp,,lisi@example.com,3,,女,,,,,,1,\n" +
				"王五,W5,13800000000,,1,,,,,,,,0,\n",
		},
		{
			"extension attributes: sorted union, empty cells where missing",
			[]Member{
				{UserID: "a", Name: "A", Mobile: "1", Departments: []int{1}, ExtAttrs: map[string]string{"工号": "007", "Badge": "x y"}},
				{UserID: "b", Name: "B", Mobile: "2", Departments: []int{1}, ExtAttrs: map[string]string{"级别": "P7"}},
				{UserID: "c", Name: "C", Mobile: "3", Departments: []int{1}},
			},
			header + ",Badge,工号,级别\n" +
				"A,a,1,,1,,,,,,,,0,,x y,007,\n" +
				"B,b,2,,1,,,,,,,,0,,,,P7\n" +
				"C,c,3,,1,,,,,,,,0,,,,\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteMembersCSV(&buf, tt.members); err != nil {
				t.Fatalf("WriteMembersCSV: %v", err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("output mismatch\ngot:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestWriteDepartmentsCSVGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		depts []Department
		want  string
	}{
		{"no departments", nil, "部门名称,部门ID,父部门ID,排序\n"},
		{
			"root row, children in any order, order 0 written empty",
			[]Department{
				{Name: "研发部门", ID: 3, ParentID: 2, Order: 5},
				{Name: "万华教育", ID: 1, ParentID: 0, Order: 1},
				{Name: "总部", ID: 2, ParentID: 1},
				{Name: "研发部门", ID: 4, ParentID: 1, Order: 4294967295},
			},
			"部门名称,部门ID,父部门ID,排序\n" +
				"研发部门,3,2,5\n" +
				"万华教育,1,0,1\n" +
				"总部,2,1,0\n" +
				"研发部门,4,1,4294967295\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteDepartmentsCSV(&buf, tt.depts); err != nil {
				t.Fatalf("WriteDepartmentsCSV: %v", err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("output mismatch\ngot:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// checkCSVError asserts err is a *CSVError at row/col wrapping want.
func checkCSVError(t *testing.T, err error, row int, col string, want error) {
	t.Helper()
	var ce *CSVError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CSVError", err, err)
	}
	if ce.Row != row || ce.Column != col {
		t.Errorf("got row %d column %q, want row %d column %q (%v)", ce.Row, ce.Column, row, col, err)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %v does not wrap %v", err, want)
	}
	msg := err.Error()
	if !strings.Contains(msg, "row "+strconv.Itoa(row)) || !strings.Contains(msg, strconv.Quote(csvClip(col))) {
		t.Errorf("message %q does not name row %d and column %q", msg, row, col)
	}
}

func TestMemberValidation(t *testing.T) {
	t.Parallel()
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	tests := []struct {
		name string
		mut  func(m *Member)
		col  string
		want error
		// stream is what the streaming writer reports, if not want: a
		// name that cannot be declared is an unknown column there.
		stream error
	}{
		{"name missing", func(m *Member) { m.Name = "" }, CSVColName, ErrRequired, nil},
		{"name 65 characters", func(m *Member) { m.Name = long(65, "名") }, CSVColName, ErrTooLong, nil},
		{"name too long is also invalid", func(m *Member) { m.Name = long(65, "a") }, CSVColName, ErrInvalidValue, nil},
		{"name with comma", func(m *Member) { m.Name = "张,三" }, CSVColName, ErrUnsafeCSVValue, nil},
		{"name with quote", func(m *Member) { m.Name = `张"三` }, CSVColName, ErrUnsafeCSVValue, nil},
		{"name with LF", func(m *Member) { m.Name = "张\n三" }, CSVColName, ErrUnsafeCSVValue, nil},
		{"name with CR", func(m *Member) { m.Name = "张\r三" }, CSVColName, ErrUnsafeCSVValue, nil},
		{"name invalid UTF-8", func(m *Member) { m.Name = "\xff\xfe" }, CSVColName, ErrInvalidValue, nil},
		{"name with tab", func(m *Member) { m.Name = "张\t三" }, CSVColName, ErrInvalidValue, nil},
		{"name only spaces", func(m *Member) { m.Name = "  " }, CSVColName, ErrRequired, nil},
		{"name with DEL", func(m *Member) { m.Name = "张\x7f" }, CSVColName, ErrInvalidValue, nil},
		{"userid missing", func(m *Member) { m.UserID = "" }, CSVColUserID, ErrRequired, nil},
		{"userid 65 bytes", func(m *Member) { m.UserID = long(65, "a") }, CSVColUserID, ErrTooLong, nil},
		{"userid starts with _", func(m *Member) { m.UserID = "_abc" }, CSVColUserID, ErrInvalidValue, nil},
		{"userid has space", func(m *Member) { m.UserID = "ab c" }, CSVColUserID, ErrInvalidValue, nil},
		{"userid non-ASCII", func(m *Member) { m.UserID = "张三" }, CSVColUserID, ErrInvalidValue, nil},
		{"userid with comma", func(m *Member) { m.UserID = "a,b" }, CSVColUserID, ErrInvalidValue, nil},
		{"no mobile nor email", func(m *Member) { m.Mobile, m.Email = "", "" }, CSVColMobile, ErrRequired, nil},
		{"mobile with letter", func(m *Member) { m.Mobile = "138x" }, CSVColMobile, ErrInvalidValue, nil},
		{"mobile without digit", func(m *Member) { m.Mobile = "+-" }, CSVColMobile, ErrInvalidValue, nil},
		{"mobile 33 chars", func(m *Member) { m.Mobile = long(33, "1") }, CSVColMobile, ErrTooLong, nil},
		{"mobile with comma", func(m *Member) { m.Mobile = "138,1" }, CSVColMobile, ErrUnsafeCSVValue, nil},
		{"email without @", func(m *Member) { m.Email = "a.example.com" }, CSVColEmail, ErrInvalidValue, nil},
		{"email two @", func(m *Member) { m.Email = "a@b@example.com" }, CSVColEmail, ErrInvalidValue, nil},
		{"email empty local", func(m *Member) { m.Email = "@example.com" }, CSVColEmail, ErrInvalidValue, nil},
		{"email domain without dot", func(m *Member) { m.Email = "a@localhost" }, CSVColEmail, ErrInvalidValue, nil},
		{"email domain ends with dot", func(m *Member) { m.Email = "a@example." }, CSVColEmail, ErrInvalidValue, nil},
		{"email with space", func(m *Member) { m.Email = "a b@example.com" }, CSVColEmail, ErrInvalidValue, nil},
		{"email 65 chars", func(m *Member) { m.Email = long(53, "a") + "@example.com" }, CSVColEmail, ErrTooLong, nil},
		{"email only is enough, but must be valid", func(m *Member) { m.Mobile, m.Email = "", "x" }, CSVColEmail, ErrInvalidValue, nil},
		{"no departments", func(m *Member) { m.Departments, m.IsLeaderInDept, m.Order = nil, nil, nil }, CSVColDepartments, ErrRequired, nil},
		{"department 0", func(m *Member) { m.Departments = []int{0, 2} }, CSVColDepartments, ErrInvalidValue, nil},
		{"department negative", func(m *Member) { m.Departments = []int{1, -2} }, CSVColDepartments, ErrInvalidValue, nil},
		{"department over 32 bits", func(m *Member) { m.Departments = []int{1, 1 << 32} }, CSVColDepartments, ErrInvalidValue, nil},
		{"department twice", func(m *Member) { m.Departments = []int{2, 2} }, CSVColDepartments, ErrDuplicate, nil},
		{"21 departments", func(m *Member) {
			m.Departments, m.IsLeaderInDept, m.Order = nil, nil, nil
			for i := 1; i <= 21; i++ {
				m.Departments = append(m.Departments, i)
			}
		}, CSVColDepartments, ErrInvalidValue, nil},
		{"position 129 chars", func(m *Member) { m.Position = long(129, "职") }, CSVColPosition, ErrTooLong, nil},
		{"position with comma", func(m *Member) { m.Position = "a,b" }, CSVColPosition, ErrUnsafeCSVValue, nil},
		{"unknown gender", func(m *Member) { m.Gender = 3 }, CSVColGender, ErrInvalidValue, nil},
		{"leader list too short", func(m *Member) { m.IsLeaderInDept = []bool{true} }, CSVColIsLeaderInDept, ErrInvalidValue, nil},
		{"order list too long", func(m *Member) { m.Order = []int{1, 2, 3} }, CSVColOrder, ErrInvalidValue, nil},
		{"order negative", func(m *Member) { m.Order = []int{1, -1} }, CSVColOrder, ErrInvalidValue, nil},
		{"alias 33 chars", func(m *Member) { m.Alias = long(33, "a") }, CSVColAlias, ErrTooLong, nil},
		{"alias with quote", func(m *Member) { m.Alias = `"a` }, CSVColAlias, ErrUnsafeCSVValue, nil},
		{"address 129 chars", func(m *Member) { m.Address = long(129, "地") }, CSVColAddress, ErrTooLong, nil},
		{"address with line break", func(m *Member) { m.Address = "a\r\nb" }, CSVColAddress, ErrUnsafeCSVValue, nil},
		{"telephone with +", func(m *Member) { m.Telephone = "+86-10-1234" }, CSVColTelephone, ErrInvalidValue, nil},
		{"telephone 33 chars", func(m *Member) { m.Telephone = long(33, "1") }, CSVColTelephone, ErrTooLong, nil},
		{"duplicate userid, other case", func(m *Member) { m.UserID = "USER001" }, CSVColUserID, ErrDuplicate, nil},
		{"ext attr name empty", func(m *Member) { m.ExtAttrs = map[string]string{"": "v"} }, "", ErrRequired, ErrUnknownColumn},
		{"ext attr name is a template header", func(m *Member) { m.ExtAttrs = map[string]string{"手机号": "v"} }, "手机号", ErrInvalidValue, ErrUnknownColumn},
		{"ext attr name is the new userid spelling", func(m *Member) { m.ExtAttrs = map[string]string{"账号": "v"} }, "账号", ErrInvalidValue, ErrUnknownColumn},
		{"ext attr name with comma", func(m *Member) { m.ExtAttrs = map[string]string{"a,b": "v"} }, "a,b", ErrUnsafeCSVValue, ErrUnknownColumn},
		{"ext attr value with comma", func(m *Member) { m.ExtAttrs = map[string]string{"工号": "1,2"} }, "工号", ErrUnsafeCSVValue, nil},
		{"ext attr value invalid UTF-8", func(m *Member) { m.ExtAttrs = map[string]string{"工号": "\xc3"} }, "工号", ErrInvalidValue, nil},
		{"first bad ext attr by name", func(m *Member) {
			m.ExtAttrs = map[string]string{"z": "1,2", "b": "\n", "a": "ok", "c": `"`}
		}, "b", ErrUnsafeCSVValue, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			members := []Member{validMember(1), validMember(2), validMember(3)}
			members[0].ExtAttrs = map[string]string{"工号": "1"}
			tt.mut(&members[1])

			checkCSVError(t, ValidateMembers(members), 2, tt.col, tt.want)

			var buf bytes.Buffer
			checkCSVError(t, WriteMembersCSV(&buf, members), 2, tt.col, tt.want)
			if buf.Len() != 0 {
				t.Errorf("WriteMembersCSV wrote %d bytes despite the error", buf.Len())
			}

			// The streaming writer reports the same row and column.
			ext := []string{"工号"}
			for k := range members[1].ExtAttrs {
				if checkExtAttrName(k) == nil && k != "工号" {
					ext = append(ext, k)
				}
			}
			sw, err := NewMemberCSVWriter(io.Discard, ext)
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			for _, m := range members {
				if werr = sw.Write(m); werr != nil {
					break
				}
			}
			want := tt.want
			if tt.stream != nil {
				want = tt.stream
			}
			checkCSVError(t, werr, 2, tt.col, want)
		})
	}
}

func TestValidMemberVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mut  func(m *Member)
	}{
		{"email only", func(m *Member) { m.Mobile = "" }},
		{"mobile only", func(m *Member) { m.Email = "" }},
		{"empty leader and order lists", func(m *Member) { m.IsLeaderInDept, m.Order = nil, nil }},
		{"20 departments", func(m *Member) {
			m.Departments, m.IsLeaderInDept, m.Order = nil, nil, nil
			for i := 1; i <= 20; i++ {
				m.Departments = append(m.Departments, i)
			}
		}},
		{"userid with every allowed character", func(m *Member) { m.UserID = "9aZ_-@." }},
		{"64-byte userid", func(m *Member) { m.UserID = strings.Repeat("a", 64) }},
		{"64-character name", func(m *Member) { m.Name = strings.Repeat("名", 64) }},
		{"mobile with leading + is not formula-escaped", func(m *Member) { m.Mobile = "+8613800000000" }},
		{"values with leading = and @", func(m *Member) { m.Position = "=SUM(A1)"; m.Alias = "@x" }},
		{"empty ext attr value", func(m *Member) { m.ExtAttrs = map[string]string{"工号": ""} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := validMember(1)
			tt.mut(&m)
			if err := ValidateMembers([]Member{m}); err != nil {
				t.Fatalf("ValidateMembers: %v", err)
			}
		})
	}
}

func TestDepartmentValidation(t *testing.T) {
	t.Parallel()
	base := func() []Department {
		return []Department{
			{Name: "总公司", ID: 1, ParentID: 0},
			{Name: "研发", ID: 2, ParentID: 1, Order: 1},
			{Name: "后端", ID: 3, ParentID: 2},
		}
	}
	chain := func(n int) []Department { // departments 2..n+1, each the child of the previous
		var ds []Department
		for i := 0; i < n; i++ {
			ds = append(ds, Department{Name: "d" + strconv.Itoa(i), ID: i + 2, ParentID: i + 1})
		}
		return ds
	}
	tests := []struct {
		name  string
		depts func() []Department
		row   int
		col   string
		want  error
	}{
		{"name missing", func() []Department { d := base(); d[1].Name = ""; return d }, 2, CSVColDeptName, ErrRequired},
		{"name with colon", func() []Department { d := base(); d[1].Name = "研:发"; return d }, 2, CSVColDeptName, ErrInvalidValue},
		{"name with pipe", func() []Department { d := base(); d[1].Name = "a|b"; return d }, 2, CSVColDeptName, ErrInvalidValue},
		{"name with star", func() []Department { d := base(); d[1].Name = "a*"; return d }, 2, CSVColDeptName, ErrInvalidValue},
		{"name with quote", func() []Department { d := base(); d[1].Name = `a"b`; return d }, 2, CSVColDeptName, ErrUnsafeCSVValue},
		{"name with comma", func() []Department { d := base(); d[1].Name = "a,b"; return d }, 2, CSVColDeptName, ErrUnsafeCSVValue},
		{"name with line break", func() []Department { d := base(); d[1].Name = "a\nb"; return d }, 2, CSVColDeptName, ErrUnsafeCSVValue},
		{"name with tab", func() []Department { d := base(); d[1].Name = "a\tb"; return d }, 2, CSVColDeptName, ErrInvalidValue},
		{"name only spaces", func() []Department { d := base(); d[1].Name = " \u3000"; return d }, 2, CSVColDeptName, ErrRequired},
		{"name 33 characters", func() []Department { d := base(); d[1].Name = strings.Repeat("a", 33); return d }, 2, CSVColDeptName, ErrTooLong},
		{"name 65 bytes", func() []Department { d := base(); d[1].Name = strings.Repeat("研", 21) + "ab"; return d }, 2, CSVColDeptName, ErrTooLong},
		{"id missing", func() []Department { d := base(); d[2].ID = 0; return d }, 3, CSVColDeptID, ErrRequired},
		{"id negative", func() []Department { d := base(); d[2].ID = -3; return d }, 3, CSVColDeptID, ErrInvalidValue},
		{"id duplicate", func() []Department { d := base(); d[2].ID = 2; return d }, 3, CSVColDeptID, ErrDuplicate},
		{"order negative", func() []Department { d := base(); d[2].Order = -1; return d }, 3, CSVColDeptOrder, ErrInvalidValue},
		{"parent negative", func() []Department { d := base(); d[2].ParentID = -1; return d }, 3, CSVColDeptParentID, ErrInvalidValue},
		{"parent missing", func() []Department { d := base(); d[2].ParentID = 0; return d }, 3, CSVColDeptParentID, ErrRequired},
		{"parent unknown", func() []Department { d := base(); d[2].ParentID = 9; return d }, 3, CSVColDeptParentID, ErrNotATree},
		{"own parent", func() []Department { d := base(); d[2].ParentID = 3; return d }, 3, CSVColDeptParentID, ErrNotATree},
		{"root with a parent", func() []Department { d := base(); d[0].ParentID = 2; return d }, 1, CSVColDeptParentID, ErrNotATree},
		{"cycle", func() []Department {
			return []Department{
				{Name: "a", ID: 2, ParentID: 1},
				{Name: "b", ID: 3, ParentID: 5},
				{Name: "c", ID: 4, ParentID: 3},
				{Name: "d", ID: 5, ParentID: 4},
			}
		}, 2, CSVColDeptParentID, ErrNotATree},
		{"sibling names equal", func() []Department {
			d := base()
			return append(d, Department{Name: "研发", ID: 4, ParentID: 1})
		}, 4, CSVColDeptName, ErrDuplicate},
		{"15 levels below the root", func() []Department { return chain(15) }, 15, CSVColDeptParentID, ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			depts := tt.depts()
			checkCSVError(t, ValidateDepartments(depts), tt.row, tt.col, tt.want)
			var buf bytes.Buffer
			checkCSVError(t, WriteDepartmentsCSV(&buf, depts), tt.row, tt.col, tt.want)
			if buf.Len() != 0 {
				t.Errorf("WriteDepartmentsCSV wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

func TestValidDepartmentVariants(t *testing.T) {
	t.Parallel()
	chain := func(n int) []Department {
		var ds []Department
		for i := 0; i < n; i++ {
			ds = append(ds, Department{Name: "d", ID: i + 2, ParentID: i + 1}) // same names at different levels are fine
		}
		return ds
	}
	tests := []struct {
		name  string
		depts []Department
	}{
		{"14 levels below the root", chain(14)},
		{"14 levels including a root row", append([]Department{{Name: "root", ID: 1}}, chain(14)...)},
		{"children before parents", []Department{{Name: "c", ID: 3, ParentID: 2}, {Name: "p", ID: 2, ParentID: 1}}},
		{"sibling names differ only in case", []Department{{Name: "HR", ID: 2, ParentID: 1}, {Name: "hr", ID: 3, ParentID: 1}}},
		{"same name under different parents", []Department{{Name: "a", ID: 2, ParentID: 1}, {Name: "a", ID: 3, ParentID: 2}}},
		{"64 bytes", []Department{{Name: strings.Repeat("研", 21) + "a", ID: 2, ParentID: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := ValidateDepartments(tt.depts); err != nil {
				t.Fatalf("ValidateDepartments: %v", err)
			}
		})
	}
}

func TestDepartmentChildrenLimit(t *testing.T) {
	t.Parallel()
	depts := make([]Department, MaxDepartmentChildren+1)
	for i := range depts {
		depts[i] = Department{Name: "d" + strconv.Itoa(i), ID: i + 2, ParentID: 1}
	}
	if err := ValidateDepartments(depts[:MaxDepartmentChildren]); err != nil {
		t.Fatalf("%d children: %v", MaxDepartmentChildren, err)
	}
	checkCSVError(t, ValidateDepartments(depts), MaxDepartmentChildren+1, CSVColDeptParentID, ErrInvalidValue)
}

func TestCSVErrorMessage(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	m := validMember(1)
	m.Address = huge + ","
	err := ValidateMembers([]Member{m})
	checkCSVError(t, err, 1, CSVColAddress, ErrUnsafeCSVValue)
	msg := err.Error()
	if len(msg) > 400 {
		t.Errorf("message is %d bytes long; huge values must be truncated", len(msg))
	}
	if !strings.Contains(msg, "not known to honour quoting") {
		t.Errorf("message %q does not explain why the value is refused", msg)
	}
	m = validMember(1)
	m.ExtAttrs = map[string]string{huge: "1,"}
	err = ValidateMembers([]Member{m})
	checkCSVError(t, err, 1, huge, ErrUnsafeCSVValue)
	if msg := err.Error(); len(msg) > 400 {
		t.Errorf("message is %d bytes long; huge column names must be truncated", len(msg))
	}
	if got := (&CSVError{Column: "a", Err: ErrDuplicate}).Error(); got != `wecom: csv header, column "a": duplicate` {
		t.Errorf("header error message = %q", got)
	}
	var nilErr *CSVError
	if nilErr.Error() != "<nil>" || nilErr.Unwrap() != nil {
		t.Error("nil *CSVError must not panic")
	}
}

func TestMemberCSVWriterMatchesWriteMembersCSV(t *testing.T) {
	t.Parallel()
	var members []Member
	for i := range 300 {
		m := validMember(i)
		switch i % 3 {
		case 0:
			m.ExtAttrs = map[string]string{"工号": strconv.Itoa(i)}
		case 1:
			m.ExtAttrs = map[string]string{"级别": "P" + strconv.Itoa(i%10), "Badge": "b"}
			m.Gender, m.Disabled = GenderFemale, true
		}
		members = append(members, m)
	}
	var want bytes.Buffer
	if err := WriteMembersCSV(&want, members); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	w, err := NewMemberCSVWriter(&got, []string{"Badge", "工号", "级别"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("streaming output differs from WriteMembersCSV")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("disk full")
}

func TestMemberCSVWriterSemantics(t *testing.T) {
	t.Parallel()

	t.Run("header only on Close with no rows", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		w, err := NewMemberCSVWriter(&buf, []string{"工号"})
		if err != nil {
			t.Fatal(err)
		}
		if buf.Len() != 0 {
			t.Error("header must be buffered, not written, before Flush")
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(memberHeaderFields, ",") + ",工号\n"; buf.String() != want {
			t.Errorf("got %q, want %q", buf.String(), want)
		}
		if err := w.Write(validMember(1)); !errors.Is(err, ErrWriterClosed) {
			t.Errorf("Write after Close = %v, want ErrWriterClosed", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})

	t.Run("validation errors are sticky and count rows from 1", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		w, _ := NewMemberCSVWriter(&buf, nil)
		if err := w.Write(validMember(1)); err != nil {
			t.Fatal(err)
		}
		err := w.Write(validMember(1)) // duplicate userid
		checkCSVError(t, err, 2, CSVColUserID, ErrDuplicate)
		if err2 := w.Write(validMember(3)); err2 != err {
			t.Errorf("Write after error = %v, want the sticky %v", err2, err)
		}
		if err2 := w.Flush(); err2 != err {
			t.Errorf("Flush after error = %v, want the sticky %v", err2, err)
		}
		if err2 := w.Close(); err2 != err {
			t.Errorf("Close after error = %v, want the sticky %v", err2, err)
		}
	})

	t.Run("undeclared ext attr names the column", func(t *testing.T) {
		t.Parallel()
		w, _ := NewMemberCSVWriter(io.Discard, []string{"工号"})
		m := validMember(1)
		m.ExtAttrs = map[string]string{"工号": "1", "级别": "P7"}
		checkCSVError(t, w.Write(m), 1, "级别", ErrUnknownColumn)
	})

	t.Run("bad declared ext attrs", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			ext  []string
			col  string
			want error
		}{
			{[]string{"a", "a"}, "a", ErrDuplicate},
			{[]string{""}, "", ErrRequired},
			{[]string{"帐号"}, "帐号", ErrInvalidValue},
			{[]string{"x\ny"}, "x\ny", ErrUnsafeCSVValue},
		} {
			_, err := NewMemberCSVWriter(io.Discard, tc.ext)
			var ce *CSVError
			if !errors.As(err, &ce) || ce.Row != 0 || ce.Column != tc.col || !errors.Is(err, tc.want) {
				t.Errorf("NewMemberCSVWriter(%q) = %v, want row 0 column %q %v", tc.ext, err, tc.col, tc.want)
			}
		}
	})

	t.Run("I/O errors are sticky", func(t *testing.T) {
		t.Parallel()
		fw := &failWriter{}
		w, err := NewMemberCSVWriter(fw, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(validMember(1)); err != nil {
			t.Fatal(err) // still buffered
		}
		ferr := w.Flush()
		if ferr == nil {
			t.Fatal("Flush to a failing writer succeeded")
		}
		if err := w.Write(validMember(2)); err != ferr {
			t.Errorf("Write after I/O error = %v, want %v", err, ferr)
		}
		if err := w.Close(); err != ferr {
			t.Errorf("Close after I/O error = %v, want %v", err, ferr)
		}
		if fw.n != 1 {
			t.Errorf("underlying writer called %d times after the error, want 1", fw.n)
		}
	})

	t.Run("misuse does not panic", func(t *testing.T) {
		t.Parallel()
		if _, err := NewMemberCSVWriter(nil, nil); err == nil {
			t.Error("nil io.Writer accepted")
		}
		var zero MemberCSVWriter
		var nilw *MemberCSVWriter
		for _, w := range []*MemberCSVWriter{&zero, nilw} {
			if w.Write(validMember(1)) == nil || w.Flush() == nil || w.Close() == nil {
				t.Error("unconstructed writer did not report an error")
			}
		}
		if WriteMembersCSV(nil, nil) == nil || WriteDepartmentsCSV(nil, nil) == nil {
			t.Error("nil io.Writer accepted")
		}
	})
}

func TestWriteMembersCSVIOError(t *testing.T) {
	t.Parallel()
	if err := WriteMembersCSV(&failWriter{}, []Member{validMember(1)}); err == nil || errors.As(err, new(*CSVError)) {
		t.Errorf("got %v, want the I/O error", err)
	}
	if err := WriteDepartmentsCSV(&failWriter{}, []Department{{Name: "a", ID: 2, ParentID: 1}}); err == nil {
		t.Error("I/O error not reported")
	}
}

// TestMembersCSVRoundTrip parses the output with encoding/csv and compares
// every field, and checks that the bytes equal what a bare encoding/csv
// writer produces for the same fields (no quoting was needed).
func TestMembersCSVRoundTrip(t *testing.T) {
	t.Parallel()
	members := []Member{validMember(1), validMember(2)}
	members[0].ExtAttrs = map[string]string{"工号": "A-1", "备注": "  leading spaces are kept"}
	members[1].Gender, members[1].Disabled, members[1].Order = GenderFemale, true, nil
	members = append(members, Member{UserID: "x", Name: "=cmd", Mobile: "+1", Departments: []int{4294967295}})

	var buf bytes.Buffer
	if err := WriteMembersCSV(&buf, members); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	if bytes.HasPrefix(out, []byte("\xef\xbb\xbf")) || bytes.Contains(out, []byte("\r")) {
		t.Error("output has a BOM or a CR")
	}
	ext := []string{"备注", "工号"}
	slices.Sort(ext)
	records, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv cannot parse the output: %v", err)
	}
	want := [][]string{append(slices.Clone(memberHeaderFields), ext...)}
	for _, m := range members {
		want = append(want, memberRecord(m, ext))
	}
	if !reflect.DeepEqual(records, want) {
		t.Errorf("parsed records differ\ngot:  %q\nwant: %q", records, want)
	}

}

// TestMembersCSVMatchesEncodingCSV: for values encoding/csv would not quote
// either, the output is byte for byte what a bare encoding/csv writer makes.
func TestMembersCSVMatchesEncodingCSV(t *testing.T) {
	t.Parallel()
	var members []Member
	for i := range 50 {
		m := validMember(i)
		m.ExtAttrs = map[string]string{"工号": strconv.Itoa(i)}
		m.Gender = Gender(i % 3)
		members = append(members, m)
	}
	var ours bytes.Buffer
	if err := WriteMembersCSV(&ours, members); err != nil {
		t.Fatal(err)
	}
	var std bytes.Buffer
	cw := csv.NewWriter(&std)
	_ = cw.Write(append(slices.Clone(memberHeaderFields), "工号"))
	for _, m := range members {
		_ = cw.Write(memberRecord(m, []string{"工号"}))
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		t.Fatal(err)
	}
	if ours.String() != std.String() {
		t.Errorf("differs from encoding/csv\nours: %q\nstd:  %q", ours.String(), std.String())
	}
}

func TestDepartmentsCSVRoundTrip(t *testing.T) {
	t.Parallel()
	depts := []Department{{Name: "总公司", ID: 1}, {Name: "研发 R&D", ID: 2, ParentID: 1, Order: 7}, {Name: "Ops", ID: 3, ParentID: 2}}
	var buf bytes.Buffer
	if err := WriteDepartmentsCSV(&buf, depts); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"部门名称", "部门ID", "父部门ID", "排序"}, {"总公司", "1", "0", "0"}, {"研发 R&D", "2", "1", "7"}, {"Ops", "3", "2", "0"}}
	if !reflect.DeepEqual(records, want) {
		t.Errorf("got %q, want %q", records, want)
	}
}

func TestGenderJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Gender
		wantErr bool
	}{
		{`"0"`, GenderUnset, false},
		{`"1"`, GenderMale, false},
		{`"2"`, GenderFemale, false},
		{`0`, GenderUnset, false},
		{`1`, GenderMale, false},
		{` 2 `, GenderFemale, false},
		{`""`, GenderUnset, false},
		{`"3"`, 0, true},
		{`3`, 0, true},
		{`-1`, 0, true},
		{`1.0`, 0, true},
		{`"male"`, 0, true},
		{`true`, 0, true},
		{`"1`, 0, true},
		{``, 0, true},
		{`{}`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			g := Gender(9)
			err := g.UnmarshalJSON([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Errorf("UnmarshalJSON(%s) = %v, want an error", tt.in, g)
				}
				return
			}
			if err != nil || g != tt.want {
				t.Errorf("UnmarshalJSON(%s) = %v, %v; want %v", tt.in, g, err, tt.want)
			}
		})
	}

	t.Run("in a struct, null leaves the value", func(t *testing.T) {
		t.Parallel()
		var v struct{ Gender Gender }
		v.Gender = GenderFemale
		if err := json.Unmarshal([]byte(`{"Gender":null}`), &v); err != nil || v.Gender != GenderFemale {
			t.Errorf("got %v, %v", v.Gender, err)
		}
		if err := json.Unmarshal([]byte(`{"Gender":"1"}`), &v); err != nil || v.Gender != GenderMale {
			t.Errorf("got %v, %v", v.Gender, err)
		}
	})

	t.Run("marshal", func(t *testing.T) {
		t.Parallel()
		for g, want := range map[Gender]string{GenderUnset: `"0"`, GenderMale: `"1"`, GenderFemale: `"2"`} {
			b, err := json.Marshal(g)
			if err != nil || string(b) != want {
				t.Errorf("Marshal(%v) = %s, %v; want %s", g, b, err, want)
			}
		}
		if _, err := json.Marshal(Gender(3)); err == nil {
			t.Error("Marshal(Gender(3)) succeeded")
		}
	})

	t.Run("nil receiver", func(t *testing.T) {
		t.Parallel()
		var g *Gender
		if g.UnmarshalJSON([]byte(`"1"`)) == nil {
			t.Error("nil *Gender accepted")
		}
	})

	t.Run("String", func(t *testing.T) {
		t.Parallel()
		for g, want := range map[Gender]string{GenderUnset: "unset", GenderMale: "male", GenderFemale: "female", 7: "Gender(7)"} {
			if got := g.String(); got != want {
				t.Errorf("%d.String() = %q, want %q", int(g), got, want)
			}
		}
	})
}

func FuzzWriteMembersCSV(f *testing.F) {
	f.Add("张三", "zhangsan", "+86-13800000000", "zs@example.com", "工程师", "Zs", "北京", "010-1", "工号", "007", 2, 1, true, true)
	f.Add("a,b", "A", "", "", "", "", "", "", "", "", 1, 0, false, false)
	f.Add("名", "u.1@x", "", "u@x.cn", "\"", "", "", "", "手机号", "v", 0, 2, false, true)
	f.Add("\xff", "-x", "1", "", "", "", "a\nb", "", "k", "\r", 21, 3, true, false)
	f.Add(" x ", "9", "+", "a@b.c", "=1+1", "@", "", "---", " ", "", 4294967295, 2, false, true)
	f.Fuzz(func(t *testing.T, name, userID, mobile, email, position, alias, address, telephone, extName, extValue string,
		dept, gender int, leader, withExt bool) {
		m := Member{
			UserID: userID, Name: name, Mobile: mobile, Email: email,
			Departments: []int{dept}, Position: position, Gender: Gender(gender),
			IsLeaderInDept: []bool{leader}, Order: []int{dept % 7},
			Alias: alias, Address: address, Telephone: telephone, Disabled: leader,
		}
		var ext []string
		if withExt {
			m.ExtAttrs = map[string]string{extName: extValue}
			ext = []string{extName}
		}
		var buf bytes.Buffer
		err := WriteMembersCSV(&buf, []Member{m})
		if err != nil {
			var ce *CSVError
			if !errors.As(err, &ce) || ce.Row != 1 {
				t.Fatalf("error %v is not a *CSVError for row 1", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes despite %v", buf.Len(), err)
			}
			_ = err.Error()
			return
		}
		records, perr := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
		if perr != nil {
			t.Fatalf("output %q does not parse: %v", buf.Bytes(), perr)
		}
		want := [][]string{append(slices.Clone(memberHeaderFields), ext...), memberRecord(m, ext)}
		if !reflect.DeepEqual(records, want) {
			t.Fatalf("parsed %q, want %q", records, want)
		}
	})
}

// FuzzCheckText compares the fast value scanner (eight bytes at a time, a
// CJK fast path) with a plain reference implementation.
func FuzzCheckText(f *testing.F) {
	for _, s := range []string{"", "abcdefgh", "abcdefg,", "张三李四王五", "\xe0\x80\x80", "\xed\xa0\x80", "\xef\xbf\xbd",
		"\xe4\xb8", "abcdefgh\xe4\xb8\xad", "12345678\n", "\xf0\x9f\x98\x80", "ab\"cdefghijk", strings.Repeat("名", 33)} {
		f.Add(s, 32)
	}
	f.Fuzz(func(t *testing.T, s string, maxRunes int) {
		var want error
		switch {
		case strings.ContainsAny(s, ",\"\r\n"):
			want = ErrUnsafeCSVValue
		case !utf8.ValidString(s):
			want = ErrInvalidValue
		case maxRunes > 0 && utf8.RuneCountInString(s) > maxRunes:
			want = ErrTooLong
		}
		got := checkText(s, maxRunes)
		if want == ErrUnsafeCSVValue && !utf8.ValidString(s) && errors.Is(got, ErrInvalidValue) {
			return // both problems: whichever comes first in s is reported
		}
		if (got == nil) != (want == nil) || want != nil && !errors.Is(got, want) {
			t.Fatalf("checkText(%q, %d) = %v, want %v", s, maxRunes, got, want)
		}
	})
}

func TestAppendInt(t *testing.T) {
	t.Parallel()
	for _, v := range []int{-1001, -100, -10, -9, -1, 0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 4294967295, math.MaxInt, math.MinInt} {
		if got, want := string(appendInt([]byte("x"), v)), "x"+strconv.Itoa(v); got != want {
			t.Errorf("appendInt(%d) = %q, want %q", v, got, want)
		}
	}
}

func TestUserIDSetHashCollision(t *testing.T) {
	t.Parallel()
	u := newUserIDSet(0)
	if err := u.add("alice", 1); err != nil {
		t.Fatal(err)
	}
	// Pretend "alice" and "bob" hash alike: move alice's entry to bob's hash.
	bob := maphash.Bytes(u.seed, []byte("bob"))
	for h, i := range u.byHash {
		delete(u.byHash, h)
		u.byHash[bob] = i
	}
	if err := u.add("bob", 2); err != nil {
		t.Fatalf("a hash collision was taken for a duplicate: %v", err)
	}
	checkCSVError(t, u.add("BOB", 3), 3, CSVColUserID, ErrDuplicate)
	if err := u.add("Bob", 4); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("duplicate of row 2 reported as %v", err)
	}
}

func TestHasDuplicateHash(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 255, 256, 257, 1000, 5000, 70000} {
		h := make([]uint64, n)
		for i := range h {
			h[i] = r.Uint64()
		}
		if hasDuplicateHash(slices.Clone(h)) {
			t.Errorf("n=%d: duplicate reported among distinct values", n)
		}
		if n < 2 {
			continue
		}
		for _, pair := range [][2]int{{0, n - 1}, {n / 2, n/2 - 1}, {r.IntN(n), r.IntN(n)}} {
			if pair[0] == pair[1] {
				continue
			}
			d := slices.Clone(h)
			d[pair[0]] = d[pair[1]]
			if !hasDuplicateHash(d) {
				t.Errorf("n=%d: duplicate at %v not found", n, pair)
			}
		}
		// Values that share their top bits land in one bucket.
		d := make([]uint64, n)
		for i := range d {
			d[i] = uint64(i)
		}
		if hasDuplicateHash(d) {
			t.Errorf("n=%d: duplicate reported in one crowded bucket", n)
		}
		d[n-1] = 0
		if !hasDuplicateHash(d) {
			t.Errorf("n=%d: duplicate in one crowded bucket not found", n)
		}
	}
}

// TestMemberValidationOrder: the error reported is the one a row-by-row
// check meets first, whether it is a duplicate userid or a bad value.
func TestMemberValidationOrder(t *testing.T) {
	t.Parallel()
	members := func() []Member {
		var ms []Member
		for i := range 400 {
			ms = append(ms, validMember(i))
		}
		return ms
	}
	ms := members()
	ms[300].Mobile = "x"
	ms[350].UserID = ms[10].UserID
	checkCSVError(t, ValidateMembers(ms), 301, CSVColMobile, ErrInvalidValue)

	ms = members()
	ms[300].UserID = strings.ToUpper(ms[10].UserID)
	ms[350].Mobile = "x"
	checkCSVError(t, ValidateMembers(ms), 301, CSVColUserID, ErrDuplicate)

	ms = members()
	ms[300].UserID = ms[10].UserID
	ms[300].Mobile = "x" // a bad value in the duplicating row comes first
	checkCSVError(t, ValidateMembers(ms), 301, CSVColMobile, ErrInvalidValue)
}
