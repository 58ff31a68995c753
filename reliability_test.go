package wecom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// The reliability matrix: every public network method against every fault
// wecomtest can inject, each in a fresh server. A cell passes when the
// observed outcome (and the number of requests that reached the faulted
// path) is the one the documented rules predict, nothing panicked, no
// goroutine outlived the cell, and a failed call handed out no data.
//
// WECOM_WRITE_RELIABILITY=1 go test -run TestReliabilityMatrix . rewrites
// RELIABILITY.md from the run.

// relFaultKind groups faults by how the documented rules treat them.
type relFaultKind int

const (
	fkStatus        relFaultKind = iota // HTTP 5xx with an HTML body
	fkDrop                              // connection closed without a response
	fkSlow                              // no answer before the ctx deadline
	fkTruncJSON                         // HTTP 200, JSON cut short
	fkHTML200                           // HTTP 200, an HTML error page
	fkCode                              // HTTP 200, a WeCom errcode
	fkRevoke                            // every issued token revoked before the call
	fkFileCorrupt                       // export data file with flipped bytes
	fkFileTruncate                      // export data file: half the bytes, then the connection closes
	fkCallbackTwice                     // the same batch_job_result event posted twice
)

type relFault struct {
	name   string
	kind   relFaultKind
	status int
	code   int
	always bool // every call fails, not only the next one
}

var relFaults = []relFault{
	{name: "HTTP 500", kind: fkStatus, status: 500},
	{name: "HTTP 502", kind: fkStatus, status: 502},
	{name: "HTTP 503", kind: fkStatus, status: 503},
	{name: "HTTP 503, every call", kind: fkStatus, status: 503, always: true},
	{name: "dropped connection", kind: fkDrop},
	{name: "dropped connection, every call", kind: fkDrop, always: true},
	{name: "slow response past the ctx deadline", kind: fkSlow},
	{name: "truncated JSON body", kind: fkTruncJSON},
	{name: "HTML error page with HTTP 200", kind: fkHTML200},
	{name: "errcode -1", kind: fkCode, code: -1},
	{name: "errcode -1, every call", kind: fkCode, code: -1, always: true},
	{name: "errcode 45009", kind: fkCode, code: 45009},
	{name: "errcode 45033", kind: fkCode, code: 45033},
	{name: "errcode 45033, every call", kind: fkCode, code: 45033, always: true},
	{name: "errcode 40014", kind: fkCode, code: 40014},
	{name: "errcode 40014, every call", kind: fkCode, code: 40014, always: true},
	{name: "errcode 42001", kind: fkCode, code: 42001},
	{name: "errcode 40001", kind: fkCode, code: 40001},
	{name: "errcode 302005", kind: fkCode, code: 302005},
	{name: "errcode 302008", kind: fkCode, code: 302008},
	{name: "token revoked mid-flow", kind: fkRevoke},
	{name: "export file corrupted", kind: fkFileCorrupt},
	{name: "export file truncated", kind: fkFileTruncate},
	{name: "callback delivered twice", kind: fkCallbackTwice},
}

// relKind is how a method talks to WeCom, which decides what it may retry.
type relKind int

const (
	mkToken      relKind = iota // gettoken itself (no token to refresh)
	mkRead                      // one read: retried on network errors, 5xx, -1, 45009, 45033
	mkSubmit                    // one job submission: retried only on 45009, 45033
	mkWait                      // polling a read
	mkDownload                  // export data file download: resumed, verified
	mkImportFlow                // upload, submit (faulted: 302008 waits and resubmits), wait
	mkPlanFlow                  // export (faulted submission), wait, download
	mkCallback                  // the callback handler
)

type relMethod struct {
	name      string
	group     string
	kind      relKind
	path      string // where API faults go
	downloads bool   // export file faults apply
	// firstOnPath: the method's first request that carries a token goes to
	// path, so a revoked token is met there.
	firstOnPath bool
	setup       func(cx *relCell)
	run         func(cx *relCell) (out any, records int, err error)
}

