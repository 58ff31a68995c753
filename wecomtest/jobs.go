package wecomtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// KeepImportResults is how many import job results batch/getresult keeps;
// older jobids answer 40089, never-issued ones 40088.
const KeepImportResults = 5

// Import job types, as in getresult "type" and the callback JobType.
const (
	JobSyncUser     = "sync_user"
	JobReplaceUser  = "replace_user"
	JobReplaceParty = "replace_party"
)

// Import job statuses (batch/getresult "status").
const (
	ImportStarted = 1
	ImportRunning = 2
	ImportDone    = 3
)

// progressSteps is roughly how many steps a job's rows are applied in.
const progressSteps = 10

type userResult struct {
	UserID  string `json:"userid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

type partyResult struct {
	Action  int    `json:"action"`
	PartyID int    `json:"partyid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// Party result action bits (batch/getresult, type replace_party).
const (
	ActionCreate = 1
	ActionRename = 2
	ActionMove   = 4
	ActionOrder  = 8
)

type importJob struct {
	id, typ      string
	status       int
	total        int
	percentage   int
	errCode      int
	errMsg       string
	userResults  []userResult
	partyResults []partyResult
	callback     *callbackTarget
	data         []byte
	toInvite     bool
}

type importJobs struct {
	byID    map[string]*importJob
	order   []string        // retained jobs, oldest first
	issued  map[string]bool // every jobid ever issued (40089 vs 40088)
	running *importJob
	count   int
}

func newImportJobs() importJobs {
	return importJobs{byID: map[string]*importJob{}, issued: map[string]bool{}}
}

// submitRequest is the body of batch/syncuser, replaceuser and replaceparty.
type submitRequest struct {
	MediaID  string `json:"media_id"`
	ToInvite *bool  `json:"to_invite"`
	Callback *struct {
		URL            string `json:"url"`
		Token          string `json:"token"`
		EncodingAESKey string `json:"encodingaeskey"`
	} `json:"callback"`
}

// handleSyncUser mirrors POST /cgi-bin/batch/syncuser (增量更新成员,
// https://developer.work.weixin.qq.com/document/path/91130).
//
// Merge ([U] detail): a member in the file and the directory gets only the
// fields whose column is present in the header AND whose cell is non-empty
// (an empty cell never clears a field; 所在部门 is required per row, and
// 是否部门内领导/排序 reset to zeros when departments change without them);
// a member only in the file is created (60129 if it has neither mobile nor
// email); others are untouched. Uniqueness of mobile/email is checked against
// the whole directory (60104/60106).
func (s *Server) handleSyncUser(w http.ResponseWriter, r *http.Request, body []byte) {
	s.submitImport(w, r, body, JobSyncUser)
}

// handleReplaceUser mirrors POST /cgi-bin/batch/replaceuser (全量覆盖成员,
// https://developer.work.weixin.qq.com/document/path/91131).
//
// The file wins entirely for template fields (a column absent from the
// header, or an empty cell, clears the field); fields the template cannot
// express (avatar, biz_mail, direct_leader, open_userid, qr_code,
// external_position, unlisted extension attributes) are kept. Members not in
// the file are deleted at the end. A row that fails validation leaves its
// existing member untouched (and not deleted). The deletion guard runs
// before anything is applied: with del = members not in the file and cur =
// current headcount, the job fails with 45026 when (del > 50 && del*100 >
// cur*20) || (del < 50 && del*100 > cur*80); nothing is applied.
func (s *Server) handleReplaceUser(w http.ResponseWriter, r *http.Request, body []byte) {
	s.submitImport(w, r, body, JobReplaceUser)
}

// handleReplaceParty mirrors POST /cgi-bin/batch/replaceparty (全量覆盖部门,
// https://developer.work.weixin.qq.com/document/path/91132). to_invite is
// ignored if sent.
//
// File-level failures (job result): 40092 bad file/header, 302004 an empty
// or non-numeric 部门ID / 父部门ID, an empty 部门名称, an unknown parent, a
// cycle, parent 0 on anything but id 1; 302006 duplicate 部门ID; 302007 two
// rows with the same name under the same parent; 81002 depth over 15.
// Per-row: 60125 invalid name (row skipped), 60124 parent missing because
// its own row was skipped, 40058 bad 排序. Rows are applied parents first;
// 排序 empty or 0 keeps the order. Departments only in the directory are
// deleted when empty (no members, no sub-departments) and otherwise kept and
// deleted later, once a member import leaves them empty; deletions are not
// listed in result (there is no delete bit). Root id 1 is never deleted.
// Result items follow file order: {"action":bits,"partyid":N,"errcode":0,
// "errmsg":"ok"} with bits ActionCreate|ActionRename|ActionMove|ActionOrder
// (0 when nothing changed).
func (s *Server) handleReplaceParty(w http.ResponseWriter, r *http.Request, body []byte) {
	s.submitImport(w, r, body, JobReplaceParty)
}

// submitImport validates a submission synchronously (token; 40058 bad JSON
// or bad callback; 41006 no media_id; 40007 unknown, expired or non-file
// media; 302008 another import is running) and starts the job. File content
// is validated by the job itself: file-level problems become the job's
// result, as WeCom does for 45026.
func (s *Server) submitImport(w http.ResponseWriter, r *http.Request, body []byte, typ string) {
	if !s.checkToken(w, r) {
		return
	}
	var req submitRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		s.writeErr(w, r, 40058, "invalid json body")
		return
	}
	if req.MediaID == "" {
		s.writeErr(w, r, 41006, "")
		return
	}
	var cb *callbackTarget
	if c := req.Callback; c != nil && (c.URL != "" || c.Token != "" || c.EncodingAESKey != "") {
		cb = &callbackTarget{URL: c.URL, Token: c.Token, EncodingAESKey: c.EncodingAESKey}
		if err := cb.prepare(); err != nil {
			s.writeErr(w, r, 40058, "invalid callback: "+err.Error())
			return
		}
	}
	data, code := s.mediaForImport(req.MediaID)
	if code != 0 {
		s.writeErr(w, r, code, "")
		return
	}
	s.mu.Lock()
	if s.imports.running != nil {
		s.mu.Unlock()
		s.writeErr(w, r, 302008, "")
		return
	}
	j := &importJob{
		id: base64.RawURLEncoding.EncodeToString(randomBytes(32)), typ: typ, status: ImportStarted,
		callback: cb, data: data, toInvite: req.ToInvite == nil || *req.ToInvite,
	}
	im := &s.imports
	im.byID[j.id] = j
	im.issued[j.id] = true
	im.order = append(im.order, j.id)
	for len(im.order) > KeepImportResults {
		delete(im.byID, im.order[0])
		im.order = im.order[1:]
	}
	im.running = j
	im.count++
	s.mu.Unlock()
	if !s.goTracked(func() { s.runImport(j) }) {
		s.writeErr(w, r, -1, "server closing")
		return
	}
	s.writeJSON(w, http.StatusOK, struct {
		envelope
		JobID string `json:"jobid"`
	}{okEnvelope, j.id})
}

