package wecom

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file builds the CSV files that WeCom's batch import jobs read:
// the member template of batch/syncuser and batch/replaceuser
// (https://developer.work.weixin.qq.com/document/path/91130) and the
// department template of batch/replaceparty
// (https://developer.work.weixin.qq.com/document/path/91132).
//
// Every value is validated before anything is written. Values are never
// quoted: WeCom's parser is not known to honour RFC 4180 quoting, so a value
// that would need quotes (one holding a comma, a double quote or a line
// break) is refused instead.

// Column headers of the member template, in template order, exactly as
// WeCom's sample file spells them. A [CSVError] about one of these columns
// carries the header text in its Column field.
const (
	CSVColName           = "姓名"
	CSVColUserID         = "帐号"
	CSVColMobile         = "手机号"
	CSVColEmail          = "邮箱"
	CSVColDepartments    = "所在部门"
	CSVColPosition       = "职位"
	CSVColGender         = "性别"
	CSVColIsLeaderInDept = "是否部门内领导"
	CSVColOrder          = "排序"
	CSVColAlias          = "别名"
	CSVColAddress        = "地址"
	CSVColTelephone      = "座机"
	CSVColDisabled       = "禁用"
	CSVColDisabledNote   = "禁用项说明：(0-启用;1-禁用)" // header cell only; data rows leave it empty
)

// Column headers of the department template, in template order.
const (
	CSVColDeptName     = "部门名称"
	CSVColDeptID       = "部门ID"
	CSVColDeptParentID = "父部门ID"
	CSVColDeptOrder    = "排序"
)

const (
	memberCSVHeader = CSVColName + "," + CSVColUserID + "," + CSVColMobile + "," + CSVColEmail + "," +
		CSVColDepartments + "," + CSVColPosition + "," + CSVColGender + "," + CSVColIsLeaderInDept + "," +
		CSVColOrder + "," + CSVColAlias + "," + CSVColAddress + "," + CSVColTelephone + "," +
		CSVColDisabled + "," + CSVColDisabledNote
	deptCSVHeader = CSVColDeptName + "," + CSVColDeptID + "," + CSVColDeptParentID + "," + CSVColDeptOrder
)

// Limits enforced by the validators (WeCom's documented limits).
const (
	// MaxMemberDepartments is the largest number of departments a member
	// may belong to (errcode 60110).
	MaxMemberDepartments = 20
	// MaxDepartmentDepth is the deepest department tree WeCom accepts, the
	// root (部门ID 1) being level 1 (errcode 81002).
	MaxDepartmentDepth = 15
	// MaxDepartmentChildren is the largest number of direct children a
	// department may have (errcode 81001).
	MaxDepartmentChildren = 30000
)

// Sentinel errors wrapped by [CSVError].Err. Match them with errors.Is; the
// wrapping error says precisely what is wrong. Their text is short because
// they are seen inside a CSVError, whose message starts "wecom: csv row N,
// column X: ".
var (
	// ErrRequired: a required value is empty (姓名, 帐号, 所在部门, both
	// 手机号 and 邮箱, 部门名称, 部门ID, 父部门ID).
	ErrRequired = errors.New("required value missing")
	// ErrInvalidValue: a value WeCom would reject (bad userid, mobile,
	// email, department id, gender, list length, invalid UTF-8, …).
	ErrInvalidValue = errors.New("invalid value")
	// ErrTooLong: a value longer than WeCom allows. Errors that wrap it
	// also wrap ErrInvalidValue.
	ErrTooLong = errors.New("too long")
	// ErrUnsafeCSVValue: a value contains ',', '"', '\r' or '\n'. Such a
	// value would need CSV quoting, and WeCom's CSV parser is not known to
	// honour quoting, so it is refused rather than quoted.
	ErrUnsafeCSVValue = errors.New("value unsafe in WeCom CSV")
	// ErrDuplicate: a userid (compared case-insensitively), department id,
	// department in a member's list, or sibling department name appears
	// twice.
	ErrDuplicate = errors.New("duplicate")
	// ErrNotATree: the departments do not form a single tree rooted at
	// department 1 (unknown parent, a cycle, a root with a parent).
	ErrNotATree = errors.New("departments do not form a single tree")
	// ErrUnknownColumn: a member given to a [MemberCSVWriter] has an
	// extension attribute that was not declared when the writer was made.
	ErrUnknownColumn = errors.New("undeclared extension attribute column")
	// ErrWriterClosed: Write was called on a closed [MemberCSVWriter].
	ErrWriterClosed = errors.New("wecom: csv writer is closed")
)

var errNilWriter = errors.New("wecom: csv: nil io.Writer")

// CSVError reports an invalid value in a member or department CSV, before
// anything is written. Row is the 1-based number of the data row: the
// member's or department's index in the input slice plus one, or for a
// [MemberCSVWriter] the number of the Write call; 0 means the header (a bad
// extension attribute name given to [NewMemberCSVWriter]). Column is the template header text of the column
// (one of the CSVCol* constants, e.g. "手机号") or the extension attribute
// name. Err wraps one of the sentinel errors (ErrRequired, ErrInvalidValue,
// ErrTooLong, ErrUnsafeCSVValue, ErrDuplicate, ErrNotATree,
// ErrUnknownColumn).
type CSVError struct {
	Row    int
	Column string
	Err    error
}