// relCell is one (method, fault) run.
type relCell struct {
	t         *testing.T
	srv       *wecomtest.Server
	c         *wecom.Client
	tr        *http.Transport
	ctx       context.Context
	mediaID   string
	batchJob  string
	exportJob *wecom.ExportJob
	exportRes *wecom.ExportResult
	secrets   []string // keys made by the cell, which no log or error may show
}

var relMembers = []wecom.Member{
	{UserID: "n1", Name: "New One", Mobile: "13700000001", Departments: []int{1}},
	{UserID: "n2", Name: "New Two", Mobile: "13700000002", Departments: []int{2}},
}

func (cx *relCell) needMedia() {
	var buf bytes.Buffer
	require.NoError(cx.t, wecom.WriteMembersCSV(&buf, relMembers))
	m, err := cx.c.UploadFile(cx.ctx, "members.csv", bytes.NewReader(buf.Bytes()))
	require.NoError(cx.t, err)
	cx.mediaID = m.MediaID
}

func (cx *relCell) needBatchJob() {
	cx.needMedia()
	id, err := cx.c.SyncUser(cx.ctx, wecom.SyncUserRequest{MediaID: cx.mediaID})
	require.NoError(cx.t, err)
	_, err = cx.c.WaitBatchResult(cx.ctx, id, fastWait...)
	require.NoError(cx.t, err)
	cx.batchJob = id
}

func (cx *relCell) needExport() {
	job, err := cx.c.StartExport(cx.ctx, wecom.ExportKindUser, 0, wecom.ExportRequest{})
	require.NoError(cx.t, err)
	res, err := cx.c.WaitExportResult(cx.ctx, job.JobID, fastWait...)
	require.NoError(cx.t, err)
	require.Len(cx.t, res.DataList, 1)
	cx.exportJob, cx.exportRes = job, res
}

func (cx *relCell) exportReq() wecom.ExportRequest {
	key := wecom.NewEncodingAESKey()
	cx.secrets = append(cx.secrets, key)
	return wecom.ExportRequest{EncodingAESKey: key}
}