// JobCount reports how many import and export jobs were submitted.
func (s *Server) JobCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imports.count + s.exports.count
}

// ImportRunning reports whether an import job is running (the 302008 lock).
func (s *Server) ImportRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imports.running != nil
}

func (s *Server) runImport(j *importJob) {
	if !s.sleep(s.cfg.stepDelay) {
		return
	}
	s.mu.Lock()
	j.status = ImportRunning
	ext := slices.Clone(s.dir.extAttrs)
	s.mu.Unlock()
	var ferr *fileError
	if j.typ == JobReplaceParty {
		ferr = s.runPartyImport(j)
	} else {
		ferr = s.runMemberImport(j, ext)
	}
	if s.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	j.status, j.percentage = ImportDone, 100
	j.data = nil
	if ferr != nil {
		j.errCode, j.errMsg = ferr.code, ferr.msg
	}
	s.imports.running = nil
	s.mu.Unlock()
	s.log.Info("wecomtest: import job done", "jobid", j.id, "type", j.typ, "errcode", j.errCode)
	if j.callback != nil {
		msg := "ok"
		if ferr != nil {
			msg = errText(ferr.code)
		}
		s.deliverEvent(j.callback, j.id, j.typ, j.errCode, msg)
	}
}

// steps splits n rows into about progressSteps chunks.
func chunkSize(n int) int { return max(1, (n+progressSteps-1)/progressSteps) }