// Error names the row and the column (quoted; long names are shortened).
func (e *CSVError) Error() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString("wecom: csv ")
	if e.Row > 0 {
		b.WriteString("row ")
		b.WriteString(strconv.Itoa(e.Row))
	} else {
		b.WriteString("header")
	}
	b.WriteString(", column ")
	b.WriteString(strconv.Quote(csvClip(e.Column)))
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Err, so errors.Is(err, ErrInvalidValue) and the like work.
func (e *CSVError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// Gender is a member's gender as WeCom encodes it: "0" unset, "1" male,
// "2" female. In the import CSV it is written 男 / 女 / empty.
type Gender int

// Gender values.
const (
	GenderUnset  Gender = 0
	GenderMale   Gender = 1
	GenderFemale Gender = 2
)

// String returns "unset", "male" or "female" (or "Gender(n)" for any other
// value).
func (g Gender) String() string {
	switch g {
	case GenderUnset:
		return "unset"
	case GenderMale:
		return "male"
	case GenderFemale:
		return "female"
	}
	return "Gender(" + strconv.Itoa(int(g)) + ")"
}

// MarshalJSON writes WeCom's string form: "0", "1" or "2". Any other value
// is an error.
func (g Gender) MarshalJSON() ([]byte, error) {
	switch g {
	case GenderUnset, GenderMale, GenderFemale:
		return []byte{'"', byte('0' + g), '"'}, nil
	}
	return nil, fmt.Errorf("wecom: invalid gender %d", int(g))
}

// UnmarshalJSON accepts WeCom's string form ("0", "1", "2"; export files
// carry gender as a string), the same values as JSON numbers, and the empty
// string (GenderUnset). JSON null leaves g unchanged. Anything else is an
// error.
func (g *Gender) UnmarshalJSON(data []byte) error {
	if g == nil {
		return errors.New("wecom: Gender.UnmarshalJSON on nil pointer")
	}
	data = bytes.TrimSpace(data)
	s := string(data)
	if s == "null" {
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("wecom: invalid gender %s: %w", strconv.Quote(csvClip(string(data))), err)
		}
		if s == "" {
			*g = GenderUnset
			return nil
		}
	}
	switch s {
	case "0":
		*g = GenderUnset
	case "1":
		*g = GenderMale
	case "2":
		*g = GenderFemale
	default:
		return fmt.Errorf("wecom: invalid gender %s: want \"0\", \"1\" or \"2\"", strconv.Quote(csvClip(string(data))))
	}
	return nil
}

// Member is one row of the member import template (batch/syncuser,
// batch/replaceuser: https://developer.work.weixin.qq.com/document/path/91130).
//
// The writers check, per field (lengths in characters unless stated):
//   - UserID (帐号): required, 1-64 bytes of [0-9A-Za-z_-@.], starting with
//     a letter or digit; unique in the file, compared case-insensitively.
//   - Name (姓名): required (not only white space), at most 64, no
//     control characters.
//   - Mobile (手机号): at most 32 of digits, '+' and '-', with a digit.
//   - Email (邮箱): at most 64, local@domain with one '@', a domain
//     containing an inner '.', no spaces. At least one of Mobile and Email.
//   - Departments (所在部门): 1 to 20 distinct positive ids.
//   - IsLeaderInDept, Order: empty, or one entry per department, in the
//     order of Departments; each Order in [0, 2^32).
//   - Position at most 128, Alias at most 32, Address at most 128;
//     Telephone (座机) at most 32 of digits and '-'.
//   - Gender: GenderUnset, GenderMale or GenderFemale.
//   - Disabled (禁用) is always written, 0 or 1: a sync import sets the
//     account state of every member in the file, so a member disabled in
//     WeCom and listed with Disabled false is enabled again. Leave such
//     members out of a sync, or set Disabled from the directory
//     ([Client.ExportedUsers], Status 2).
//   - ExtAttrs: extra columns whose header is the attribute name; a name
//     may not be empty or equal a template header (帐号 or 账号 included).
//     WeCom only applies attributes that exist in the admin console and
//     ignores other columns.
//
// Every value, names of attributes included, must be valid UTF-8 without
// ',', '"', '\r' or '\n' ([ErrUnsafeCSVValue]). Leading '=', '+', '-' or
// '@' are written as they are: mobiles start with '+', and the file is read
// by WeCom, not a spreadsheet.
type Member struct {
	UserID, Name, Mobile, Email string
	Departments                 []int
	Position                    string
	Gender                      Gender // GenderUnset, GenderMale, GenderFemale
	IsLeaderInDept              []bool // same length as Departments, or empty
	Order                       []int  // same length as Departments, or empty
	Alias, Address, Telephone   string
	Disabled                    bool
	ExtAttrs                    map[string]string // extra columns, header = attribute name
}

// Department is one row of the department import template (batch/replaceparty:
// https://developer.work.weixin.qq.com/document/path/91132).
//
// The root department has ID 1 and, if listed, ParentID 0; top-level
// departments have ParentID 1. Order 0 means "leave the order unchanged"
// (WeCom reads 0 and an empty cell alike); a larger Order sorts first.
type Department struct {
	Name     string
	ID       int
	ParentID int
	Order    int
}

