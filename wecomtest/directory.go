package wecomtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// RootDepartmentName is the name of department 1 in a new server.
const RootDepartmentName = "测试企业"

// OtherDepartmentName is the department under which a member import creates
// the departments its rows reference but the directory lacks (doc update of
// 2024-05-15 on pages 91130/91131). It is created under the root on demand,
// with id max(existing ids, ids referenced by the file)+1; each missing
// department is created under it with its id as its name.
const OtherDepartmentName = "其他（待设置部门）"

// Department is a department of the fake directory, with the fields of
// department/list (https://developer.work.weixin.qq.com/document/path/90208).
type Department struct {
	ID               int
	Name, NameEn     string
	ParentID, Order  int
	DepartmentLeader []string
}

// Member is a member of the fake directory, with the fields of user/list
// (https://developer.work.weixin.qq.com/document/path/90201).
//
// Gender is "0" (unknown), "1" (male) or "2" (female), as in WeCom JSON.
// Status is 1 active, 2 disabled, 4 not activated, 5 left; Enable is 1 when
// the member is enabled. AddMember fills defaults: Status 0 → 1, Enable is
// derived from Status (0 when Status is 2, else 1), Gender "" → "0",
// MainDepartment 0 → Department[0], Order and IsLeaderInDept padded with
// zeros to len(Department), OpenUserID "" → a stable "wo…" id.
// ExtAttr holds text extension attributes by name.
type Member struct {
	UserID, Name     string
	Department       []int
	Order            []int
	Position, Mobile string
	Gender           string
	Email, BizMail   string
	IsLeaderInDept   []int
	DirectLeader     []string
	Avatar           string
	ThumbAvatar      string
	Telephone        string
	Alias, Address   string
	OpenUserID       string
	MainDepartment   int
	Status           int
	ExtAttr          map[string]string
	QRCode           string
	ExternalPosition string
	Enable           int
}

// Tag is a tag of the fake directory (members by userid, departments by id).
type Tag struct {
	ID       int
	Name     string
	UserIDs  []string
	PartyIDs []int
}

func (d Department) clone() Department {
	d.DepartmentLeader = slices.Clone(d.DepartmentLeader)
	return d
}

func (m Member) clone() Member {
	m.Department = slices.Clone(m.Department)
	m.Order = slices.Clone(m.Order)
	m.IsLeaderInDept = slices.Clone(m.IsLeaderInDept)
	m.DirectLeader = slices.Clone(m.DirectLeader)
	if m.ExtAttr != nil {
		m.ExtAttr = maps.Clone(m.ExtAttr)
	}
	return m
}

func (t Tag) clone() Tag {
	t.UserIDs = slices.Clone(t.UserIDs)
	t.PartyIDs = slices.Clone(t.PartyIDs)
	return t
}

// directory is the in-memory contact book. Member values are never mutated
// in place once stored (copy on write), so an export can snapshot pointers.
type directory struct {
	depts         map[int]*Department
	members       map[string]*Member // key: lower-case userid
	mobiles       map[string]string  // mobile → member key
	emails        map[string]string  // lower-case email → member key
	deptMembers   map[int]int        // department id → member count
	tags          map[int]*Tag
	extAttrs      []string
	pendingDelete map[int]bool // kept by replaceparty only because not empty
}

func newDirectory() *directory {
	d := &directory{
		depts:         map[int]*Department{},
		members:       map[string]*Member{},
		mobiles:       map[string]string{},
		emails:        map[string]string{},
		deptMembers:   map[int]int{},
		tags:          map[int]*Tag{},
		pendingDelete: map[int]bool{},
	}
	d.depts[1] = &Department{ID: 1, Name: RootDepartmentName, Order: 100000000}
	return d
}

func userKey(userID string) string { return strings.ToLower(userID) }

// putMember stores m (which the caller no longer touches), keeping indexes.
func (d *directory) putMember(m *Member) {
	key := userKey(m.UserID)
	if old := d.members[key]; old != nil {
		d.unindex(key, old)
	}
	d.members[key] = m
	if m.Mobile != "" {
		d.mobiles[m.Mobile] = key
	}
	if m.Email != "" {
		d.emails[strings.ToLower(m.Email)] = key
	}
	for _, id := range m.Department {
		d.deptMembers[id]++
	}
}