// deletionGuard is WeCom's replaceuser protection (45026).
func deletionGuard(del, cur int) bool {
	return (del > 50 && del*100 > cur*20) || (del < 50 && del*100 > cur*80)
}

// importCtx carries per-job state used while applying rows.
type importCtx struct {
	replace     bool
	maxRef      int               // largest department id the file mentions
	otherID     int               // id of OtherDepartmentName, 0 until needed
	mobileOwner map[string]string // replace only: claims made by this file
	emailOwner  map[string]string
	ext         []string
}

func (s *Server) runMemberImport(j *importJob, ext []string) *fileError {
	f, ferr := parseMemberCSV(j.data, ext)
	if ferr != nil {
		return ferr
	}
	rows := make([]memberRow, len(f.rows))
	ctx := &importCtx{replace: j.typ == JobReplaceUser, ext: f.extName}
	inFile := make(map[string]bool, len(rows))
	for i := range f.rows {
		rows[i] = validateMemberRow(&f.rows[i])
		for _, id := range rows[i].depts {
			ctx.maxRef = max(ctx.maxRef, id)
		}
		if rows[i].key != "" {
			inFile[rows[i].key] = true
		}
	}
	results := make([]userResult, len(rows))
	s.mu.Lock()
	j.total = len(rows)
	dir := s.dir
	if ctx.replace {
		del := 0
		for k := range dir.members {
			if !inFile[k] {
				del++
			}
		}
		if deletionGuard(del, len(dir.members)) {
			s.mu.Unlock()
			return fileErr(45026, "would delete %d of %d members", del, len(dir.members))
		}
		ctx.mobileOwner = make(map[string]string, len(rows))
		ctx.emailOwner = make(map[string]string, len(rows))
		for i := range rows { // failed rows keep their member, and its mobile/email
			if rows[i].code != 0 {
				if m := dir.members[rows[i].key]; m != nil {
					ctx.claim(m)
				}
			}
		}
	}
	s.mu.Unlock()
	size := chunkSize(len(rows))
	for start := 0; start < len(rows); start += size {
		end := min(start+size, len(rows))
		s.mu.Lock()
		for i := start; i < end; i++ {
			code, msg := s.applyMemberRow(&rows[i], f, ctx)
			results[i] = userResult{UserID: rows[i].rec.cells[mcUserID], ErrCode: code, ErrMsg: msg}
		}
		if end < len(rows) {
			j.percentage = end * 100 / len(rows)
		}
		s.mu.Unlock()
		if end < len(rows) && !s.sleep(s.cfg.stepDelay) {
			return nil
		}
	}
	s.mu.Lock()
	if ctx.replace {
		for k := range dir.members {
			if !inFile[k] {
				dir.deleteMember(k)
			}
		}
	}
	dir.sweepPending()
	j.userResults = results
	s.mu.Unlock()
	return nil
}

func (c *importCtx) claim(m *Member) {
	key := userKey(m.UserID)
	if m.Mobile != "" {
		c.mobileOwner[m.Mobile] = key
	}
	if m.Email != "" {
		c.emailOwner[strings.ToLower(m.Email)] = key
	}
}