var relMethods = []relMethod{
	{name: "AccessToken", group: "Token and upload", kind: mkToken, path: "/cgi-bin/gettoken",
		run: func(cx *relCell) (any, int, error) { tok, err := cx.c.AccessToken(cx.ctx); return tok, 0, err }},
	{name: "UploadFile", group: "Token and upload", kind: mkRead, path: pathUpload, firstOnPath: true,
		run: func(cx *relCell) (any, int, error) {
			m, err := cx.c.UploadFile(cx.ctx, "m.csv", strings.NewReader("帐号,姓名\nx,y\n"))
			return m, 0, err
		}},
	{name: "SyncUser", group: "Import submissions", kind: mkSubmit, path: pathSyncUser, firstOnPath: true,
		setup: (*relCell).needMedia,
		run: func(cx *relCell) (any, int, error) {
			id, err := cx.c.SyncUser(cx.ctx, wecom.SyncUserRequest{MediaID: cx.mediaID})
			return id, 0, err
		}},
	{name: "ReplaceUser", group: "Import submissions", kind: mkSubmit, path: pathReplaceUser, firstOnPath: true,
		setup: (*relCell).needMedia,
		run: func(cx *relCell) (any, int, error) {
			id, err := cx.c.ReplaceUser(cx.ctx, wecom.ReplaceUserRequest{MediaID: cx.mediaID})
			return id, 0, err
		}},
	{name: "ReplaceParty", group: "Import submissions", kind: mkSubmit, path: pathReplaceParty, firstOnPath: true,
		setup: (*relCell).needMedia,
		run: func(cx *relCell) (any, int, error) {
			id, err := cx.c.ReplaceParty(cx.ctx, wecom.ReplacePartyRequest{MediaID: cx.mediaID})
			return id, 0, err
		}},
	{name: "Invite", group: "Import submissions", kind: mkSubmit, path: "/cgi-bin/batch/invite", firstOnPath: true,
		run: func(cx *relCell) (any, int, error) {
			r, err := cx.c.Invite(cx.ctx, wecom.InviteRequest{Users: []string{"u1"}})
			return r, 0, err
		}},
	{name: "GetBatchResult", group: "Import results and flows", kind: mkRead, path: "/cgi-bin/batch/getresult", firstOnPath: true,
		setup: (*relCell).needBatchJob,
		run: func(cx *relCell) (any, int, error) {
			r, err := cx.c.GetBatchResult(cx.ctx, cx.batchJob)
			return r, 0, err
		}},
	{name: "WaitBatchResult", group: "Import results and flows", kind: mkWait, path: "/cgi-bin/batch/getresult", firstOnPath: true,
		setup: (*relCell).needBatchJob,
		run: func(cx *relCell) (any, int, error) {
			r, err := cx.c.WaitBatchResult(cx.ctx, cx.batchJob, fastWait...)
			return r, 0, err
		}},
	{name: "ImportMembers", group: "Import results and flows", kind: mkImportFlow, path: pathSyncUser,
		run: func(cx *relCell) (any, int, error) {
			r, err := cx.c.ImportMembers(cx.ctx, wecom.ImportSync, relMembers, wecom.ImportOptions{Wait: fastWait})
			return r, 0, err
		}},
	{name: "ImportDepartments", group: "Import results and flows", kind: mkImportFlow, path: pathReplaceParty,
		run: func(cx *relCell) (any, int, error) {
			r, err := cx.c.ImportDepartments(cx.ctx, []wecom.Department{{Name: "研发", ID: 2, ParentID: 1}, {Name: "QA", ID: 7, ParentID: 2}},
				wecom.ImportOptions{Wait: fastWait})
			return r, 0, err
		}},
	{name: "PlanReplaceMembers", group: "Import results and flows", kind: mkPlanFlow, path: "/cgi-bin/export/simple_user",
		downloads: true, firstOnPath: true,
		run: func(cx *relCell) (any, int, error) {
			p, err := cx.c.PlanReplaceMembers(cx.ctx, relMembers)
			return p, 0, err
		}},
	{name: "ExportSimpleUser", group: "Export submissions", kind: mkSubmit, path: "/cgi-bin/export/simple_user", firstOnPath: true,
		run: func(cx *relCell) (any, int, error) {
			id, err := cx.c.ExportSimpleUser(cx.ctx, cx.exportReq())
			return id, 0, err
		}},
	{name: "ExportUser", group: "Export submissions", kind: mkSubmit, path: "/cgi-bin/export/user", firstOnPath: true,
		run: func(cx *relCell) (any, int, error) {
			id, err := cx.c.ExportUser(cx.ctx, cx.exportReq())
			return id, 0, err
		}},
	{name: "ExportDepartment", group: "Export submissions", kind: mkSubmit, path: "/cgi-bin/export/department", firstOnPath: true,
		run: func(cx *relCell) (any, int, error) {
			id, err := cx.c.ExportDepartment(cx.ctx, cx.exportReq())
			return id, 0, err
		}},
	{name: "ExportTagUser", group: "Export submissions", kind: mkSubmit, path: "/cgi-bin/export/taguser", firstOnPath: true,
		run: func(cx *relCell) (any, int, error) {
			id, err := cx.c.ExportTagUser(cx.ctx, 5, cx.exportReq())
			return id, 0, err
		}},
	{name: "GetExportResult", group: "Export results and files", kind: mkRead, path: "/cgi-bin/export/get_result", firstOnPath: true,
		setup: (*relCell).needExport,
		run: func(cx *relCell) (any, int, error) {
			r, err := cx.c.GetExportResult(cx.ctx, cx.exportJob.JobID)
			return r, 0, err
		}},
	{name: "WaitExportResult", group: "Export results and files", kind: mkWait, path: "/cgi-bin/export/get_result", firstOnPath: true,
		setup: (*relCell).needExport,
		run: func(cx *relCell) (any, int, error) {
			r, err := cx.c.WaitExportResult(cx.ctx, cx.exportJob.JobID, fastWait...)
			return r, 0, err
		}},
	{name: "OpenExportFile", group: "Export results and files", kind: mkDownload, path: wecomtest.ExportFilePath, downloads: true,
		setup: (*relCell).needExport,
		run: func(cx *relCell) (any, int, error) {
			rc, err := cx.c.OpenExportFile(cx.ctx, cx.exportRes.DataList[0], cx.exportJob.EncodingAESKey)
			if err != nil {
				return rc, 0, err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				return nil, 0, err
			}
			var doc struct {
				UserList []json.RawMessage `json:"userlist"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				return nil, 0, fmt.Errorf("verified plaintext is not the export JSON: %w", err)
			}
			return b, len(doc.UserList), nil
		}},
	{name: "ExportedUsers", group: "Export results and files", kind: mkDownload, path: wecomtest.ExportFilePath, downloads: true,
		setup: (*relCell).needExport,
		run: func(cx *relCell) (any, int, error) {
			n := 0
			for _, err := range cx.c.ExportedUsers(cx.ctx, cx.exportRes, cx.exportJob.EncodingAESKey) {
				if err != nil {
					return nil, n, err
				}
				n++
			}
			return nil, n, nil
		}},
	{name: "callback handler", group: "Callbacks", kind: mkCallback},
}

// relSeededUsers is how many members every cell's directory holds.
const relSeededUsers = 3

// relSlowDeadline is the ctx timeout of "slow response" cells.
const relSlowDeadline = 300 * time.Millisecond

func retriedByReads(f relFault) bool {
	switch f.kind {
	case fkStatus, fkDrop:
		return true
	case fkCode:
		return f.code == wecom.CodeSystemBusy || f.code == wecom.CodeRateLimited || f.code == wecom.CodeConcurrencyLimited
	}
	return false
}

func retriedBySubmits(f relFault) bool {
	return f.kind == fkCode && (f.code == wecom.CodeRateLimited || f.code == wecom.CodeConcurrencyLimited)
}

func tokenFault(f relFault) bool {
	return f.kind == fkCode && (f.code == wecom.CodeInvalidCredential || f.code == wecom.CodeInvalidAccessToken || f.code == wecom.CodeAccessTokenExpired)
}

// failure is the typed error a fault surfaces as when it is not recovered.
func failure(m relMethod, f relFault) string {
	switch f.kind {
	case fkStatus:
		return fmt.Sprintf("*ResponseError HTTP %d", f.status)
	case fkDrop:
		return "*NetworkError"
	case fkSlow:
		if m.kind == mkWait {
			return "*WaitError (deadline exceeded)"
		}
		return "deadline exceeded"
	case fkTruncJSON, fkHTML200:
		return "*ResponseError HTTP 200"
	case fkCode:
		return fmt.Sprintf("*APIError %d", f.code)
	case fkFileCorrupt:
		return "ErrChecksumMismatch"
	}
	return "?"
}

// relExpect is what the documented rules (DESIGN.md, "Behaviour that users
// rely on"; client.go's WithRetry) predict for a cell: the outcome, the
// requests that reach the faulted path, and the gettoken calls. ok is false
// when the fault does not apply to the method.
type relExpect struct {
	outcome  string
	calls    int
	gettoken int
}

func expectFor(m relMethod, f relFault, maxAttempts int) (relExpect, bool) {
	if m.kind == mkCallback || f.kind == fkCallbackTwice {
		if m.kind == mkCallback && f.kind == fkCallbackTwice {
			return relExpect{outcome: "ok: 200 twice, func ran once"}, true
		}
		return relExpect{}, false
	}
	if (f.kind == fkFileCorrupt || f.kind == fkFileTruncate) && !m.downloads {
		return relExpect{}, false
	}
	ok := func(calls, gettoken int) relExpect { return relExpect{outcome: "ok", calls: calls, gettoken: gettoken} }
	fail := func(calls, gettoken int) relExpect {
		return relExpect{outcome: failure(m, f), calls: calls, gettoken: gettoken}
	}
	persistent := func(retried bool) relExpect {
		switch {
		case !retried:
			return fail(1, 0)
		case f.always:
			return fail(maxAttempts, 0)
		}
		return ok(2, 0)
	}
	// Export file faults and downloads: no token, no JSON envelope.
	switch {
	case f.kind == fkFileCorrupt:
		return relExpect{outcome: "ErrChecksumMismatch", calls: 1}, true
	case f.kind == fkFileTruncate: // resumed with a Range request
		return ok(2, 0), true
	case m.kind == mkDownload:
		switch f.kind {
		case fkRevoke:
			return ok(1, 0), true
		case fkStatus, fkDrop:
			return persistent(true), true
		case fkSlow:
			return fail(1, 0), true
		}
		// A 200 answer that is not the file: the size and md5 check stops it.
		return relExpect{outcome: "ErrChecksumMismatch", calls: 1}, true
	}
	// Token handling is the same for every call that carries a token.
	if m.kind == mkToken {
		switch {
		case f.kind == fkRevoke: // the cached token is handed out; no call
			return ok(0, 0), true
		case tokenFault(f): // from gettoken itself: a config error, no refresh
			return fail(1, 0), true
		}
		return persistent(retriedByReads(f)), true
	}
	if f.kind == fkRevoke {
		if m.firstOnPath {
			return ok(2, 1), true
		}
		return ok(1, 1), true
	}
	if tokenFault(f) { // refreshed once, retried once
		if f.always {
			return fail(2, 1), true
		}
		return ok(2, 1), true
	}
	switch m.kind {
	case mkRead, mkWait:
		return persistent(retriedByReads(f)), true
	case mkImportFlow:
		if f.kind == fkCode && f.code == wecom.CodeImportJobRunning { // waits, resubmits
			return ok(2, 0), true
		}
	}
	return persistent(retriedBySubmits(f)), true
}

// classify names the outcome of a call.
func classify(err error) string {
	if err == nil {
		return "ok"
	}
	var we *wecom.WaitError
	if errors.As(err, &we) {
		inner := "other"
		if errors.Is(err, context.DeadlineExceeded) {
			inner = "deadline exceeded"
		}
		return "*WaitError (" + inner + ")"
	}
	var (
		je *wecom.JobError
		ae *wecom.APIError
		re *wecom.ResponseError
		ne *wecom.NetworkError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, wecom.ErrChecksumMismatch):
		return "ErrChecksumMismatch"
	case errors.As(err, &je):
		return fmt.Sprintf("*JobError %d", je.Code)
	case errors.As(err, &ae):
		return fmt.Sprintf("*APIError %d", ae.Code)
	case errors.As(err, &re):
		return fmt.Sprintf("*ResponseError HTTP %d", re.StatusCode)
	case errors.As(err, &ne):
		return "*NetworkError"
	}
	return "untyped: " + err.Error()
}

func injectRelFault(srv *wecomtest.Server, path string, f relFault) {
	times := 1
	if f.always {
		times = -1
	}
	var wf wecomtest.Fault
	switch f.kind {
	case fkStatus:
		wf = wecomtest.Fault{Status: f.status}
	case fkDrop:
		wf = wecomtest.Fault{Drop: true}
	case fkSlow:
		wf = wecomtest.Fault{Delay: time.Minute}
	case fkTruncJSON:
		wf = wecomtest.Fault{Body: `{"errcode":0,"errmsg":"ok","jobid":"jobid_abc`, ContentType: "application/json; charset=utf-8"}
	case fkHTML200:
		wf = wecomtest.Fault{Body: "<!DOCTYPE html><html><body><h1>Gateway says hi</h1></body></html>"}
	case fkCode:
		wf = wecomtest.Fault{ErrCode: f.code}
	case fkRevoke:
		srv.InvalidateTokens()
		return
	case fkFileCorrupt:
		wf, path = wecomtest.Fault{Corrupt: true}, wecomtest.ExportFilePath
	case fkFileTruncate:
		wf, path = wecomtest.Fault{Truncate: true}, wecomtest.ExportFilePath
	}
	wf.Times = times
	srv.InjectFault(path, wf)
}

type relResult struct {
	method, fault string
	got           string
}

func TestReliabilityMatrix(t *testing.T) {
	// Not parallel: each cell counts goroutines, so nothing else of this
	// package may run meanwhile (parallel tests wait until the sequential
	// ones are done).
	if testing.Short() {
		t.Skip("the full fault matrix is not short")
	}
	policy := wecom.RetryPolicy{MaxAttempts: 3, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	var results []relResult
	start := time.Now()
	cells := 0
	for _, m := range relMethods {
		for _, f := range relFaults {
			want, applies := expectFor(m, f, policy.MaxAttempts)
			if !applies {
				continue
			}
			cells++
			t.Run(m.name+"/"+f.name, func(t *testing.T) {
				got := runRelCell(t, m, f, policy, want)
				results = append(results, relResult{method: m.name, fault: f.name, got: got})
			})
		}
	}
	t.Logf("%d cells in %v", cells, time.Since(start).Round(time.Millisecond))
	if os.Getenv("WECOM_WRITE_RELIABILITY") != "" && !t.Failed() {
		require.NoError(t, os.WriteFile("RELIABILITY.md", renderReliability(results, policy), 0o644))
	}
}

// runRelCell runs one cell and returns its outcome as the table shows it.
func runRelCell(t *testing.T, m relMethod, f relFault, policy wecom.RetryPolicy, want relExpect) string {
	before := runtime.NumGoroutine()
	var got string
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Fatalf("panic: %v", v)
			}
		}()
		if m.kind == mkCallback {
			got = runCallbackTwice(t)
			return
		}
		got = runAPICell(t, m, f, policy, want)
	}()
	// Everything of the cell is closed by now: no goroutine may remain.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutine leak: %d before the cell, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
	return got
}

func runAPICell(t *testing.T, m relMethod, f relFault, policy wecom.RetryPolicy, want relExpect) string {
	srv := wecomtest.NewServer(wecomtest.WithJobStepDelay(0))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// One connection per request: with keep-alive, net/http itself re-sends
	// an idempotent GET once when a reused connection is dropped, which
	// would hide the library's own retries from the counts.
	tr.DisableKeepAlives = true
	defer func() {
		srv.Close()
		tr.CloseIdleConnections()
	}()
	require.NoError(t, srv.AddDepartment(wecomtest.Department{ID: 2, Name: "研发", ParentID: 1}))
	for i := 1; i <= relSeededUsers; i++ {
		require.NoError(t, srv.AddMember(wecomtest.Member{UserID: fmt.Sprintf("u%d", i), Name: fmt.Sprintf("User %d", i),
			Mobile: fmt.Sprintf("1390000000%d", i), Department: []int{1 + i%2}}))
	}
	require.NoError(t, srv.AddTag(wecomtest.Tag{ID: 5, Name: "tag", UserIDs: []string{"u1"}, PartyIDs: []int{2}}))
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL),
		wecom.WithHTTPClient(&http.Client{Transport: tr}), wecom.WithRetry(policy), wecom.WithLogger(logger))
	require.NoError(t, err)

	setupCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cx := &relCell{t: t, srv: srv, c: c, tr: tr, ctx: setupCtx}
	if m.kind != mkToken || f.kind == fkRevoke {
		_, err := c.AccessToken(setupCtx)
		require.NoError(t, err)
	}
	if m.setup != nil {
		m.setup(cx)
	}
	secrets := append([]string{srv.CorpSecret}, issuedTokens(srv)...)
	srv.ResetRequests()
	injectRelFault(srv, m.path, f)

	timeout := 10 * time.Second
	if f.kind == fkSlow {
		timeout = relSlowDeadline
	}
	ctx, cancelRun := context.WithTimeout(context.Background(), timeout)
	defer cancelRun()
	cx.ctx = ctx
	began := time.Now()
	out, records, err := m.run(cx)
	elapsed := time.Since(began)

	checkNoSecrets(t, cx, append(secrets, issuedTokens(srv)...), logs.String(), err)
	got := classify(err)
	faultPath := m.path
	if f.kind == fkFileCorrupt || f.kind == fkFileTruncate {
		faultPath = wecomtest.ExportFilePath
	}
	calls := srv.CallCount(faultPath)
	gettoken := srv.CallCount("/cgi-bin/gettoken")
	if got != want.outcome || calls != want.calls || (m.kind != mkToken && gettoken != want.gettoken) {
		t.Errorf("got %s after %d calls to %s (%d gettoken), want %s after %d (%d gettoken); err: %v",
			got, calls, faultPath, gettoken, want.outcome, want.calls, want.gettoken, err)
	}
	if err != nil {
		// No partial data: a failed call hands out nothing.
		if records != 0 {
			t.Errorf("%d records yielded before the error %v", records, err)
		}
		if out != nil && !reflect.ValueOf(out).IsZero() {
			t.Errorf("a failed call returned data %#v with error %v", out, err)
		}
		if f.kind == fkSlow && elapsed > timeout+time.Second {
			t.Errorf("the call outlived its ctx deadline by %v", elapsed-timeout)
		}
	} else if m.kind == mkDownload && records != relSeededUsers {
		t.Errorf("got %d records, want %d", records, relSeededUsers)
	}
	if calls == 1 {
		return fmt.Sprintf("%s · %d call", got, calls)
	}
	return fmt.Sprintf("%s · %d calls", got, calls)
}