// WriteMembersCSV validates all members and, only if every one is valid,
// writes the member import template to w: the 14-column header followed by
// one column per extension attribute (the union of all members' ExtAttrs
// keys, sorted by name), then one row per member. The output is UTF-8 with
// "\n" line endings, no BOM and no quoting; department, leader and order
// lists are joined with ';', gender is 男/女/empty and 禁用 is 0/1.
//
// A validation error is a *[CSVError] naming the first bad row and column,
// and then nothing has been written to w. With no members, only the header
// is written (WeCom may reject such a file as empty, errcode 40092).
// See https://developer.work.weixin.qq.com/document/path/91130.
func WriteMembersCSV(w io.Writer, members []Member) error {
	if w == nil {
		return errNilWriter
	}
	ext, err := validateMembers(members)
	if err != nil {
		return err
	}
	mw := newMemberCSVWriter(w, ext, false)
	if mw.err != nil {
		return mw.err
	}
	for i := range members {
		mw.appendRow(&members[i])
		if _, err := mw.bw.Write(mw.buf); err != nil {
			return err
		}
	}
	return mw.bw.Flush()
}

// ValidateMembers checks members exactly as [WriteMembersCSV] does, without
// writing anything. It returns nil or a *[CSVError] for the first bad row
// (rows in order; within a row, columns in template order, then extension
// attributes by name).
func ValidateMembers(members []Member) error {
	_, err := validateMembers(members)
	return err
}

// validateMembers validates every member, including duplicate userids, and
// returns the sorted union of extension attribute names. The error is the
// one a row-by-row check would meet first: within a row, the template
// columns, then extension attributes, then the userid against earlier rows.
func validateMembers(members []Member) ([]string, error) {
	// Duplicates are found by bucketing hashes of the lower-cased userids,
	// which is much cheaper than a map insert per row; only if two hashes
	// are equal is the exact (map-based) search run.
	seed := maphash.MakeSeed()
	hashes := make([]uint64, 0, len(members))
	var known extNames
	var rowErr error
	for i := range members {
		m := &members[i]
		if rowErr = validateMemberRow(m, i+1, &known); rowErr != nil {
			break
		}
		hashes = append(hashes, hashUserID(seed, m.UserID))
	}
	// hashes covers the rows before the first bad row: a duplicate among
	// them comes first.
	if hasDuplicateHash(hashes) {
		seen := newUserIDSet(len(hashes))
		for j := range len(hashes) {
			if err := seen.add(members[j].UserID, j+1); err != nil {
				return nil, err
			}
		}
		// Equal hashes of different userids: no duplicate after all.
	}
	if rowErr != nil {
		return nil, rowErr
	}
	return known.sorted, nil
}

// extNames collects the valid extension attribute names seen so far.
type extNames struct {
	set    map[string]struct{}
	sorted []string
}

// validateMemberRow checks one member's columns and extension attributes;
// the names of valid attributes are added to known.
func validateMemberRow(m *Member, row int, known *extNames) error {
	if err := validateMemberFields(m, row); err != nil {
		return err
	}
	if len(m.ExtAttrs) == 0 {
		return nil
	}
	if extAttrsAmong(m.ExtAttrs, known.sorted) {
		return nil
	}
	var bad *CSVError
	for k, v := range m.ExtAttrs {
		if bad != nil && k >= bad.Column {
			continue
		}
		if _, ok := known.set[k]; !ok {
			if err := checkExtAttrName(k); err != nil {
				bad = &CSVError{Row: row, Column: k, Err: err}
				continue
			}
			if known.set == nil {
				known.set = make(map[string]struct{})
			}
			known.set[k] = struct{}{}
			i, _ := slices.BinarySearch(known.sorted, k)
			known.sorted = slices.Insert(known.sorted, i, k)
		}
		if err := checkText(v, 0); err != nil {
			bad = &CSVError{Row: row, Column: k, Err: err}
		}
	}
	if bad != nil {
		return bad
	}
	return nil
}

// extAttrsAmong is the fast path of extension attribute checks: it reports
// whether every key of attrs is in names and every value is safe, looking
// the names up rather than iterating over the map, which is cheaper when
// there are few names. False means "look closer", not "invalid".
func extAttrsAmong(attrs map[string]string, names []string) bool {
	if len(names) > 8 {
		return false
	}
	hits := 0
	for _, name := range names {
		if v, ok := attrs[name]; ok {
			if checkText(v, 0) != nil {
				return false
			}
			hits++
		}
	}
	return hits == len(attrs)
}

// hasDuplicateHash reports whether h (which it reorders) holds a value
// twice. It buckets the values by their top bits in one counting pass, so
// that only a few values share a bucket, then compares within buckets.
func hasDuplicateHash(h []uint64) bool {
	n := len(h)
	if n < 256 {
		slices.Sort(h)
		for i := 1; i < n; i++ {
			if h[i] == h[i-1] {
				return true
			}
		}
		return false
	}
	k := min(bits.Len(uint(n/4)), 24) // about 4 values per bucket
	shift := 64 - k
	ends := make([]int, 1<<k)
	for _, x := range h {
		ends[x>>shift]++
	}
	sum := 0
	for b, c := range ends {
		ends[b] = sum // bucket start, advanced to its end by the scatter
		sum += c
	}
	out := make([]uint64, n)
	for _, x := range h {
		b := x >> shift
		out[ends[b]] = x
		ends[b]++
	}
	start := 0
	for _, end := range ends {
		bucket := out[start:end]
		start = end
		if len(bucket) > 16 {
			slices.Sort(bucket)
			for i := 1; i < len(bucket); i++ {
				if bucket[i] == bucket[i-1] {
					return true
				}
			}
			continue
		}
		for i := 1; i < len(bucket); i++ {
			for _, y := range bucket[:i] {
				if bucket[i] == y {
					return true
				}
			}
		}
	}
	return false
}

