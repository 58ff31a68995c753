package wecom

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// ImportMode chooses how [Client.ImportMembers] merges the file into the
// directory.
type ImportMode int

// Import modes. The zero ImportMode is invalid, so that a forgotten mode
// is an error rather than a replace.
const (
	// ImportSync creates and updates the members in the file and leaves
	// every other member alone (batch/syncuser).
	ImportSync ImportMode = iota + 1
	// ImportReplace makes the directory's members exactly those in the
	// file: members not in the file are deleted (batch/replaceuser).
	ImportReplace
)

// String returns "sync", "replace" or "ImportMode(n)".
func (m ImportMode) String() string {
	switch m {
	case ImportSync:
		return "sync"
	case ImportReplace:
		return "replace"
	}
	return "ImportMode(" + strconv.Itoa(int(m)) + ")"
}

// NoDeleteGuard as ImportOptions.MaxDeletes turns the client-side deletion
// guard of a replace import off: only WeCom's own guard (45026) remains.
const NoDeleteGuard = -1

// ImportOptions configures [Client.ImportMembers] and
// [Client.ImportDepartments].
//
// MaxDeletes is the client-side deletion guard of ImportMembers with
// ImportReplace. Its zero value is the safe one: 0 means "delete nobody".
// Before anything is uploaded the directory is exported and compared with
// the file ([Client.PlanReplaceMembers]); when more than MaxDeletes members
// would be deleted, the import is refused with a *[TooManyDeletesError]
// (errors.Is(err, ErrTooManyDeletes)) and nothing is submitted. Set it to
// the number of deletions you accept, or to NoDeleteGuard (-1) to skip the
// check (and the export it costs). Values below -1 are an error. It is
// ignored by ImportSync and ImportDepartments, which delete no member.
// MaxDeletes does not replace WeCom's own guard: a job within MaxDeletes
// whose plan has TripsGuard set is still submitted, and WeCom aborts it
// with a 45026 *[JobError].
//
// ToInvite and Callback are passed to the submission (see
// [SyncUserRequest]); ToInvite is ignored by ImportDepartments. Wait
// configures the wait for the job and, with the same delays, the wait for
// another import to finish when WeCom answers 302008.
type ImportOptions struct {
	ToInvite   *bool
	Callback   *JobCallback
	MaxDeletes int // 0 (the zero value): refuse any deletion; -1 (NoDeleteGuard): no client-side guard
	Wait       []WaitOption
}

// TooManyDeletesError is a replace import that [Client.ImportMembers]
// refused before submitting it, because it would delete more than
// ImportOptions.MaxDeletes members. Plan says who would have been created,
// updated and deleted. It matches errors.Is(err, ErrTooManyDeletes).
type TooManyDeletesError struct {
	Plan *ReplacePlan
	Max  int
}

// Error says how many would be deleted and how many were allowed.
func (e *TooManyDeletesError) Error() string {
	n := 0
	if e.Plan != nil {
		n = len(e.Plan.Delete)
	}
	return fmt.Sprintf("wecom: replace import refused: it would delete %d members, MaxDeletes is %d", n, e.Max)
}

// Unwrap returns ErrTooManyDeletes.
func (e *TooManyDeletesError) Unwrap() error { return ErrTooManyDeletes }