// applyMemberRow applies one validated row. Caller holds s.mu.
func (s *Server) applyMemberRow(row *memberRow, f *memberFile, ctx *importCtx) (int, string) {
	if row.code != 0 {
		return row.code, row.msg
	}
	dir := s.dir
	c := &row.rec.cells
	mobile, email := c[mcMobile], c[mcEmail]
	emailKey := strings.ToLower(email)
	existing := dir.members[row.key]
	if ctx.replace {
		if o, ok := ctx.mobileOwner[mobile]; ok && mobile != "" && o != row.key {
			return 60104, "mobile existed"
		}
		if o, ok := ctx.emailOwner[emailKey]; ok && email != "" && o != row.key {
			return 60106, "email existed"
		}
	} else {
		if o, ok := dir.mobiles[mobile]; ok && mobile != "" && o != row.key {
			return 60104, "mobile existed"
		}
		if o, ok := dir.emails[emailKey]; ok && email != "" && o != row.key {
			return 60106, "email existed"
		}
	}
	var m Member
	zeros := func() []int { return make([]int, len(row.depts)) }
	if existing == nil || ctx.replace {
		if mobile == "" && email == "" {
			return 60129, "mobile and email can not be both empty"
		}
		if existing != nil {
			m = existing.clone()
		} else {
			m = Member{Status: 1}
		}
		m.UserID, m.Name, m.Mobile, m.Email = c[mcUserID], c[mcName], mobile, email
		m.Department = slices.Clone(row.depts)
		m.Position, m.Alias, m.Address, m.Telephone = c[mcPosition], c[mcAlias], c[mcAddress], c[mcTelephone]
		m.Gender = cmpOr(row.gender, "0")
		m.IsLeaderInDept = cmpOrSlice(row.leader, zeros)
		m.Order = cmpOrSlice(row.order, zeros)
		switch {
		case row.disable == 1:
			m.Status = 2
		case m.Status == 2 || m.Status == 0:
			m.Status = 1
		}
		for i, name := range f.extName {
			v := row.rec.ext[i]
			if v == "" {
				delete(m.ExtAttr, name)
				continue
			}
			if m.ExtAttr == nil {
				m.ExtAttr = map[string]string{}
			}
			m.ExtAttr[name] = v
		}
	} else {
		m = existing.clone()
		set := func(col int, dst *string) {
			if f.has[col] && c[col] != "" {
				*dst = c[col]
			}
		}
		set(mcName, &m.Name)
		set(mcMobile, &m.Mobile)
		set(mcEmail, &m.Email)
		set(mcPosition, &m.Position)
		set(mcAlias, &m.Alias)
		set(mcAddress, &m.Address)
		set(mcTelephone, &m.Telephone)
		if row.gender != "" {
			m.Gender = row.gender
		}
		sameDepts := slices.Equal(m.Department, row.depts)
		m.Department = slices.Clone(row.depts)
		if row.leader != nil {
			m.IsLeaderInDept = slices.Clone(row.leader)
		} else if !sameDepts {
			m.IsLeaderInDept = zeros()
		}
		if row.order != nil {
			m.Order = slices.Clone(row.order)
		} else if !sameDepts {
			m.Order = zeros()
		}
		switch row.disable {
		case 1:
			m.Status = 2
		case 0:
			if m.Status == 2 {
				m.Status = 1
			}
		}
		for i, name := range f.extName {
			if v := row.rec.ext[i]; v != "" {
				if m.ExtAttr == nil {
					m.ExtAttr = map[string]string{}
				}
				m.ExtAttr[name] = v
			}
		}
		if m.Mobile == "" && m.Email == "" {
			return 60129, "mobile and email can not be both empty"
		}
	}
	for _, id := range m.Department {
		s.ensureDepartment(id, ctx)
	}
	normalizeMember(&m, s.CorpID)
	dir.putMember(&m)
	if ctx.replace {
		ctx.claim(&m)
	}
	return 0, "ok"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cmpOrSlice(a []int, b func() []int) []int {
	if a != nil {
		return slices.Clone(a)
	}
	return b()
}

// ensureDepartment creates a department a member row references but the
// directory lacks, under OtherDepartmentName. Caller holds s.mu.
func (s *Server) ensureDepartment(id int, ctx *importCtx) {
	dir := s.dir
	if dir.depts[id] != nil {
		return
	}
	if ctx.otherID == 0 || dir.depts[ctx.otherID] == nil {
		ctx.otherID = 0
		for _, d := range dir.depts {
			if d.ParentID == 1 && d.ID != 1 && d.Name == OtherDepartmentName {
				ctx.otherID = d.ID
				break
			}
		}
		if ctx.otherID == 0 {
			ctx.otherID = max(dir.maxDeptID(), ctx.maxRef) + 1
			dir.depts[ctx.otherID] = &Department{ID: ctx.otherID, Name: OtherDepartmentName, ParentID: 1}
		}
	}
	dir.depts[id] = &Department{ID: id, Name: strconv.Itoa(id), ParentID: ctx.otherID}
}

// partyRow is a validated department record.
type partyRow struct {
	rec               *deptRecord
	id, parent, order int
	depth             int
	code              int
	msg               string
	fileIndex         int
	noOrder           bool
}

func (s *Server) runPartyImport(j *importJob) *fileError {
	recs, ferr := parseDepartmentCSV(j.data)
	if ferr != nil {
		return ferr
	}
	rows := make([]partyRow, len(recs))
	byID := make(map[int]*partyRow, len(recs))
	for i := range recs {
		rec := &recs[i]
		row := &rows[i]
		row.rec, row.fileIndex, row.code, row.msg = rec, i, 0, "ok"
		id, err1 := strconv.Atoi(rec.id)
		parent, err2 := strconv.Atoi(rec.parent)
		if err1 != nil || err2 != nil || id <= 0 || parent < 0 || id > MaxDepartmentID || parent > MaxDepartmentID || rec.name == "" {
			return fileErr(302004, "line %d: empty or invalid 部门名称, 部门ID or 父部门ID", rec.line)
		}
		if (parent == 0) != (id == 1) || parent == id {
			return fileErr(302004, "line %d: invalid parent %d for department %d", rec.line, parent, id)
		}
		if _, dup := byID[id]; dup {
			return fileErr(302006, "department %d appears twice", id)
		}
		row.id, row.parent = id, parent
		switch o, err := strconv.Atoi(rec.ordr); {
		case rec.ordr == "":
			row.noOrder = true
		case err != nil || o < 0:
			row.code, row.msg = 40058, "invalid order"
		default:
			row.order = o
			row.noOrder = o == 0
		}
		if row.code == 0 {
			if c := validDeptName(rec.name); c != 0 {
				row.code, row.msg = c, "invalid department name"
			}
		}
		byID[id] = row
	}
	siblings := map[[2]string]bool{}
	for i := range rows {
		k := [2]string{strconv.Itoa(rows[i].parent), rows[i].rec.name}
		if siblings[k] {
			return fileErr(302007, "two departments named %q under %d", rows[i].rec.name, rows[i].parent)
		}
		siblings[k] = true
	}
	s.mu.Lock()
	dir := s.dir
	parentOf := func(id int) (int, bool) {
		if r := byID[id]; r != nil {
			return r.parent, true
		}
		if d := dir.depts[id]; d != nil {
			return d.ParentID, true
		}
		return 0, false
	}
	for i := range rows {
		depth, id := 0, rows[i].id
		for id != 1 {
			p, ok := parentOf(id)
			if !ok {
				s.mu.Unlock()
				return fileErr(302004, "department %d has an unknown parent", id)
			}
			id = p
			if depth++; depth > 1000 {
				s.mu.Unlock()
				return fileErr(302004, "department %d is in a cycle", rows[i].id)
			}
		}
		if depth > 15 {
			s.mu.Unlock()
			return fileErr(81002, "department %d is deeper than 15 levels", rows[i].id)
		}
		rows[i].depth = depth
	}
	j.total = len(rows)
	s.mu.Unlock()
	ordered := make([]*partyRow, len(rows))
	for i := range rows {
		ordered[i] = &rows[i]
	}
	slices.SortStableFunc(ordered, func(a, b *partyRow) int { return a.depth - b.depth })
	results := make([]partyResult, len(rows))
	size := chunkSize(len(rows))
	for start := 0; start < len(ordered); start += size {
		end := min(start+size, len(ordered))
		s.mu.Lock()
		for _, row := range ordered[start:end] {
			results[row.fileIndex] = s.applyPartyRow(row)
		}
		if end < len(rows) {
			j.percentage = end * 100 / len(rows)
		}
		s.mu.Unlock()
		if end < len(rows) && !s.sleep(s.cfg.stepDelay) {
			return nil
		}
	}
	s.mu.Lock()
	for id := range dir.depts {
		if id != 1 && byID[id] == nil {
			dir.pendingDelete[id] = true
		}
	}
	dir.sweepPending()
	j.partyResults = results
	s.mu.Unlock()
	return nil
}

// applyPartyRow creates or modifies one department. Caller holds s.mu.
func (s *Server) applyPartyRow(row *partyRow) partyResult {
	res := partyResult{PartyID: row.id, ErrCode: row.code, ErrMsg: row.msg}
	if row.code != 0 {
		return res
	}
	dir := s.dir
	if row.id != 1 && dir.depts[row.parent] == nil {
		res.ErrCode, res.ErrMsg = 60124, "invalid parent party id"
		return res
	}
	delete(dir.pendingDelete, row.id)
	old := dir.depts[row.id]
	if old == nil {
		dir.depts[row.id] = &Department{ID: row.id, Name: row.rec.name, ParentID: row.parent, Order: row.order}
		res.Action = ActionCreate
		return res
	}
	d := old.clone()
	if d.Name != row.rec.name {
		d.Name = row.rec.name
		res.Action |= ActionRename
	}
	if row.id != 1 && d.ParentID != row.parent {
		d.ParentID = row.parent
		res.Action |= ActionMove
	}
	if !row.noOrder && d.Order != row.order {
		d.Order = row.order
		res.Action |= ActionOrder
	}
	dir.depts[row.id] = &d
	return res
}

// jobQuery checks the access_token of a result query and returns its
// jobid; it has answered the request (41001/40014/42001, or 40058 for a
// missing jobid) when it reports false.
func (s *Server) jobQuery(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !s.checkToken(w, r) {
		return "", false
	}
	id := r.URL.Query().Get("jobid")
	if id == "" {
		s.writeErr(w, r, 40058, "jobid missing")
		return "", false
	}
	return id, true
}

// handleGetResult mirrors GET /cgi-bin/batch/getresult?jobid= (获取异步任务
// 结果, https://developer.work.weixin.qq.com/document/path/90983).
//
// Success: {"errcode":0,"errmsg":"ok","status":1|2|3,"type":"sync_user|
// replace_user|replace_party","total":N,"percentage":P,"result":[...]};
// "result" is present only at status 3. A job that failed as a whole
// (40092, 302003, 302004, 302006, 302007, 81002, 45026) answers, at status
// 3, {"errcode":<code>,"errmsg":"<WeCom-shaped text>","status":3,"type":...,
// "total":N,"percentage":100} without result. 40058 jobid missing, 40088
// unknown jobid (export jobids included), 40089 a job older than the last
// KeepImportResults imports.
func (s *Server) handleGetResult(w http.ResponseWriter, r *http.Request, _ []byte) {
	id, ok := s.jobQuery(w, r)
	if !ok {
		return
	}
	type resp struct {
		ErrCode    int    `json:"errcode"`
		ErrMsg     string `json:"errmsg"`
		Status     int    `json:"status"`
		Type       string `json:"type"`
		Total      int    `json:"total"`
		Percentage int    `json:"percentage"`
		Result     any    `json:"result,omitempty"`
	}
	s.mu.Lock()
	j := s.imports.byID[id]
	issued := s.imports.issued[id]
	var out resp
	if j != nil {
		out = resp{Status: j.status, Type: j.typ, Total: j.total, Percentage: j.percentage, ErrMsg: "ok"}
		if j.status == ImportDone && j.errCode == 0 {
			if j.typ == JobReplaceParty {
				out.Result = j.partyResults // immutable once done
			} else {
				out.Result = j.userResults
			}
		}
		out.ErrCode = j.errCode
	}
	s.mu.Unlock()
	switch {
	case j == nil && issued:
		s.writeErr(w, r, 40089, "")
		return
	case j == nil:
		s.writeErr(w, r, 40088, "")
		return
	}
	if out.ErrCode != 0 {
		out.ErrMsg = s.errMsg(r, out.ErrCode, "")
	}
	s.writeJSON(w, http.StatusOK, out)
}

// InviteLimits are the batch/invite list limits (user, party, tag).
const (
	MaxInviteUsers = 1000
	MaxInviteParty = 100
	MaxInviteTags  = 100
)

// handleInvite mirrors POST /cgi-bin/batch/invite (邀请成员,
// https://developer.work.weixin.qq.com/document/path/90975).
//
// Body {"user":[...],"party":[...],"tag":[...]}; party and tag ids may be
// numbers or numeric strings ([U]: WxJava sends strings). 82001 when all
// three are empty; 40058 (a [U] choice) when user > 1000, party > 100 or
// tag > 100, or the body is not that JSON. Success lists the ids that do not
// exist: {"errcode":0,"errmsg":"ok","invaliduser":[],"invalidparty":[],
// "invalidtag":[]} (always present, possibly empty). Invitations have no
// other effect.
func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request, body []byte) {
	if !s.checkToken(w, r) {
		return
	}
	var req struct {
		User  []string          `json:"user"`
		Party []json.RawMessage `json:"party"`
		Tag   []json.RawMessage `json:"tag"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeErr(w, r, 40058, "invalid json body")
		return
	}
	parties, ok1 := idList(req.Party)
	tags, ok2 := idList(req.Tag)
	switch {
	case !ok1 || !ok2:
		s.writeErr(w, r, 40058, "party and tag must be integer ids")
		return
	case len(req.User) == 0 && len(parties) == 0 && len(tags) == 0:
		s.writeErr(w, r, 82001, "")
		return
	case len(req.User) > MaxInviteUsers:
		s.writeErr(w, r, 40058, "user exceeds 1000")
		return
	case len(parties) > MaxInviteParty:
		s.writeErr(w, r, 40058, "party exceeds 100")
		return
	case len(tags) > MaxInviteTags:
		s.writeErr(w, r, 40058, "tag exceeds 100")
		return
	}
	out := struct {
		envelope
		InvalidUser  []string `json:"invaliduser"`
		InvalidParty []int    `json:"invalidparty"`
		InvalidTag   []int    `json:"invalidtag"`
	}{okEnvelope, []string{}, []int{}, []int{}}
	s.mu.Lock()
	for _, u := range req.User {
		if s.dir.members[userKey(u)] == nil {
			out.InvalidUser = append(out.InvalidUser, u)
		}
	}
	for _, p := range parties {
		if s.dir.depts[p] == nil {
			out.InvalidParty = append(out.InvalidParty, p)
		}
	}
	for _, t := range tags {
		if s.dir.tags[t] == nil {
			out.InvalidTag = append(out.InvalidTag, t)
		}
	}
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, out)
}

// idList parses ids given as JSON numbers or numeric strings.
func idList(raw []json.RawMessage) ([]int, bool) {
	out := make([]int, 0, len(raw))
	for _, m := range raw {
		var n int
		if err := json.Unmarshal(m, &n); err == nil {
			out = append(out, n)
			continue
		}
		var str string
		if err := json.Unmarshal(m, &str); err != nil {
			return nil, false
		}
		n, err := strconv.Atoi(str)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}