// hashUserID hashes the lower-cased form of a validated userid (at most 64
// bytes) without allocating.
func hashUserID(seed maphash.Seed, userID string) uint64 {
	var buf [64]byte
	n := copy(buf[:], userID)
	for i := range n {
		if c := buf[i]; c >= 'A' && c <= 'Z' {
			buf[i] = c + 'a' - 'A'
		}
	}
	return maphash.Bytes(seed, buf[:n])
}

// userIDSet finds duplicate userids, compared case-insensitively, without
// a per-row allocation: it keys a pointer-free map by a hash of the
// lower-cased userid and keeps the lower-cased bytes in one arena to rule
// out hash collisions (a colliding, different userid goes to spill).
type userIDSet struct {
	seed   maphash.Seed
	byHash map[uint64]int // hash → index into rows/offs
	arena  []byte         // lower-cased userids, back to back
	offs   []int          // offs[i]:offs[i+1] is entry i in arena
	rows   []int          // rows[i] is the data row of entry i
	spill  map[string]int // lower-cased userid → row, for hash collisions
}

func newUserIDSet(n int) *userIDSet {
	return &userIDSet{
		seed:   maphash.MakeSeed(),
		byHash: make(map[uint64]int, n),
		arena:  make([]byte, 0, n*12),
		offs:   make([]int, 1, n+1),
		rows:   make([]int, 0, n),
	}
}