// ImportMembers imports members in one call: it validates them (a
// *[CSVError] naming the row and column, before any network call), writes
// the member CSV template, uploads it as "members.csv", submits a
// batch/syncuser (ImportSync) or batch/replaceuser (ImportReplace) job,
// waits for it and returns its result.
//
// In replace mode the zero ImportOptions refuses to delete anyone: see
// ImportOptions.MaxDeletes. The plan is made just before the upload, so a
// member added to the directory in between would still be deleted.
//
// When WeCom answers 302008 (another import job is running), ImportMembers
// waits with the backoff of opts.Wait and resubmits the same upload until
// it is accepted or ctx ends.
//
// Rows that failed do not make the call fail: they are the result's items
// with a non-zero ErrCode ([BatchResult.Failed]). A job that failed as a
// whole is a *[JobError] (WeCom's deletion guard 45026 also matches
// errors.Is(err, ErrTooManyDeletes)); a wait cut short by ctx is a
// *[WaitError].
// See https://developer.work.weixin.qq.com/document/path/90979.
func (c *Client) ImportMembers(ctx context.Context, mode ImportMode, members []Member, opts ImportOptions) (*BatchResult, error) {
	if mode != ImportSync && mode != ImportReplace {
		return nil, fmt.Errorf("wecom: ImportMembers: mode: %w: %v", ErrInvalidValue, mode)
	}
	w, err := checkImportOptions("ImportMembers", opts)
	if err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("wecom: ImportMembers: %w: no members", ErrRequired)
	}
	if err := ValidateMembers(members); err != nil {
		return nil, err
	}
	if mode == ImportReplace && opts.MaxDeletes >= 0 {
		plan, err := c.planReplaceMembers(ctx, members, w)
		if err != nil {
			return nil, err
		}
		if len(plan.Delete) > opts.MaxDeletes {
			return nil, &TooManyDeletesError{Plan: plan, Max: opts.MaxDeletes}
		}
	}
	var buf bytes.Buffer
	if err := WriteMembersCSV(&buf, members); err != nil {
		return nil, err
	}
	media, err := c.UploadFile(ctx, "members.csv", bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, err
	}
	submit := func(ctx context.Context) (string, error) {
		if mode == ImportSync {
			return c.SyncUser(ctx, SyncUserRequest{MediaID: media.MediaID, ToInvite: opts.ToInvite, Callback: opts.Callback})
		}
		return c.ReplaceUser(ctx, ReplaceUserRequest{MediaID: media.MediaID, ToInvite: opts.ToInvite, Callback: opts.Callback})
	}
	jobID, err := c.submitWhenFree(ctx, w, submit)
	if err != nil {
		return nil, err
	}
	return c.WaitBatchResult(ctx, jobID, opts.Wait...)
}

// ImportDepartments replaces the department tree in one call: it validates
// depts (a *[CSVError], before any network call), writes the department
// CSV template, uploads it as "departments.csv", submits a
// batch/replaceparty job, waits for it and returns its result.
//
// Departments not in the file are deleted only if they are empty; no
// member is moved or deleted. 302008 is handled as in
// [Client.ImportMembers]. To mirror a whole directory, import the
// departments first and the members second.
// See https://developer.work.weixin.qq.com/document/path/91132.
func (c *Client) ImportDepartments(ctx context.Context, depts []Department, opts ImportOptions) (*BatchResult, error) {
	w, err := checkImportOptions("ImportDepartments", opts)
	if err != nil {
		return nil, err
	}
	if len(depts) == 0 {
		return nil, fmt.Errorf("wecom: ImportDepartments: %w: no departments", ErrRequired)
	}
	if err := ValidateDepartments(depts); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := WriteDepartmentsCSV(&buf, depts); err != nil {
		return nil, err
	}
	media, err := c.UploadFile(ctx, "departments.csv", bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, err
	}
	jobID, err := c.submitWhenFree(ctx, w, func(ctx context.Context) (string, error) {
		return c.ReplaceParty(ctx, ReplacePartyRequest{MediaID: media.MediaID, Callback: opts.Callback})
	})
	if err != nil {
		return nil, err
	}
	return c.WaitBatchResult(ctx, jobID, opts.Wait...)
}

// checkImportOptions validates opts before any network call and returns
// the wait configuration.
func checkImportOptions(op string, opts ImportOptions) (waitConfig, error) {
	if opts.MaxDeletes < NoDeleteGuard {
		return waitConfig{}, fmt.Errorf("wecom: %s: MaxDeletes: %w: %d (want >= 0, or -1 for no guard)", op, ErrInvalidValue, opts.MaxDeletes)
	}
	if opts.Callback != nil {
		if err := validJobCallback(opts.Callback); err != nil {
			return waitConfig{}, fmt.Errorf("wecom: %s: %w", op, err)
		}
	}
	w, err := newWaitConfig(opts.Wait)
	if err != nil {
		return waitConfig{}, err
	}
	return w, nil
}

// submitWhenFree submits a job; while WeCom answers 302008 (another import
// is running) it waits, with jittered exponential backoff, and submits
// again. WeCom did not run a submission it refused with 302008, so
// repeating it is safe; the uploaded media_id stays valid for 3 days.
func (c *Client) submitWhenFree(ctx context.Context, w waitConfig, submit func(context.Context) (string, error)) (string, error) {
	var busy error // the last 302008
	for attempt := 1; ; attempt++ {
		jobID, err := submit(ctx)
		if err == nil {
			return jobID, nil
		}
		if !IsCode(err, CodeImportJobRunning) {
			if busy != nil && ctx.Err() != nil {
				// ctx ended during a resubmission: say what we were waiting for.
				return "", fmt.Errorf("wecom: waiting for the running import job to finish: %w (last error: %w)", err, busy)
			}
			return "", err
		}
		busy = err
		d := jitterBackoff(w.minDelay, w.maxDelay, attempt)
		c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: another import job is running, waiting to resubmit",
			slog.Int("attempt", attempt), slog.Duration("delay", d))
		if serr := sleepCtx(ctx, d); serr != nil {
			return "", fmt.Errorf("wecom: waiting for the running import job to finish: %w (last error: %w)", serr, err)
		}
	}
}

