package wecomtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// ExportFilePath is the path prefix of export data-file URLs. They are
// pre-signed (query "expires" and "sign"), need no access_token, and answer
// GET and HEAD with Range support. An expired URL or a bad signature gets
// HTTP 403 with a COS-style XML error body (<Error><Code>AccessDenied</Code>
// …), an unknown file 404 (NoSuchKey); InjectFault(ExportFilePath, …)
// matches every download.
const ExportFilePath = "/wecomtest/exportfile/"

// ExportURLTTL is how long a data-file URL stays valid after the
// export/get_result call that handed it out (server clock).
const ExportURLTTL = 2 * time.Hour

// Export job statuses (export/get_result "status").
const (
	ExportPending = 0
	ExportRunning = 1
	ExportDone    = 2
	ExportFailed  = 3
)

const maxBlockSize = 1000000

type exportFile struct {
	data []byte
	md5  string
}

type exportJob struct {
	id, jobType string
	status      int
	files       []exportFile
}

type exportJobs struct {
	byID   map[string]*exportJob
	order  []string
	issued map[string]bool
	count  int
}

func newExportJobs() exportJobs {
	return exportJobs{byID: map[string]*exportJob{}, issued: map[string]bool{}}
}

// exportSnapshot is the directory as it was when the export was submitted.
type exportSnapshot struct {
	members []*Member // immutable values
	depts   []Department
	tag     Tag
	tagUser []*Member
}

// handleExportSimpleUser mirrors POST /cgi-bin/export/simple_user (导出成员,
// https://developer.work.weixin.qq.com/document/path/94849). Each data file
// decrypts to {"userlist":[{"userid","name","department","open_userid"}]}.
func (s *Server) handleExportSimpleUser(w http.ResponseWriter, r *http.Request, body []byte) {
	s.submitExport(w, r, body, "export_simple_user")
}

// handleExportUser mirrors POST /cgi-bin/export/user (导出成员详情,
// https://developer.work.weixin.qq.com/document/path/94849). Each data file
// decrypts to {"userlist":[...]} with every user/list field (gender a
// string; extattr {"attrs":[{"type":0,"name":..,"text":{"value":..}}]}).
func (s *Server) handleExportUser(w http.ResponseWriter, r *http.Request, body []byte) {
	s.submitExport(w, r, body, "export_user")
}

// handleExportDepartment mirrors POST /cgi-bin/export/department (导出部门,
// https://developer.work.weixin.qq.com/document/path/94849). Each data file
// decrypts to {"department":[{"id","name","name_en","department_leader",
// "parentid","order"}]}, block_size counting departments.
func (s *Server) handleExportDepartment(w http.ResponseWriter, r *http.Request, body []byte) {
	s.submitExport(w, r, body, "export_department")
}

// handleExportTagUser mirrors POST /cgi-bin/export/taguser (导出标签成员,
// https://developer.work.weixin.qq.com/document/path/94953). Body adds
// "tagid" (missing, 0 or unknown → 40068). block_size counts users plus
// departments: users fill the blocks first, then department ids. [U] choice:
// every block repeats "tagname" and carries both "userlist" and "partylist"
// (possibly empty).
func (s *Server) handleExportTagUser(w http.ResponseWriter, r *http.Request, body []byte) {
	s.submitExport(w, r, body, "export_taguser")
}