// issuedTokens lists the access_tokens the server has seen.
func issuedTokens(srv *wecomtest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if tok := r.Query.Get("access_token"); tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// checkNoSecrets fails the cell if a token, the corpsecret, an AES key or
// a signed download URL's query appears in a log record or in err's chain.
func checkNoSecrets(t *testing.T, cx *relCell, secrets []string, logs string, err error) {
	t.Helper()
	secrets = append(secrets, cx.secrets...)
	if cx.exportJob != nil {
		secrets = append(secrets, cx.exportJob.EncodingAESKey)
	}
	if cx.exportRes != nil {
		for _, f := range cx.exportRes.DataList {
			if _, q, ok := strings.Cut(f.URL, "?"); ok {
				secrets = append(secrets, q)
			}
		}
	}
	text := logs
	for e := err; e != nil; e = errors.Unwrap(e) {
		text += "\n" + e.Error()
	}
	if logs == "" && !errors.Is(err, context.DeadlineExceeded) {
		t.Error("the debug logger recorded nothing")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("a secret (%d bytes, starts %q) appears in a log record or error", len(s), s[:min(3, len(s))])
		}
	}
}

// runCallbackTwice posts one signed batch_job_result event twice: both are
// answered 200 and the func runs once.
func runCallbackTwice(t *testing.T) string {
	key := wecom.NewEncodingAESKey()
	cc, err := wecom.NewCallbackCrypto("cbToken42", key, wecomtest.DefaultCorpID)
	require.NoError(t, err)
	ran := 0
	h := wecom.NewCallbackHandler(cc, func(context.Context, *wecom.BatchJobEvent) error { ran++; return nil })
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body, sig := signedEvent(t, cc, wecomtest.BatchJobResultXML(wecomtest.DefaultCorpID, time.Now().Unix(), "jobid_twice", "sync_user", 0, "ok"), ts, "n0nce")
	var codes []string
	for range 2 {
		q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"n0nce"}}
		r := httptest.NewRequest(http.MethodPost, "/cb?"+q.Encode(), bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		codes = append(codes, strconv.Itoa(w.Code))
	}
	if codes[0] == "200" && codes[1] == "200" && ran == 1 {
		return "ok: 200 twice, func ran once"
	}
	t.Errorf("statuses %v, func ran %d times", codes, ran)
	return fmt.Sprintf("statuses %v, func ran %d times", codes, ran)
}

