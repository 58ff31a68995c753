package wecomtest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MemberCSVHeader is the header row of WeCom's member import template
// (batch_user_sample.csv), used by syncuser and replaceuser.
const MemberCSVHeader = "姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用)"

// DepartmentCSVHeader is the header row of WeCom's department import
// template (batch_party_sample.csv), used by replaceparty.
const DepartmentCSVHeader = "部门名称,部门ID,父部门ID,排序"

// Member file columns.
const (
	mcName = iota
	mcUserID
	mcMobile
	mcEmail
	mcDept
	mcPosition
	mcGender
	mcLeader
	mcOrder
	mcAlias
	mcAddress
	mcTelephone
	mcDisable
	mcCount
)

// memberHeaders maps header text to column. Both 帐号 (template) and 账号
// (newer docs) name the userid column.
var memberHeaders = map[string]int{
	"姓名": mcName, "帐号": mcUserID, "账号": mcUserID, "手机号": mcMobile, "邮箱": mcEmail,
	"所在部门": mcDept, "职位": mcPosition, "性别": mcGender, "是否部门内领导": mcLeader,
	"排序": mcOrder, "别名": mcAlias, "地址": mcAddress, "座机": mcTelephone, "禁用": mcDisable,
}

// fileError is a file-level failure of an import job.
type fileError struct {
	code int
	msg  string
}

// Error implements error.
func (e *fileError) Error() string { return fmt.Sprintf("errcode %d: %s", e.code, e.msg) }

func fileErr(code int, format string, args ...any) *fileError {
	return &fileError{code: code, msg: fmt.Sprintf(format, args...)}
}

type memberFile struct {
	has     [mcCount]bool
	extName []string // registered extension attributes present as columns
	rows    []memberRecord
}

type memberRecord struct {
	line  int
	cells [mcCount]string
	ext   []string // parallel to memberFile.extName
}

// newCSVReader strips a UTF-8 BOM and returns a strict RFC-4180 reader that
// accepts "\n" and "\r\n" and rows of varying length.
func newCSVReader(data []byte) *csv.Reader {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = false
	r.ReuseRecord = true
	return r
}

// openCSV checks that data is UTF-8 and returns a reader positioned after
// the header row (blank lines before it skipped) and the header, which the
// reader's next Read overwrites. An empty or unreadable file is 40092.
func openCSV(data []byte) (*csv.Reader, []string, *fileError) {
	if !utf8.Valid(data) {
		return nil, nil, fileErr(40092, "file is not UTF-8")
	}
	r := newCSVReader(data)
	header, err := r.Read()
	for err == nil && blankRecord(header) {
		header, err = r.Read()
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fileErr(40092, "empty file")
		}
		return nil, nil, fileErr(40092, "invalid csv: %v", err)
	}
	return r, header, nil
}

func blankRecord(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// parseMemberCSV reads a member import file. File-level failures: not UTF-8,
// unparsable CSV, no header, a header without 姓名/帐号/所在部门, or no data row
// → 40092; a userid twice in the file (case-insensitive) → 302003.
func parseMemberCSV(data []byte, extAttrs []string) (*memberFile, *fileError) {
	r, header, ferr := openCSV(data)
	if ferr != nil {
		return nil, ferr
	}
	f := &memberFile{}
	colIdx := [mcCount]int{}
	for i := range colIdx {
		colIdx[i] = -1
	}
	var extIdx []int
	for i, h := range header {
		h = strings.TrimSpace(h)
		if c, ok := memberHeaders[h]; ok {
			if colIdx[c] < 0 {
				colIdx[c] = i
				f.has[c] = true
			}
			continue
		}
		for _, a := range extAttrs {
			if a == h {
				f.extName = append(f.extName, h)
				extIdx = append(extIdx, i)
				break
			}
		}
	}
	if !f.has[mcName] || !f.has[mcUserID] || !f.has[mcDept] {
		return nil, fileErr(40092, "header lacks 姓名, 帐号 or 所在部门")
	}
	lines := bytes.Count(data, []byte{'\n'}) + 1
	f.rows = make([]memberRecord, 0, lines)
	seen := make(map[string]int, lines)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fileErr(40092, "invalid csv: %v", err)
		}
		if blankRecord(rec) {
			continue
		}
		line, _ := r.FieldPos(0)
		mr := memberRecord{line: line}
		for c, i := range colIdx {
			if i >= 0 && i < len(rec) {
				mr.cells[c] = strings.TrimSpace(rec[i])
			}
		}
		if len(extIdx) > 0 {
			mr.ext = make([]string, len(extIdx))
			for j, i := range extIdx {
				if i < len(rec) {
					mr.ext[j] = strings.TrimSpace(rec[i])
				}
			}
		}
		if id := mr.cells[mcUserID]; id != "" {
			k := userKey(id)
			if prev, ok := seen[k]; ok {
				return nil, fileErr(302003, "userid %s on lines %d and %d", id, prev, line)
			}
			seen[k] = line
		}
		f.rows = append(f.rows, mr)
	}
	if len(f.rows) == 0 {
		return nil, fileErr(40092, "no data rows")
	}
	return f, nil
}