// add records userID (already validated: 1-64 bytes of ASCII) for row, or
// returns a *CSVError if an equal userid was added before.
func (u *userIDSet) add(userID string, row int) error {
	var buf [64]byte
	lower := buf[:0]
	for i := 0; i < len(userID) && i < len(buf); i++ {
		c := userID[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	h := maphash.Bytes(u.seed, lower)
	first := 0
	if i, ok := u.byHash[h]; ok {
		if string(u.arena[u.offs[i]:u.offs[i+1]]) == string(lower) {
			first = u.rows[i]
		} else { // a hash collision between different userids
			if u.spill == nil {
				u.spill = make(map[string]int)
			}
			if r, dup := u.spill[string(lower)]; dup {
				first = r
			} else {
				u.spill[string(lower)] = row
			}
		}
	} else {
		u.byHash[h] = len(u.rows)
		u.arena = append(u.arena, lower...)
		u.offs = append(u.offs, len(u.arena))
		u.rows = append(u.rows, row)
	}
	if first != 0 {
		return &CSVError{Row: row, Column: CSVColUserID, Err: fmt.Errorf(
			"%w: userid %s is also in row %d (userids are case-insensitive)", ErrDuplicate, csvQuote(userID), first)}
	}
	return nil
}

// MemberCSVWriter writes the member import template row by row, for inputs
// too large to hold in memory at once. Each row is validated (including
// its userid against the rows already written) before any of its bytes are
// written, but rows already written cannot be taken back: after an error,
// discard the output.
//
// Errors are sticky: once Write, Flush or Close has failed, every later
// call returns the same error. Output is buffered; call Close (or Flush)
// when done. A MemberCSVWriter is not safe for concurrent use.
type MemberCSVWriter struct {
	bw       *bufio.Writer
	ext      []string
	extSet   map[string]struct{}
	seen     *userIDSet
	buf      []byte
	row      int
	validate bool
	err      error
	closed   bool
}

// NewMemberCSVWriter returns a writer of the member import template to w
// whose extra columns are extAttrs, in the order given. The header line is
// buffered immediately. An invalid or duplicated extension attribute name
// (empty, equal to a template header — 帐号 and 账号 both count —, or
// holding ',', '"' or a line break) is a *[CSVError] with Row 0.
func NewMemberCSVWriter(w io.Writer, extAttrs []string) (*MemberCSVWriter, error) {
	if w == nil {
		return nil, errNilWriter
	}
	set := make(map[string]struct{}, len(extAttrs))
	for _, name := range extAttrs {
		if err := checkExtAttrName(name); err != nil {
			return nil, &CSVError{Column: name, Err: err}
		}
		if _, dup := set[name]; dup {
			return nil, &CSVError{Column: name, Err: fmt.Errorf("%w: extension attribute column declared twice", ErrDuplicate)}
		}
		set[name] = struct{}{}
	}
	mw := newMemberCSVWriter(w, slices.Clone(extAttrs), true)
	mw.extSet = set
	if mw.err != nil {
		return nil, mw.err
	}
	return mw, nil
}

func newMemberCSVWriter(w io.Writer, ext []string, validate bool) *MemberCSVWriter {
	mw := &MemberCSVWriter{
		bw:       bufio.NewWriterSize(w, 64<<10),
		ext:      ext,
		validate: validate,
		buf:      make([]byte, 0, 1024),
	}
	if validate {
		mw.seen = newUserIDSet(1024)
	}
	b := append(mw.buf[:0], memberCSVHeader...)
	for _, name := range ext {
		b = append(b, ',')
		b = append(b, name...)
	}
	b = append(b, '\n')
	mw.buf = b
	if _, err := mw.bw.Write(b); err != nil {
		mw.err = err
	}
	return mw
}

// Write validates m and appends it as the next data row. Row numbers in
// errors count data rows from 1, including the row that failed. A member
// with an ExtAttrs key not declared to [NewMemberCSVWriter] is an error
// (ErrUnknownColumn) naming that key as the column; declared attributes
// the member lacks are written as empty cells. After Close, Write returns
// ErrWriterClosed.
func (w *MemberCSVWriter) Write(m Member) error {
	if w == nil || w.bw == nil {
		return errors.New("wecom: csv: MemberCSVWriter not made by NewMemberCSVWriter")
	}
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrWriterClosed
	}
	w.row++
	if w.validate {
		if err := w.validateRow(&m); err != nil {
			w.err = err
			return err
		}
	}
	w.appendRow(&m)
	if _, err := w.bw.Write(w.buf); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *MemberCSVWriter) validateRow(m *Member) error {
	if err := validateMemberFields(m, w.row); err != nil {
		return err
	}
	if len(m.ExtAttrs) == 0 || extAttrsAmong(m.ExtAttrs, w.ext) {
		return w.seen.add(m.UserID, w.row)
	}
	var bad *CSVError
	for k, v := range m.ExtAttrs {
		if bad != nil && k >= bad.Column {
			continue
		}
		if _, ok := w.extSet[k]; !ok {
			bad = &CSVError{Row: w.row, Column: k, Err: fmt.Errorf(
				"%w: extension attribute not among the columns given to NewMemberCSVWriter", ErrUnknownColumn)}
			continue
		}
		if err := checkText(v, 0); err != nil {
			bad = &CSVError{Row: w.row, Column: k, Err: err}
		}
	}
	if bad != nil {
		return bad
	}
	return w.seen.add(m.UserID, w.row)
}

// Flush writes any buffered data to the underlying io.Writer. It returns
// the sticky error, if any, without writing.
func (w *MemberCSVWriter) Flush() error {
	if w == nil || w.bw == nil {
		return errors.New("wecom: csv: MemberCSVWriter not made by NewMemberCSVWriter")
	}
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Close flushes buffered data and marks the writer closed; it does not
// close the underlying io.Writer. Later Writes return ErrWriterClosed;
// Close and Flush after Close return the result of the first Close.
func (w *MemberCSVWriter) Close() error {
	if w == nil || w.bw == nil {
		return errors.New("wecom: csv: MemberCSVWriter not made by NewMemberCSVWriter")
	}
	if w.closed {
		return w.err
	}
	w.closed = true
	return w.Flush()
}

// appendRow formats m into w.buf (replacing its contents). m must be valid.
func (w *MemberCSVWriter) appendRow(m *Member) {
	b := w.buf[:0]
	b = append(b, m.Name...)
	b = append(b, ',')
	b = append(b, m.UserID...)
	b = append(b, ',')
	b = append(b, m.Mobile...)
	b = append(b, ',')
	b = append(b, m.Email...)
	b = append(b, ',')
	for i, d := range m.Departments {
		if i > 0 {
			b = append(b, ';')
		}
		b = appendInt(b, d)
	}
	b = append(b, ',')
	b = append(b, m.Position...)
	b = append(b, ',')
	switch m.Gender {
	case GenderMale:
		b = append(b, "男"...)
	case GenderFemale:
		b = append(b, "女"...)
	}
	b = append(b, ',')
	for i, l := range m.IsLeaderInDept {
		if i > 0 {
			b = append(b, ';')
		}
		if l {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
	}
	b = append(b, ',')
	for i, o := range m.Order {
		if i > 0 {
			b = append(b, ';')
		}
		b = appendInt(b, o)
	}
	b = append(b, ',')
	b = append(b, m.Alias...)
	b = append(b, ',')
	b = append(b, m.Address...)
	b = append(b, ',')
	b = append(b, m.Telephone...)
	if m.Disabled {
		b = append(b, ",1,"...)
	} else {
		b = append(b, ",0,"...)
	}
	for _, name := range w.ext {
		b = append(b, ',')
		b = append(b, m.ExtAttrs[name]...)
	}
	b = append(b, '\n')
	w.buf = b
}

// validateMemberFields checks the 14 template columns of one member.
func validateMemberFields(m *Member, row int) error {
	fail := func(col string, err error) error { return &CSVError{Row: row, Column: col, Err: err} }

	if m.Name == "" {
		return fail(CSVColName, fmt.Errorf("%w: name is required", ErrRequired))
	}
	if isBlank(m.Name) {
		return fail(CSVColName, fmt.Errorf("%w: name is only white space", ErrRequired))
	}
	if err := checkText(m.Name, 64); err != nil {
		return fail(CSVColName, err)
	}
	if err := checkNoControl(m.Name, "name"); err != nil {
		return fail(CSVColName, err)
	}
	if err := checkUserID(m.UserID); err != nil {
		return fail(CSVColUserID, err)
	}
	if m.Mobile == "" && m.Email == "" {
		return fail(CSVColMobile, fmt.Errorf("%w: at least one of 手机号 (mobile) and 邮箱 (email) is required", ErrRequired))
	}
	if m.Mobile != "" {
		if err := checkMobile(m.Mobile); err != nil {
			return fail(CSVColMobile, err)
		}
	}
	if m.Email != "" {
		if err := checkEmail(m.Email); err != nil {
			return fail(CSVColEmail, err)
		}
	}
	if err := checkDepartmentList(m.Departments); err != nil {
		return fail(CSVColDepartments, err)
	}
	if err := checkText(m.Position, 128); err != nil {
		return fail(CSVColPosition, err)
	}
	if m.Gender != GenderUnset && m.Gender != GenderMale && m.Gender != GenderFemale {
		return fail(CSVColGender, fmt.Errorf("%w: gender must be GenderUnset, GenderMale or GenderFemale, got %d", ErrInvalidValue, int(m.Gender)))
	}
	if n := len(m.IsLeaderInDept); n != 0 && n != len(m.Departments) {
		return fail(CSVColIsLeaderInDept, fmt.Errorf("%w: %d leader flags for %d departments (must be empty or one per department)",
			ErrInvalidValue, n, len(m.Departments)))
	}
	if n := len(m.Order); n != 0 && n != len(m.Departments) {
		return fail(CSVColOrder, fmt.Errorf("%w: %d order values for %d departments (must be empty or one per department)",
			ErrInvalidValue, n, len(m.Departments)))
	}
	for _, o := range m.Order {
		if o < 0 || o > math.MaxUint32 {
			return fail(CSVColOrder, fmt.Errorf("%w: order %d out of range [0, 2^32)", ErrInvalidValue, o))
		}
	}
	if err := checkText(m.Alias, 32); err != nil {
		return fail(CSVColAlias, err)
	}
	if err := checkText(m.Address, 128); err != nil {
		return fail(CSVColAddress, err)
	}
	if m.Telephone != "" {
		if err := checkTelephone(m.Telephone); err != nil {
			return fail(CSVColTelephone, err)
		}
	}
	return nil
}

// userIDChars marks the bytes allowed in a userid: [0-9A-Za-z_\-@.].
var userIDChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['_'], t['-'], t['@'], t['.'] = true, true, true, true
	return t
}()

func isASCIIAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func checkUserID(s string) error {
	if s == "" {
		return fmt.Errorf("%w: userid is required", ErrRequired)
	}
	const rule = "userid must be 1-64 bytes of [0-9A-Za-z_-@.] starting with a letter or digit"
	if len(s) > 64 {
		return fmt.Errorf("%w: %w: %s, got %d bytes", ErrInvalidValue, ErrTooLong, rule, len(s))
	}
	if !isASCIIAlnum(s[0]) {
		return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
	}
	for i := 1; i < len(s); i++ {
		if !userIDChars[s[i]] {
			return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
		}
	}
	return nil
}

func checkMobile(s string) error {
	if err := checkText(s, 0); err != nil {
		return err
	}
	const rule = "mobile must be at most 32 characters of digits, '+' and '-', with at least one digit"
	digit := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digit = true
		case c == '+' || c == '-':
		default:
			return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
		}
	}
	if !digit {
		return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
	}
	if len(s) > 32 {
		return fmt.Errorf("%w: %w: %s, got %d", ErrInvalidValue, ErrTooLong, rule, len(s))
	}
	return nil
}