// submitExport: 40058 for a bad body, an encoding_aeskey that is not 43
// characters of [A-Za-z0-9], or a block_size outside [min, 10^6] (0 or
// absent means 10^6). The directory is snapshot now; the job then goes
// status 0 → 1 → 2 with real-time step delays, and reports to the app
// callback (WithAppCallback) if one is configured. Every export produces at
// least one data file (an empty directory gives one file with an empty list).
func (s *Server) submitExport(w http.ResponseWriter, r *http.Request, body []byte, jobType string) {
	if !s.checkToken(w, r) {
		return
	}
	var req struct {
		EncodingAESKey string `json:"encoding_aeskey"`
		BlockSize      int    `json:"block_size"`
		TagID          int    `json:"tagid"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeErr(w, r, 40058, "invalid json body")
		return
	}
	key, err := wxcrypto.DecodeKey(req.EncodingAESKey)
	if err != nil {
		s.writeErr(w, r, 40058, "invalid encoding_aeskey")
		return
	}
	if req.BlockSize == 0 {
		req.BlockSize = maxBlockSize
	}
	if req.BlockSize < s.cfg.minBlockSize || req.BlockSize > maxBlockSize {
		s.writeErr(w, r, 40058, "block_size out of range")
		return
	}
	snap := &exportSnapshot{}
	s.mu.Lock()
	dir := s.dir
	switch jobType {
	case "export_user", "export_simple_user":
		snap.members = make([]*Member, 0, len(dir.members))
		for _, m := range dir.members {
			snap.members = append(snap.members, m)
		}
	case "export_department":
		for _, d := range dir.depts {
			snap.depts = append(snap.depts, d.clone())
		}
	case "export_taguser":
		t := dir.tags[req.TagID]
		if t == nil {
			s.mu.Unlock()
			s.writeErr(w, r, 40068, "")
			return
		}
		snap.tag = dir.liveTag(t)
		for _, u := range snap.tag.UserIDs {
			snap.tagUser = append(snap.tagUser, dir.members[userKey(u)])
		}
	}
	j := &exportJob{id: "jobid_" + randomHex(16), jobType: jobType, status: ExportPending}
	ex := &s.exports
	ex.byID[j.id] = j
	ex.issued[j.id] = true
	ex.order = append(ex.order, j.id)
	for len(ex.order) > s.cfg.maxExportJobs {
		delete(ex.byID, ex.order[0])
		ex.order = ex.order[1:]
	}
	ex.count++
	s.mu.Unlock()
	if !s.goTracked(func() { s.runExport(j, snap, key, req.BlockSize) }) {
		s.writeErr(w, r, -1, "server closing")
		return
	}
	s.writeJSON(w, http.StatusOK, struct {
		envelope
		JobID string `json:"jobid"`
	}{okEnvelope, j.id})
}

func (s *Server) runExport(j *exportJob, snap *exportSnapshot, key []byte, block int) {
	if !s.sleep(s.cfg.stepDelay) {
		return
	}
	s.mu.Lock()
	j.status = ExportRunning
	s.mu.Unlock()
	if !s.sleep(s.cfg.stepDelay) {
		return
	}
	var plains [][]byte
	switch j.jobType {
	case "export_user", "export_simple_user":
		slices.SortFunc(snap.members, func(a, b *Member) int { return strings.Compare(a.UserID, b.UserID) })
		full := j.jobType == "export_user"
		plains = encodeBlocks(len(snap.members), block, `{"userlist":[`, `]}`, func(b []byte, i int) []byte {
			if full {
				return appendUser(b, snap.members[i])
			}
			return appendSimpleUser(b, snap.members[i])
		})
	case "export_department":
		slices.SortFunc(snap.depts, func(a, b Department) int { return a.ID - b.ID })
		plains = encodeBlocks(len(snap.depts), block, `{"department":[`, `]}`, func(b []byte, i int) []byte {
			return appendDepartment(b, &snap.depts[i])
		})
	case "export_taguser":
		plains = encodeTagBlocks(snap, block)
	}
	files := make([]exportFile, len(plains))
	for i, p := range plains {
		ct, err := wxcrypto.Encrypt(key, p)
		if err != nil { // unreachable: the key was validated at submit
			s.mu.Lock()
			j.status = ExportFailed
			s.mu.Unlock()
			return
		}
		sum := md5.Sum(ct)
		files[i] = exportFile{data: ct, md5: hex.EncodeToString(sum[:])}
		plains[i] = nil
	}
	if s.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	j.files, j.status = files, ExportDone
	s.mu.Unlock()
	s.log.Info("wecomtest: export job done", "jobid", j.id, "type", j.jobType, "files", len(files))
	if cb := s.cfg.appCallback; cb != nil {
		s.deliverEvent(cb, j.id, j.jobType, 0, "ok")
	}
}

// encodeBlocks writes n records into ceil(n/block) JSON documents (at least one).
func encodeBlocks(n, block int, head, tail string, rec func([]byte, int) []byte) [][]byte {
	var out [][]byte
	for start := 0; start == 0 || start < n; start += block {
		end := min(start+block, n)
		b := make([]byte, 0, 64+(end-start)*256)
		b = append(b, head...)
		for i := start; i < end; i++ {
			if i > start {
				b = append(b, ',')
			}
			b = rec(b, i)
		}
		b = append(b, tail...)
		out = append(out, b)
	}
	return out
}

func encodeTagBlocks(snap *exportSnapshot, block int) [][]byte {
	users, parties := snap.tagUser, snap.tag.PartyIDs
	n := len(users) + len(parties)
	var out [][]byte
	for start := 0; start == 0 || start < n; start += block {
		end := min(start+block, n)
		b := []byte(`{"tagname":`)
		b = appendJSONString(b, snap.tag.Name)
		b = append(b, `,"userlist":[`...)
		first := true
		for i := start; i < end && i < len(users); i++ {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, `{"userid":`...)
			b = appendJSONString(b, users[i].UserID)
			b = append(b, `,"name":`...)
			b = appendJSONString(b, users[i].Name)
			b = append(b, '}')
		}
		b = append(b, `],"partylist":[`...)
		first = true
		for i := max(start, len(users)); i < end; i++ {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = strconv.AppendInt(b, int64(parties[i-len(users)]), 10)
		}
		b = append(b, "]}"...)
		out = append(out, b)
	}
	return out
}

func appendSimpleUser(b []byte, m *Member) []byte {
	b = append(b, `{"userid":`...)
	b = appendJSONString(b, m.UserID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, m.Name)
	b = append(b, `,"department":`...)
	b = appendInts(b, m.Department)
	b = append(b, `,"open_userid":`...)
	b = appendJSONString(b, m.OpenUserID)
	return append(b, '}')
}

func appendUser(b []byte, m *Member) []byte {
	str := func(b []byte, k, v string) []byte {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		return appendJSONString(b, v)
	}
	b = append(b, `{"userid":`...)
	b = appendJSONString(b, m.UserID)
	b = str(b, "name", m.Name)
	b = append(b, `,"department":`...)
	b = appendInts(b, m.Department)
	b = append(b, `,"order":`...)
	b = appendInts(b, m.Order)
	b = str(b, "position", m.Position)
	b = str(b, "mobile", m.Mobile)
	b = str(b, "gender", m.Gender)
	b = str(b, "email", m.Email)
	b = str(b, "biz_mail", m.BizMail)
	b = append(b, `,"is_leader_in_dept":`...)
	b = appendInts(b, m.IsLeaderInDept)
	b = append(b, `,"direct_leader":`...)
	b = appendStrings(b, m.DirectLeader)
	b = str(b, "avatar", m.Avatar)
	b = str(b, "thumb_avatar", m.ThumbAvatar)
	b = str(b, "telephone", m.Telephone)
	b = str(b, "alias", m.Alias)
	b = str(b, "address", m.Address)
	b = str(b, "open_userid", m.OpenUserID)
	b = append(b, `,"main_department":`...)
	b = strconv.AppendInt(b, int64(m.MainDepartment), 10)
	b = append(b, `,"extattr":{"attrs":[`...)
	if len(m.ExtAttr) > 0 {
		names := make([]string, 0, len(m.ExtAttr))
		for k := range m.ExtAttr {
			names = append(names, k)
		}
		slices.Sort(names)
		for i, k := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":0,"name":`...)
			b = appendJSONString(b, k)
			b = append(b, `,"text":{"value":`...)
			b = appendJSONString(b, m.ExtAttr[k])
			b = append(b, "}}"...)
		}
	}
	b = append(b, `]},"status":`...)
	b = strconv.AppendInt(b, int64(m.Status), 10)
	b = str(b, "qr_code", m.QRCode)
	b = str(b, "external_position", m.ExternalPosition)
	return append(b, '}')
}

func appendDepartment(b []byte, d *Department) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(d.ID), 10)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, d.Name)
	b = append(b, `,"name_en":`...)
	b = appendJSONString(b, d.NameEn)
	b = append(b, `,"department_leader":`...)
	b = appendStrings(b, d.DepartmentLeader)
	b = append(b, `,"parentid":`...)
	b = strconv.AppendInt(b, int64(d.ParentID), 10)
	b = append(b, `,"order":`...)
	b = strconv.AppendInt(b, int64(d.Order), 10)
	return append(b, '}')
}

func appendInts(b []byte, v []int) []byte {
	b = append(b, '[')
	for i, n := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, ']')
}

func appendStrings(b []byte, v []string) []byte {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// handleExportGetResult mirrors GET /cgi-bin/export/get_result?jobid=
// (获取导出结果, https://developer.work.weixin.qq.com/document/path/94954).
//
// {"errcode":0,"errmsg":"ok","status":0|1|2|3,"data_list":[{"url":..,
// "size":N,"md5":"<lower hex of the ciphertext>"}]}; data_list is present
// only at status 2. [U] choice: URLs are signed when get_result is called and
// stay valid ExportURLTTL from then. 40058 jobid missing, 40088 unknown
// jobid (import jobids included), 40089 a job pushed out by newer exports
// (WithMaxExportJobs).
func (s *Server) handleExportGetResult(w http.ResponseWriter, r *http.Request, _ []byte) {
	id, ok := s.jobQuery(w, r)
	if !ok {
		return
	}
	type item struct {
		URL  string `json:"url"`
		Size int    `json:"size"`
		MD5  string `json:"md5"`
	}
	out := struct {
		envelope
		Status   int    `json:"status"`
		DataList []item `json:"data_list,omitempty"`
	}{envelope: okEnvelope}
	s.mu.Lock()
	j := s.exports.byID[id]
	issued := s.exports.issued[id]
	if j != nil {
		out.Status = j.status
		if j.status == ExportDone {
			exp := strconv.FormatInt(s.now().Add(ExportURLTTL).Unix(), 10)
			for i, f := range j.files {
				p := ExportFilePath + j.id + "/" + strconv.Itoa(i+1)
				out.DataList = append(out.DataList, item{
					URL:  s.URL + p + "?expires=" + exp + "&sign=" + s.signFile(p, exp),
					Size: len(f.data), MD5: f.md5,
				})
			}
		}
	}
	s.mu.Unlock()
	switch {
	case j == nil && issued:
		s.writeErr(w, r, 40089, "")
	case j == nil:
		s.writeErr(w, r, 40088, "")
	default:
		s.writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) signFile(path, expires string) string {
	m := hmac.New(sha256.New, s.signKey)
	m.Write([]byte(path + "\n" + expires))
	return hex.EncodeToString(m.Sum(nil))
}

func writeXMLError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`<?xml version='1.0' encoding='utf-8' ?><Error><Code>` + code + `</Code><Message>` + msg + `</Message></Error>`))
}