// signedEvent encrypts msg as WeCom would post it and returns the body and
// its msg_signature.
func signedEvent(t testing.TB, cc *wecom.CallbackCrypto, msg []byte, ts, nonce string) ([]byte, string) {
	t.Helper()
	body, err := cc.EncryptMessage(msg, ts, nonce)
	require.NoError(t, err)
	var rep struct {
		MsgSignature string `xml:"MsgSignature"`
	}
	require.NoError(t, xml.Unmarshal(body, &rep))
	return body, rep.MsgSignature
}

// renderReliability writes RELIABILITY.md from a run.
func renderReliability(results []relResult, policy wecom.RetryPolicy) []byte {
	got := map[[2]string]string{}
	for _, r := range results {
		got[[2]string{r.method, r.fault}] = r.got
	}
	var b strings.Builder
	b.WriteString(`# Reliability matrix

Generated by ` + "`WECOM_WRITE_RELIABILITY=1 go test -run TestReliabilityMatrix .`" + ` from
` + "`reliability_test.go`" + `; do not edit by hand. The test runs on every ` + "`go test`" + ` and fails
when an outcome differs from what the documented rules predict (DESIGN.md, "Behaviour that
users rely on"), so this table is what the code does, not what it hopes to do.

Each cell is one fresh ` + "`wecomtest`" + ` server and one ` + "`Client`" + ` (retry policy: ` +
		fmt.Sprintf("MaxAttempts %d, delays %v–%v", policy.MaxAttempts, policy.MinDelay, policy.MaxDelay) + `). The fault is injected on the
method's own path for the next call (or for "every call"), after the method's setup (a finished
import or export job, an uploaded file, a warm token). A cell shows the outcome and how many
requests reached the faulted path. Every cell also checks that:

- nothing panicked;
- no goroutine outlived the cell (` + "`runtime.NumGoroutine`" + ` before and after, once the server is
  closed and the client's idle connections are closed);
- a failed call handed out no data: a nil result, an empty job id, and zero records yielded by
  ` + "`ExportedUsers`" + ` before its error;
- a call whose ctx deadline passed (` + "`slow response`" + `: an answer a minute late, ctx of ` + relSlowDeadline.String() + `)
  returned within a second of the deadline;
- gettoken was called exactly once after a token error (refresh once, retry once) and not at all
  otherwise.

Reading the outcomes:

- **ok · 2 calls**: the first call failed and the retry succeeded.
- Reads (getresult, get_result, uploads) retry network errors, HTTP 5xx, -1, 45009 and 45033; the
  error of the last attempt is returned after MaxAttempts.
- Job submissions (syncuser, replaceuser, replaceparty, invite, export/*) retry only 45009 and
  45033, which WeCom answers before executing anything: a 5xx, a dropped connection, a -1 or a
  garbled answer may come after the job was created, so it is reported, not resent.
- 40001/40014/42001 on any call with a token: the token is invalidated (compare and invalidate),
  one gettoken, one retry. From gettoken itself 40001 is a configuration error.
- 302008 (an import is running) is returned by the single submissions; ` + "`ImportMembers`" + ` and
  ` + "`ImportDepartments`" + ` wait and resubmit. 302005 is never resubmitted automatically.
- Export data files are not JSON APIs: anything other than the file's bytes fails the size and
  md5 check (` + "`ErrChecksumMismatch`" + `) before any plaintext is handed out; 5xx and cut
  connections are resumed with a Range request.
- The composite flows are faulted on one step: ` + "`ImportMembers`" + ` on batch/syncuser,
  ` + "`ImportDepartments`" + ` on batch/replaceparty, ` + "`PlanReplaceMembers`" + ` on export/simple_user and on the
  data file download.
- Connections are not kept alive in these cells, so the counts are the library's own attempts.
  With keep-alive, net/http also re-sends an idempotent GET once, by itself, when a reused
  connection is dropped before any answer (never a POST whose body was sent).
- "token revoked mid-flow": every token the server issued is revoked after the setup flow used
  it; ` + "`AccessToken`" + ` hands out its cached token without a call (it does not probe it).
- "—": the fault does not apply to the method.
`)
	var groups []string
	byGroup := map[string][]relMethod{}
	for _, m := range relMethods {
		if _, ok := byGroup[m.group]; !ok {
			groups = append(groups, m.group)
		}
		byGroup[m.group] = append(byGroup[m.group], m)
	}
	for _, g := range groups {
		ms := byGroup[g]
		fmt.Fprintf(&b, "\n## %s\n\n| fault |", g)
		for _, m := range ms {
			fmt.Fprintf(&b, " `%s` |", m.name)
		}
		b.WriteString("\n|---|")
		b.WriteString(strings.Repeat("---|", len(ms)))
		b.WriteString("\n")
		for _, f := range relFaults {
			row := "| " + f.name + " |"
			any := false
			for _, m := range ms {
				cell, ok := got[[2]string{m.name, f.name}]
				if !ok {
					cell = "—"
				} else {
					any = true
				}
				row += " " + cell + " |"
			}
			if any {
				b.WriteString(row + "\n")
			}
		}
	}
	return []byte(b.String())
}