func checkTelephone(s string) error {
	if err := checkText(s, 0); err != nil {
		return err
	}
	const rule = "telephone must be at most 32 characters of digits and '-'"
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
		}
	}
	if len(s) > 32 {
		return fmt.Errorf("%w: %w: %s, got %d", ErrInvalidValue, ErrTooLong, rule, len(s))
	}
	return nil
}

func checkEmail(s string) error {
	if err := checkText(s, 64); err != nil {
		return err
	}
	const rule = "email must be local@domain with one '@', a non-empty local part, a domain containing an inner '.', and no spaces"
	at := strings.IndexByte(s, '@')
	if at <= 0 || strings.IndexByte(s[at+1:], '@') >= 0 {
		return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
	}
	domain := s[at+1:]
	dot := strings.IndexByte(domain, '.')
	if dot <= 0 || domain[len(domain)-1] == '.' {
		return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
		}
		if c >= utf8.RuneSelf {
			if r, _ := utf8.DecodeRuneInString(s[i:]); unicode.IsSpace(r) {
				return fmt.Errorf("%w: %s, got %s", ErrInvalidValue, rule, csvQuote(s))
			}
		}
	}
	return nil
}

func checkDepartmentList(ds []int) error {
	if len(ds) == 0 {
		return fmt.Errorf("%w: at least one department id is required", ErrRequired)
	}
	if len(ds) > MaxMemberDepartments {
		return fmt.Errorf("%w: at most %d departments per member, got %d", ErrInvalidValue, MaxMemberDepartments, len(ds))
	}
	for i, d := range ds {
		if d <= 0 || d > math.MaxUint32 {
			return fmt.Errorf("%w: department id %d must be a positive 32-bit integer", ErrInvalidValue, d)
		}
		for _, e := range ds[:i] {
			if e == d {
				return fmt.Errorf("%w: department id %d listed twice", ErrDuplicate, d)
			}
		}
	}
	return nil
}

// reservedColumns are names an extension attribute may not take: the
// template headers, plus 账号, the newer spelling of 帐号 that WeCom (and
// the fake server) may also map to the userid.
var reservedColumns = map[string]bool{
	CSVColName: true, CSVColUserID: true, "账号": true, CSVColMobile: true, CSVColEmail: true,
	CSVColDepartments: true, CSVColPosition: true, CSVColGender: true, CSVColIsLeaderInDept: true,
	CSVColOrder: true, CSVColAlias: true, CSVColAddress: true, CSVColTelephone: true,
	CSVColDisabled: true, CSVColDisabledNote: true,
}

func checkExtAttrName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: extension attribute name is empty", ErrRequired)
	}
	if err := checkText(name, 0); err != nil {
		return err
	}
	if reservedColumns[name] {
		return fmt.Errorf("%w: extension attribute name equals a template column header", ErrInvalidValue)
	}
	return nil
}