func (d *directory) unindex(key string, old *Member) {
	if old.Mobile != "" && d.mobiles[old.Mobile] == key {
		delete(d.mobiles, old.Mobile)
	}
	if e := strings.ToLower(old.Email); e != "" && d.emails[e] == key {
		delete(d.emails, e)
	}
	for _, id := range old.Department {
		if d.deptMembers[id]--; d.deptMembers[id] <= 0 {
			delete(d.deptMembers, id)
		}
	}
}

func (d *directory) deleteMember(key string) {
	if old := d.members[key]; old != nil {
		d.unindex(key, old)
		delete(d.members, key)
	}
}

// childCounts returns the number of sub-departments per department.
func (d *directory) childCounts() map[int]int {
	c := make(map[int]int, len(d.depts))
	for _, dep := range d.depts {
		if dep.ID != 1 {
			c[dep.ParentID]++
		}
	}
	return c
}

// sweepPending deletes departments that replaceparty kept only because they
// were not empty, once they are empty (deepest first).
func (d *directory) sweepPending() {
	for changed := true; changed && len(d.pendingDelete) > 0; {
		changed = false
		children := d.childCounts()
		for id := range d.pendingDelete {
			if d.depts[id] == nil {
				delete(d.pendingDelete, id)
				continue
			}
			if children[id] == 0 && d.deptMembers[id] == 0 {
				delete(d.depts, id)
				delete(d.pendingDelete, id)
				changed = true
			}
		}
	}
}

func (d *directory) maxDeptID() int {
	m := 0
	for id := range d.depts {
		m = max(m, id)
	}
	return m
}

// openUserID derives a stable fake open_userid from the corp and userid.
func openUserID(corpID, userID string) string {
	h := sha256.Sum256([]byte(corpID + "\x00" + strings.ToLower(userID)))
	return "wo" + hex.EncodeToString(h[:])[:30]
}

// normalizeMember fills the defaults documented on Member.
func normalizeMember(m *Member, corpID string) {
	if m.Status == 0 {
		m.Status = 1
	}
	if m.Status == 2 {
		m.Enable = 0
	} else {
		m.Enable = 1
	}
	if m.Gender == "" {
		m.Gender = "0"
	}
	if len(m.Department) > 0 && !slices.Contains(m.Department, m.MainDepartment) {
		m.MainDepartment = m.Department[0]
	}
	for len(m.Order) < len(m.Department) {
		m.Order = append(m.Order, 0)
	}
	for len(m.IsLeaderInDept) < len(m.Department) {
		m.IsLeaderInDept = append(m.IsLeaderInDept, 0)
	}
	if m.OpenUserID == "" {
		m.OpenUserID = openUserID(corpID, m.UserID)
	}
	if m.Department == nil {
		m.Department = []int{}
	}
}

// AddDepartment adds a department. ID 0 picks the next free id; the parent
// must exist; siblings must have distinct names. Adding id 1 again fails
// (the root always exists).
func (s *Server) AddDepartment(d Department) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.dir
	if d.ID < 0 {
		return fmt.Errorf("wecomtest: invalid department id %d", d.ID)
	}
	if d.ID == 0 {
		d.ID = dir.maxDeptID() + 1
	}
	if dir.depts[d.ID] != nil {
		return fmt.Errorf("wecomtest: department %d already exists", d.ID)
	}
	if code := validDeptName(d.Name); code != 0 {
		return fmt.Errorf("wecomtest: invalid department name %q", d.Name)
	}
	if dir.depts[d.ParentID] == nil {
		return fmt.Errorf("wecomtest: parent department %d does not exist", d.ParentID)
	}
	for _, o := range dir.depts {
		if o.ParentID == d.ParentID && o.ID != 1 && o.Name == d.Name {
			return fmt.Errorf("wecomtest: department %q already exists under %d", d.Name, d.ParentID)
		}
	}
	c := d.clone()
	dir.depts[d.ID] = &c
	return nil
}