// ReplacePlan is what a replace import of a member list would do to the
// current directory ([Client.PlanReplaceMembers]). Create, Update and
// Delete are userids, sorted; a userid in Create or Update is spelled as in
// the file, one in Delete as in the directory. Current is the directory's
// headcount. TripsGuard reports whether WeCom's own deletion guard (45026)
// would abort the job: more than 50 deletions that are also more than 20%
// of Current, or fewer than 50 that are more than 80% of Current.
type ReplacePlan struct {
	Create, Update, Delete []string
	Current                int
	TripsGuard             bool
}

// tripsDeletionGuard is WeCom's replaceuser guard as documented in
// https://developer.work.weixin.qq.com/document/path/91131 ("more than",
// read literally; 50 deletions never trip it).
func tripsDeletionGuard(del, cur int) bool {
	return (del > 50 && del*100 > cur*20) || (del < 50 && del*100 > cur*80)
}

// planReplace compares the userids of a file with the directory's.
// Userids are compared case-insensitively, as WeCom does.
func planReplace(members []Member, current []string) *ReplacePlan {
	inDir := make(map[string]struct{}, len(current))
	for _, id := range current {
		inDir[strings.ToLower(id)] = struct{}{}
	}
	inFile := make(map[string]struct{}, len(members))
	p := &ReplacePlan{Current: len(current)}
	for _, m := range members {
		k := strings.ToLower(m.UserID)
		if _, dup := inFile[k]; dup {
			continue
		}
		inFile[k] = struct{}{}
		if _, ok := inDir[k]; ok {
			p.Update = append(p.Update, m.UserID)
		} else {
			p.Create = append(p.Create, m.UserID)
		}
	}
	for _, id := range current {
		if _, ok := inFile[strings.ToLower(id)]; !ok {
			p.Delete = append(p.Delete, id)
		}
	}
	slices.Sort(p.Create)
	slices.Sort(p.Update)
	slices.Sort(p.Delete)
	p.TripsGuard = tripsDeletionGuard(len(p.Delete), p.Current)
	return p
}

// PlanReplaceMembers says what a replace import of members would do,
// without changing anything: it validates members (a *[CSVError]), exports
// the userids of the directory (export/simple_user, with a fresh key, polled
// with the default delays), and returns who would be created, updated and
// deleted, and whether WeCom's deletion guard would abort the job. Userids
// are compared case-insensitively, as WeCom does.
//
// The export covers the members the secret can see: with the contact-sync
// secret, the whole directory. See
// https://developer.work.weixin.qq.com/document/path/94849 and
// https://developer.work.weixin.qq.com/document/path/91131.
func (c *Client) PlanReplaceMembers(ctx context.Context, members []Member) (*ReplacePlan, error) {
	w, _ := newWaitConfig(nil)
	return c.planReplaceMembers(ctx, members, w)
}

func (c *Client) planReplaceMembers(ctx context.Context, members []Member, w waitConfig) (*ReplacePlan, error) {
	if err := ValidateMembers(members); err != nil {
		return nil, err
	}
	current, err := c.directoryUserIDs(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("wecom: exporting the directory for a replace plan: %w", err)
	}
	return planReplace(members, current), nil
}

// directoryUserIDs exports the userid of every member the app can see
// (export/simple_user with a fresh key), waiting with the delays of w.
func (c *Client) directoryUserIDs(ctx context.Context, w waitConfig) ([]string, error) {
	job, err := c.StartExport(ctx, ExportKindSimpleUser, 0, ExportRequest{})
	if err != nil {
		return nil, err
	}
	res, err := c.WaitExportResult(ctx, job.JobID, WithPollDelay(w.minDelay, w.maxDelay))
	if err != nil {
		return nil, err
	}
	var ids []string
	for u, err := range c.ExportedUsers(ctx, res, job.EncodingAESKey) {
		if err != nil {
			return nil, err
		}
		ids = append(ids, u.UserID)
	}
	return ids, nil
}