// checkText refuses values WeCom's CSV cannot carry unquoted (',', '"',
// '\r', '\n'), invalid UTF-8, and — when maxRunes > 0 — values longer than
// maxRunes characters.
func checkText(s string, maxRunes int) error {
	i := 0
	// Eight bytes at a time while they are plain ASCII without , " \r \n.
	for ; i+8 <= len(s); i += 8 {
		v := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if v&swarHigh != 0 || swarHasByte(v, ',') || swarHasByte(v, '"') || swarHasByte(v, '\r') || swarHasByte(v, '\n') {
			break
		}
	}
	n := i // characters so far
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if csvUnsafe[c] {
				return unsafeValueError(s, i)
			}
			i++
		} else if c >= 0xE1 && c <= 0xEC && i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
			i += 3 // a 3-byte sequence needing no overlong or surrogate check (CJK)
		} else {
			_, size := utf8.DecodeRuneInString(s[i:])
			if size == 1 {
				return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidValue, csvQuote(s))
			}
			i += size
		}
		n++
	}
	if maxRunes > 0 && n > maxRunes {
		return fmt.Errorf("%w: %w: at most %d characters, got %d", ErrInvalidValue, ErrTooLong, maxRunes, n)
	}
	return nil
}

const (
	swarLow  = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// swarHasByte reports whether any of the eight bytes of v equals c
// (exact for ASCII v, which is all it is used on).
func swarHasByte(v uint64, c byte) bool {
	x := v ^ (swarLow * uint64(c))
	return (x-swarLow)&^x&swarHigh != 0
}

// csvUnsafe marks the ASCII bytes a value may not hold: , " \r \n.
var csvUnsafe = [utf8.RuneSelf]bool{',': true, '"': true, '\r': true, '\n': true}

func unsafeValueError(s string, i int) error {
	what := "a line break"
	switch s[i] {
	case ',':
		what = "a comma"
	case '"':
		what = "a double quote"
	}
	return fmt.Errorf("%w: %s contains %s at byte %d; WeCom's CSV parser is not known to honour quoting, so such values are refused",
		ErrUnsafeCSVValue, csvQuote(s), what, i)
}

// WriteDepartmentsCSV validates depts and, only if they are all valid,
// writes the department import template (header 部门名称,部门ID,父部门ID,排序)
// to w: UTF-8, "\n" line endings, no BOM, no quoting, rows in the order
// given. Order is written as given; 0 is what WeCom reads as "leave the
// order unchanged". A validation error is a *[CSVError] and then
// nothing has been written. See
// https://developer.work.weixin.qq.com/document/path/91132.
func WriteDepartmentsCSV(w io.Writer, depts []Department) error {
	if w == nil {
		return errNilWriter
	}
	if err := ValidateDepartments(depts); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	b := make([]byte, 0, 256)
	b = append(b, deptCSVHeader...)
	b = append(b, '\n')
	for i := range depts {
		d := &depts[i]
		b = append(b, d.Name...)
		b = append(b, ',')
		b = appendInt(b, d.ID)
		b = append(b, ',')
		b = appendInt(b, d.ParentID)
		b = append(b, ',')
		b = appendInt(b, d.Order)
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
		b = b[:0]
	}
	if _, err := bw.Write(b); err != nil {
		return err
	}
	return bw.Flush()
}

// ValidateDepartments checks depts as [WriteDepartmentsCSV] does, without
// writing anything: every Name non-empty and not only white space, at most 32 characters and 64
// bytes, free of : * ? " < > | , line breaks and control characters; every ID a positive
// 32-bit integer, unique; Order ≥ 0; every ParentID either 1 or the ID of
// another listed department (the root row, ID 1, must have ParentID 0);
// no cycles; sibling names distinct (compared as-is); depth at most
// MaxDepartmentDepth with the root at level 1; at most
// MaxDepartmentChildren children per department. Rows may come in any
// order. It returns nil or a *[CSVError] for the first problem found:
// per-row checks first, then parent links, then cycles and depth.
func ValidateDepartments(depts []Department) error {
	fail := func(i int, col string, err error) error { return &CSVError{Row: i + 1, Column: col, Err: err} }
	idx := make(map[int]int, len(depts))
	for i := range depts {
		d := &depts[i]
		if err := checkDeptName(d.Name); err != nil {
			return fail(i, CSVColDeptName, err)
		}
		switch {
		case d.ID == 0:
			return fail(i, CSVColDeptID, fmt.Errorf("%w: department id is required", ErrRequired))
		case d.ID < 0 || d.ID > math.MaxUint32:
			return fail(i, CSVColDeptID, fmt.Errorf("%w: department id %d must be a positive 32-bit integer", ErrInvalidValue, d.ID))
		}
		if first, dup := idx[d.ID]; dup {
			return fail(i, CSVColDeptID, fmt.Errorf("%w: department id %d is also in row %d", ErrDuplicate, d.ID, first+1))
		}
		idx[d.ID] = i
		if d.ParentID < 0 || d.ParentID > math.MaxUint32 {
			return fail(i, CSVColDeptParentID, fmt.Errorf("%w: parent id %d must be a positive 32-bit integer", ErrInvalidValue, d.ParentID))
		}
		if d.Order < 0 || d.Order > math.MaxUint32 {
			return fail(i, CSVColDeptOrder, fmt.Errorf("%w: order %d out of range [0, 2^32)", ErrInvalidValue, d.Order))
		}
	}

	type sibling struct {
		parent int
		name   string
	}
	siblings := make(map[sibling]int, len(depts))
	children := make(map[int]int)
	for i := range depts {
		d := &depts[i]
		if d.ID == 1 {
			if d.ParentID != 0 {
				return fail(i, CSVColDeptParentID, fmt.Errorf("%w: the root department (id 1) must have parent id 0, got %d", ErrNotATree, d.ParentID))
			}
			continue
		}
		switch {
		case d.ParentID == 0:
			return fail(i, CSVColDeptParentID, fmt.Errorf("%w: parent id is required (top-level departments use 1)", ErrRequired))
		case d.ParentID == d.ID:
			return fail(i, CSVColDeptParentID, fmt.Errorf("%w: department %d is its own parent", ErrNotATree, d.ID))
		case d.ParentID != 1:
			if _, ok := idx[d.ParentID]; !ok {
				return fail(i, CSVColDeptParentID, fmt.Errorf("%w: parent id %d is neither 1 nor the id of another row", ErrNotATree, d.ParentID))
			}
		}
		key := sibling{d.ParentID, d.Name}
		if first, dup := siblings[key]; dup {
			return fail(i, CSVColDeptName, fmt.Errorf("%w: name %s is also used by row %d under the same parent %d",
				ErrDuplicate, csvQuote(d.Name), first+1, d.ParentID))
		}
		siblings[key] = i
		children[d.ParentID]++
		if children[d.ParentID] > MaxDepartmentChildren {
			return fail(i, CSVColDeptParentID, fmt.Errorf("%w: department %d has more than %d children",
				ErrInvalidValue, d.ParentID, MaxDepartmentChildren))
		}
	}

	// Cycles and depth: walk up from each row, memoising levels.
	level := make([]int, len(depts)) // 0: not computed yet
	onPath := make([]bool, len(depts))
	var path []int
	for i := range depts {
		path = path[:0]
		cur, base := i, 0
		for {
			if level[cur] != 0 {
				base = level[cur]
				break
			}
			if onPath[cur] {
				// cur is on a cycle: report its earliest row.
				start := slices.Index(path, cur)
				minRow := slices.Min(path[start:])
				return fail(minRow, CSVColDeptParentID, fmt.Errorf("%w: department %d is its own ancestor (cycle)", ErrNotATree, depts[minRow].ID))
			}
			onPath[cur] = true
			path = append(path, cur)
			d := &depts[cur]
			if d.ID == 1 {
				base = 0 // the root row itself becomes level 1 below
				break
			}
			p, ok := idx[d.ParentID]
			if !ok {
				base = 1 // parent is the implicit root (id 1, not listed)
				break
			}
			cur = p
		}
		for j := len(path) - 1; j >= 0; j-- {
			base++
			r := path[j]
			level[r] = base
			onPath[r] = false
			if base > MaxDepartmentDepth {
				return fail(r, CSVColDeptParentID, fmt.Errorf("%w: department %d is at level %d; WeCom allows at most %d levels (root = 1)",
					ErrInvalidValue, depts[r].ID, base, MaxDepartmentDepth))
			}
		}
	}
	return nil
}

func checkDeptName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: department name is required", ErrRequired)
	}
	if isBlank(s) {
		return fmt.Errorf("%w: department name is only white space", ErrRequired)
	}
	if err := checkText(s, 32); err != nil {
		return err
	}
	if len(s) > 64 {
		return fmt.Errorf("%w: %w: department name must be at most 64 bytes, got %d", ErrInvalidValue, ErrTooLong, len(s))
	}
	if err := checkNoControl(s, "department name"); err != nil {
		return err
	}
	if i := strings.IndexAny(s, `:*?"<>|`); i >= 0 {
		return fmt.Errorf("%w: department name %s must not contain any of : * ? \" < > |", ErrInvalidValue, csvQuote(s))
	}
	return nil
}