type deptRecord struct {
	line                   int
	name, id, parent, ordr string
}

// parseDepartmentCSV reads a department import file: 40092 for an empty or
// unparsable file or a header without 部门名称/部门ID/父部门ID; 排序 is optional.
func parseDepartmentCSV(data []byte) ([]deptRecord, *fileError) {
	r, header, ferr := openCSV(data)
	if ferr != nil {
		return nil, ferr
	}
	idx := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := idx[h]; !dup {
			idx[h] = i
		}
	}
	iName, ok1 := idx["部门名称"]
	iID, ok2 := idx["部门ID"]
	iParent, ok3 := idx["父部门ID"]
	iOrder, ok4 := idx["排序"]
	if !ok1 || !ok2 || !ok3 {
		return nil, fileErr(40092, "header lacks 部门名称, 部门ID or 父部门ID")
	}
	cell := func(rec []string, i int, ok bool) string {
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	var rows []deptRecord
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fileErr(40092, "invalid csv: %v", err)
		}
		if blankRecord(rec) {
			continue
		}
		line, _ := r.FieldPos(0)
		rows = append(rows, deptRecord{line: line, name: cell(rec, iName, true), id: cell(rec, iID, true),
			parent: cell(rec, iParent, true), ordr: cell(rec, iOrder, ok4)})
	}
	if len(rows) == 0 {
		return nil, fileErr(40092, "no data rows")
	}
	return rows, nil
}

// memberRow is a validated member record.
type memberRow struct {
	rec     *memberRecord
	key     string
	depts   []int
	leader  []int
	order   []int
	gender  string // "" when the cell is empty
	disable int    // -1 when the cell is empty
	code    int
	msg     string
}