// handleExportFile serves one data file's ciphertext with Range support.
// f, when non-nil, is a download fault (Truncate, Corrupt, DropAfter).
func (s *Server) handleExportFile(w http.ResponseWriter, r *http.Request, f *Fault) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeXMLError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed")
		return
	}
	p := r.URL.Path
	q := r.URL.Query()
	exp, sign := q.Get("expires"), q.Get("sign")
	if !hmac.Equal([]byte(sign), []byte(s.signFile(p, exp))) {
		writeXMLError(w, http.StatusForbidden, "AccessDenied", "SignatureDoesNotMatch")
		return
	}
	if e, err := strconv.ParseInt(exp, 10, 64); err != nil || s.now().Unix() > e {
		writeXMLError(w, http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	rest := strings.TrimPrefix(p, ExportFilePath)
	jobID, num, _ := strings.Cut(rest, "/")
	n, err := strconv.Atoi(num)
	s.mu.Lock()
	var file *exportFile
	if j := s.exports.byID[jobID]; j != nil && err == nil && n >= 1 && n <= len(j.files) {
		file = &j.files[n-1]
	}
	s.mu.Unlock()
	if file == nil {
		writeXMLError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	data := file.data
	if f != nil && f.Corrupt {
		data = bytes.Clone(data)
		for i := 0; i < len(data); i += 512 {
			data[i] ^= 0xff
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+file.md5+`"`)
	if f == nil || (!f.Truncate && f.DropAfter <= 0) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		return
	}
	cw := &cutWriter{ResponseWriter: w, limit: -1}
	if f.DropAfter > 0 {
		cw.limit = int64(f.DropAfter)
	}
	cw.truncate = f.Truncate
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(data))
	if cw.cut {
		hijackClose(w)
	}
}