// isBlank reports whether s is not empty but holds only white space: a
// cell WeCom (and wecomtest) read as empty, so a required value missing.
func isBlank(s string) bool {
	return s != "" && strings.TrimSpace(s) == ""
}

// checkNoControl refuses ASCII control characters (U+0000-U+001F, U+007F)
// in a name: WeCom rejects such names (60112 for a member, 60125 for a
// department), and so does the fake server. Bytes of multi-byte UTF-8
// sequences are all >= 0x80, so a byte scan is exact.
func checkNoControl(s, what string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %s %s contains the control character %U", ErrInvalidValue, what, csvQuote(s), rune(c))
		}
	}
	return nil
}

// appendInt appends v in decimal; small values, the usual department ids
// and orders, skip strconv's temporary buffer.
func appendInt(b []byte, v int) []byte {
	switch {
	case v >= 0 && v < 10:
		return append(b, byte('0'+v))
	case v >= 10 && v < 100:
		return append(b, byte('0'+v/10), byte('0'+v%10))
	case v >= 100 && v < 1000:
		return append(b, byte('0'+v/100), byte('0'+v/10%10), byte('0'+v%10))
	}
	return strconv.AppendInt(b, int64(v), 10)
}

// csvClip shortens s to at most 40 characters for error messages.
func csvClip(s string) string {
	const max = 40
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// csvQuote quotes a value for an error message, shortened.
func csvQuote(s string) string { return strconv.Quote(csvClip(s)) }