// AddMember adds a member after the checks WeCom makes: valid userid and
// name, departments that exist (at least one, at most 20), mobile and email
// well-formed and not used by another member, userid not taken
// (case-insensitively). Defaults are filled as documented on Member.
func (s *Server) AddMember(m Member) error {
	m = m.clone()
	if !validUserID(m.UserID) {
		return fmt.Errorf("wecomtest: invalid userid %q", m.UserID)
	}
	if !validName(m.Name) {
		return fmt.Errorf("wecomtest: invalid name %q", m.Name)
	}
	if len(m.Department) == 0 || len(m.Department) > 20 {
		return errors.New("wecomtest: a member needs 1 to 20 departments")
	}
	if m.Mobile != "" && !validMobile(m.Mobile) {
		return fmt.Errorf("wecomtest: invalid mobile %q", m.Mobile)
	}
	if m.Email != "" && !validEmail(m.Email) {
		return fmt.Errorf("wecomtest: invalid email %q", m.Email)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.dir
	key := userKey(m.UserID)
	if dir.members[key] != nil {
		return fmt.Errorf("wecomtest: userid %q already exists", m.UserID)
	}
	for _, id := range m.Department {
		if dir.depts[id] == nil {
			return fmt.Errorf("wecomtest: department %d does not exist", id)
		}
	}
	if _, ok := dir.mobiles[m.Mobile]; ok && m.Mobile != "" {
		return fmt.Errorf("wecomtest: mobile %q already used", m.Mobile)
	}
	if _, ok := dir.emails[strings.ToLower(m.Email)]; ok && m.Email != "" {
		return fmt.Errorf("wecomtest: email %q already used", m.Email)
	}
	normalizeMember(&m, s.CorpID)
	dir.putMember(&m)
	return nil
}

// AddTag adds a tag. ID 0 picks the next free id. Members and departments
// it names must exist.
func (s *Server) AddTag(t Tag) error {
	t = t.clone()
	if t.Name == "" || utf8.RuneCountInString(t.Name) > 32 {
		return fmt.Errorf("wecomtest: invalid tag name %q", t.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.dir
	if t.ID < 0 {
		return fmt.Errorf("wecomtest: invalid tag id %d", t.ID)
	}
	if t.ID == 0 {
		for id := range dir.tags {
			t.ID = max(t.ID, id)
		}
		t.ID++
	}
	if dir.tags[t.ID] != nil {
		return fmt.Errorf("wecomtest: tag %d already exists", t.ID)
	}
	for _, u := range t.UserIDs {
		if dir.members[userKey(u)] == nil {
			return fmt.Errorf("wecomtest: tag member %q does not exist", u)
		}
	}
	for _, p := range t.PartyIDs {
		if dir.depts[p] == nil {
			return fmt.Errorf("wecomtest: tag department %d does not exist", p)
		}
	}
	dir.tags[t.ID] = &t
	return nil
}

// AddExtAttr registers a text extension attribute. Member CSV columns whose
// header is a registered name set that attribute; other unknown columns are
// ignored, as WeCom ignores attributes not created in the admin console.
func (s *Server) AddExtAttr(name string) {
	name = strings.TrimSpace(name)
	if name == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.dir.extAttrs, name) {
		s.dir.extAttrs = append(s.dir.extAttrs, name)
	}
}

// Departments returns a copy of every department, sorted by ID.
func (s *Server) Departments() []Department {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Department, 0, len(s.dir.depts))
	for _, d := range s.dir.depts {
		out = append(out, d.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Department returns a copy of one department.
func (s *Server) Department(id int) (Department, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dir.depts[id]
	if d == nil {
		return Department{}, false
	}
	return d.clone(), true
}

// Members returns a copy of every member, sorted by UserID.
func (s *Server) Members() []Member {
	s.mu.Lock()
	out := make([]Member, 0, len(s.dir.members))
	for _, m := range s.dir.members {
		out = append(out, m.clone())
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out
}

// MemberCount reports the number of members.
func (s *Server) MemberCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dir.members)
}

// Member returns a copy of one member; userID matches case-insensitively.
func (s *Server) Member(userID string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.dir.members[userKey(userID)]
	if m == nil {
		return Member{}, false
	}
	return m.clone(), true
}

// Tags returns a copy of every tag, sorted by ID. Members and departments
// deleted since the tag was made are left out.
func (s *Server) Tags() []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Tag, 0, len(s.dir.tags))
	for _, t := range s.dir.tags {
		out = append(out, s.dir.liveTag(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// liveTag copies t without members or departments that no longer exist.
func (d *directory) liveTag(t *Tag) Tag {
	c := Tag{ID: t.ID, Name: t.Name, UserIDs: []string{}, PartyIDs: []int{}}
	for _, u := range t.UserIDs {
		if m := d.members[userKey(u)]; m != nil {
			c.UserIDs = append(c.UserIDs, m.UserID)
		}
	}
	for _, p := range t.PartyIDs {
		if d.depts[p] != nil {
			c.PartyIDs = append(c.PartyIDs, p)
		}
	}
	return c
}