// validateMemberRow checks one record's formats; uniqueness and the
// mobile/email requirement are checked when the row is applied. Per-row
// codes: 60112 name, 40003 userid, 60127 no department, 60123 bad department
// id, 60110 more than 20 departments, 60103 mobile, 60105 email, 60132
// 是否部门内领导 not one 0/1 per department, 40058 排序 not one integer per
// department, 40058 性别 not 男/女/1/2/0, 40058 禁用 not 0/1, 301013 座机.
func validateMemberRow(rec *memberRecord) memberRow {
	row := memberRow{rec: rec, key: userKey(rec.cells[mcUserID]), disable: -1}
	fail := func(code int, msg string) memberRow {
		row.code, row.msg = code, msg
		return row
	}
	c := &rec.cells
	if !validName(c[mcName]) {
		return fail(60112, "invalid name")
	}
	if !validUserID(c[mcUserID]) {
		return fail(40003, "invalid userid")
	}
	if c[mcDept] == "" {
		return fail(60127, "department missing")
	}
	var ok bool
	if row.depts, ok = intList(c[mcDept]); !ok {
		return fail(60123, "invalid department id")
	}
	for _, id := range row.depts {
		if id <= 0 || id > MaxDepartmentID {
			return fail(60123, "invalid department id")
		}
	}
	if len(row.depts) > 20 {
		return fail(60110, "more than 20 departments")
	}
	if c[mcMobile] != "" && !validMobile(c[mcMobile]) {
		return fail(60103, "invalid mobile")
	}
	if c[mcEmail] != "" && !validEmail(c[mcEmail]) {
		return fail(60105, "invalid email")
	}
	if c[mcLeader] != "" {
		l, ok := intList(c[mcLeader])
		if !ok || len(l) != len(row.depts) {
			return fail(60132, "is_leader_in_dept count does not match department count")
		}
		for _, v := range l {
			if v != 0 && v != 1 {
				return fail(60132, "is_leader_in_dept values must be 0 or 1")
			}
		}
		row.leader = l
	}
	if c[mcOrder] != "" {
		o, ok := intList(c[mcOrder])
		if !ok || len(o) != len(row.depts) {
			return fail(40058, "order count does not match department count")
		}
		row.order = o
	}
	switch c[mcGender] {
	case "":
	case "男", "1":
		row.gender = "1"
	case "女", "2":
		row.gender = "2"
	case "0":
		row.gender = "0"
	default:
		return fail(40058, "invalid gender")
	}
	switch c[mcDisable] {
	case "":
	case "0":
		row.disable = 0
	case "1":
		row.disable = 1
	default:
		return fail(40058, "invalid 禁用 value")
	}
	if t := c[mcTelephone]; t != "" && !validTelephone(t) {
		return fail(301013, "invalid telephone")
	}
	if utf8.RuneCountInString(c[mcPosition]) > 128 || utf8.RuneCountInString(c[mcAddress]) > 128 {
		return fail(40058, "position or address too long")
	}
	if utf8.RuneCountInString(c[mcAlias]) > 32 {
		return fail(40058, "alias too long")
	}
	row.code, row.msg = 0, "ok"
	return row
}

// MaxDepartmentID is the largest department id the server accepts: WeCom's
// ids are 32-bit. Larger ids in an import file are invalid (60123 in a
// member file, 302004 in a department file).
const MaxDepartmentID = 1<<32 - 1

// intList parses "1;2;3" (empty items are skipped).
func intList(s string) ([]int, bool) {
	var out []int
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, len(out) > 0
}

// validUserID: 1–64 bytes of [0-9A-Za-z_-@.], starting with a letter or digit.
func validUserID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '_' && c != '-' && c != '@' && c != '.' {
			return false
		}
	}
	return true
}

// validName: 1–64 characters, no control characters.
func validName(s string) bool {
	n := utf8.RuneCountInString(s)
	if n == 0 || n > 64 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// validMobile: ≤ 32 characters of digits, '+' and '-', at least one digit.
func validMobile(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	digit := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			digit = true
		case c == '+' || c == '-':
		default:
			return false
		}
	}
	return digit
}

// validTelephone: 1–32 characters of digits and '-'.
func validTelephone(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validEmail: ≤ 64 bytes, one '@' with text on both sides, a dot in the
// domain, no spaces, quotes or angle brackets.
func validEmail(s string) bool {
	if len(s) < 3 || len(s) > 64 || strings.ContainsAny(s, " \t\r\n\"<>,;()[]\\") {
		return false
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || at == len(s)-1 {
		return false
	}
	dom := s[at+1:]
	return strings.Contains(dom, ".") && !strings.HasPrefix(dom, ".") && !strings.HasSuffix(dom, ".")
}

// validDeptName: not empty, ≤ 32 characters and ≤ 64 bytes, none of
// : * ? " < > | → 60125 otherwise.
func validDeptName(s string) int {
	if s == "" || len(s) > 64 || utf8.RuneCountInString(s) > 32 || strings.ContainsAny(s, ":*?\"<>|") {
		return 60125
	}
	for _, r := range s {
		if r < 0x20 {
			return 60125
		}
	}
	return 0
}
