package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// API paths of the batch import jobs.
const (
	pathSyncUser     = "/cgi-bin/batch/syncuser"
	pathReplaceUser  = "/cgi-bin/batch/replaceuser"
	pathReplaceParty = "/cgi-bin/batch/replaceparty"
	pathBatchResult  = "/cgi-bin/batch/getresult"
	pathInvite       = "/cgi-bin/batch/invite"
)

// MaxCallbackTokenLen is the longest JobCallback.Token accepted: WeCom's
// admin console issues callback tokens of at most 32 letters and digits.
const MaxCallbackTokenLen = 32

// JobCallback asks WeCom to push the batch_job_result event of an import
// job to URL when the job ends (see
// https://developer.work.weixin.qq.com/document/path/90973). Token and
// EncodingAESKey are the callback's signature token and AES key: the same
// values a [CallbackCrypto] for that URL is built with.
//
// URL must be an absolute http or https URL, Token 1 to 32 ASCII letters
// and digits, EncodingAESKey 43 characters of [A-Za-z0-9]
// (errors.Is(err, ErrInvalidAESKey) otherwise). They are checked before any
// network call.
type JobCallback struct {
	URL            string
	Token          string
	EncodingAESKey string
}

// jobCallbackJSON is JobCallback on the wire. The key of the AES key is
// "encodingaeskey" (no underscore) in import jobs, unlike the export APIs.
type jobCallbackJSON struct {
	URL            string `json:"url"`
	Token          string `json:"token"`
	EncodingAESKey string `json:"encodingaeskey"`
}

// SyncUserRequest is the body of batch/syncuser
// (https://developer.work.weixin.qq.com/document/path/91130).
//
// ToInvite nil leaves WeCom's default (invite new members); a pointer to
// false turns invitations off, a pointer to true asks for them explicitly.
// Callback nil means no push: poll with [Client.WaitBatchResult].
type SyncUserRequest struct {
	MediaID  string
	ToInvite *bool
	Callback *JobCallback
}

// ReplaceUserRequest is the body of batch/replaceuser
// (https://developer.work.weixin.qq.com/document/path/91131). Its fields
// mean what they mean in [SyncUserRequest].
type ReplaceUserRequest struct {
	MediaID  string
	ToInvite *bool
	Callback *JobCallback
}

// ReplacePartyRequest is the body of batch/replaceparty
// (https://developer.work.weixin.qq.com/document/path/91132). It has no
// ToInvite: replacing departments creates no member.
type ReplacePartyRequest struct {
	MediaID  string
	Callback *JobCallback
}

// importJobBody is the JSON body of the three import submissions.
// ToInvite is nil (so absent) for replaceparty.
type importJobBody struct {
	MediaID  string           `json:"media_id"`
	ToInvite *bool            `json:"to_invite,omitempty"`
	Callback *jobCallbackJSON `json:"callback,omitempty"`
}

type importJobIDResponse struct {
	JobID string `json:"jobid"`
}

// SyncUser submits an incremental member import of the uploaded CSV
// MediaID (batch/syncuser, https://developer.work.weixin.qq.com/document/path/91130)
// and returns the job id. Members in the file are created or updated
// (only the columns present in the file change); members not in the file
// are left alone.
//
// The request is checked before any network call; a bad one gives an error
// naming the field and wrapping ErrRequired, ErrInvalidValue or
// ErrInvalidAESKey. The submission is
// retried only where WeCom surely did not run it (45009, 45033, a stale
// token). A 302008 (another import is running) is returned as an
// *[APIError]; [Client.ImportMembers] waits and resubmits instead.
func (c *Client) SyncUser(ctx context.Context, req SyncUserRequest) (jobID string, err error) {
	body, err := importBody("SyncUser", req.MediaID, req.ToInvite, req.Callback)
	if err != nil {
		return "", err
	}
	return c.submitImport(ctx, pathSyncUser, body)
}

// ReplaceUser submits a full replace of the member directory by the
// uploaded CSV MediaID (batch/replaceuser,
// https://developer.work.weixin.qq.com/document/path/91131) and returns
// the job id. Members in the file are created or overwritten; members not
// in the file are DELETED.
//
// WeCom aborts the job with 45026 when it would delete more than 50
// members and more than 20% of the headcount, or fewer than 50 and more
// than 80%; that failure comes back from [Client.GetBatchResult] as a
// *[JobError] (or, should WeCom refuse the submission itself, as an
// *[APIError]), and either matches errors.Is(err, ErrTooManyDeletes).
// Use [Client.PlanReplaceMembers] or [Client.ImportMembers] with
// ImportOptions.MaxDeletes to check before submitting.
func (c *Client) ReplaceUser(ctx context.Context, req ReplaceUserRequest) (string, error) {
	body, err := importBody("ReplaceUser", req.MediaID, req.ToInvite, req.Callback)
	if err != nil {
		return "", err
	}
	return c.submitImport(ctx, pathReplaceUser, body)
}

// ReplaceParty submits a full replace of the department tree by the
// uploaded CSV MediaID (batch/replaceparty,
// https://developer.work.weixin.qq.com/document/path/91132) and returns
// the job id. Departments in the file are created or modified; departments
// not in the file are deleted if they are empty, and kept (until a later
// member import empties them) if they still have members or
// sub-departments. No member is moved or deleted.
func (c *Client) ReplaceParty(ctx context.Context, req ReplacePartyRequest) (string, error) {
	body, err := importBody("ReplaceParty", req.MediaID, nil, req.Callback)
	if err != nil {
		return "", err
	}
	return c.submitImport(ctx, pathReplaceParty, body)
}

// importBody validates and builds a submission body.
func importBody(op, mediaID string, toInvite *bool, cb *JobCallback) (importJobBody, error) {
	if err := validMediaID(mediaID); err != nil {
		return importJobBody{}, fmt.Errorf("wecom: %s: %w", op, err)
	}
	body := importJobBody{MediaID: mediaID}
	if toInvite != nil {
		v := *toInvite // copy: the caller may reuse its pointer
		body.ToInvite = &v
	}
	if cb != nil {
		if err := validJobCallback(cb); err != nil {
			return importJobBody{}, fmt.Errorf("wecom: %s: %w", op, err)
		}
		body.Callback = &jobCallbackJSON{URL: cb.URL, Token: cb.Token, EncodingAESKey: cb.EncodingAESKey}
	}
	return body, nil
}

func validMediaID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("MediaID: %w (upload the CSV with UploadFile first)", ErrRequired)
	case len(id) > 256:
		return fmt.Errorf("MediaID: %w: longer than 256 bytes", ErrInvalidValue)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("MediaID: %w: contains a space or control character", ErrInvalidValue)
		}
	}
	return nil
}

func validJobCallback(cb *JobCallback) error {
	u, err := url.Parse(cb.URL)
	switch {
	case cb.URL == "":
		return fmt.Errorf("Callback.URL: %w", ErrRequired)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !utf8.ValidString(cb.URL) ||
		strings.ContainsAny(cb.URL, " \t\r\n"):
		return fmt.Errorf("Callback.URL: %w: want an absolute http or https URL", ErrInvalidValue)
	case cb.Token == "":
		return fmt.Errorf("Callback.Token: %w", ErrRequired)
	case len(cb.Token) > MaxCallbackTokenLen:
		return fmt.Errorf("Callback.Token: %w: longer than %d characters", ErrInvalidValue, MaxCallbackTokenLen)
	}
	for i := 0; i < len(cb.Token); i++ {
		if !isASCIIAlnum(cb.Token[i]) {
			return fmt.Errorf("Callback.Token: %w: want ASCII letters and digits only", ErrInvalidValue)
		}
	}
	if !wxcrypto.ValidKey(cb.EncodingAESKey) {
		// Never echo the key.
		return fmt.Errorf("Callback.EncodingAESKey: %w", ErrInvalidAESKey)
	}
	return nil
}

// submitImport POSTs an import job and returns its job id.
func (c *Client) submitImport(ctx context.Context, path string, body importJobBody) (string, error) {
	var resp importJobIDResponse
	if err := c.postJSON(ctx, path, body, callSubmit, &resp); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == CodeDeletionProtection {
			// WeCom may apply its deletion guard at submission time.
			return "", fmt.Errorf("%w (%w)", err, ErrTooManyDeletes)
		}
		return "", err
	}
	if err := validJobID(resp.JobID); err != nil {
		return "", &ResponseError{Path: path, StatusCode: http.StatusOK, Reason: "no usable jobid in the response: " + err.Error()}
	}
	return resp.JobID, nil
}

// BatchStatus is the state of an import job in batch/getresult.
type BatchStatus int

// BatchStatus values (https://developer.work.weixin.qq.com/document/path/91133).
const (
	BatchStarted BatchStatus = 1 // accepted, not yet running
	BatchRunning BatchStatus = 2 // in progress
	BatchDone    BatchStatus = 3 // finished; BatchResult.Items are final
)

// String returns "started", "running", "done", or "BatchStatus(n)".
func (s BatchStatus) String() string {
	switch s {
	case BatchStarted:
		return "started"
	case BatchRunning:
		return "running"
	case BatchDone:
		return "done"
	}
	return "BatchStatus(" + strconv.Itoa(int(s)) + ")"
}

// PartyAction says what a replace_party job did to one department. It is a
// bit mask: 6 is PartyRenamed|PartyMoved. WeCom documents no bit for a
// deletion.
type PartyAction int

// PartyAction bits (https://developer.work.weixin.qq.com/document/path/91133).
const (
	PartyCreated   PartyAction = 1 // the department was created
	PartyRenamed   PartyAction = 2 // its name changed
	PartyMoved     PartyAction = 4 // its parent changed
	PartyReordered PartyAction = 8 // its order changed
)

var partyActionNames = [...]struct {
	bit  PartyAction
	name string
}{{PartyCreated, "created"}, {PartyRenamed, "renamed"}, {PartyMoved, "moved"}, {PartyReordered, "reordered"}}

// Has reports whether every bit of b is set in a. Has(0) is false.
func (a PartyAction) Has(b PartyAction) bool { return b != 0 && a&b == b }

// String lists the set bits, "renamed|moved" say; 0 is "none" and unknown
// bits are shown in hex.
func (a PartyAction) String() string {
	if a == 0 {
		return "none"
	}
	var parts []string
	rest := a
	for _, n := range partyActionNames {
		if a&n.bit != 0 {
			parts = append(parts, n.name)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		parts = append(parts, "0x"+strconv.FormatInt(int64(rest), 16))
	}
	return strings.Join(parts, "|")
}

// BatchResult is an import job's state and, once Status is BatchDone, its
// per-row outcome (batch/getresult,
// https://developer.work.weixin.qq.com/document/path/91133).
//
// Type is "sync_user", "replace_user" or "replace_party". Total is the
// number of rows the job processed; Percentage is 100 when it is done.
// A row that failed is an item with a non-zero ErrCode; such rows do not
// make the job fail: see [BatchResult.Failed].
type BatchResult struct {
	Status     BatchStatus
	Type       string
	Total      int
	Percentage int
	Items      []BatchItem
}

// Job types of BatchResult.Type and JobError.JobType.
const (
	JobTypeSyncUser     = "sync_user"
	JobTypeReplaceUser  = "replace_user"
	JobTypeReplaceParty = "replace_party"
)

// Done reports whether the job has finished.
func (r *BatchResult) Done() bool { return r != nil && r.Status == BatchDone }

// Failed returns the items whose ErrCode is not 0, in order; nil if none.
func (r *BatchResult) Failed() []BatchItem {
	if r == nil {
		return nil
	}
	var out []BatchItem
	for _, it := range r.Items {
		if it.ErrCode != 0 {
			out = append(out, it)
		}
	}
	return out
}

// BatchItem is one row's outcome. A user job sets UserID; a party job sets
// PartyID and Action. ErrCode 0 is success; otherwise it is a WeCom error
// code such as 60104 (mobile already used) or 60123 (bad department id).
type BatchItem struct {
	UserID  string
	PartyID int
	Action  PartyAction
	ErrCode int
	ErrMsg  string
}

// Err returns nil for a successful row and an *[ItemError] otherwise;
// IsCode(item.Err(), CodeMobileExists) and errors.As to *APIError work on
// it.
func (i BatchItem) Err() error {
	if i.ErrCode == 0 {
		return nil
	}
	return &ItemError{UserID: i.UserID, PartyID: i.PartyID, Err: &APIError{Code: i.ErrCode, Message: i.ErrMsg, Path: pathBatchResult}}
}

// ItemError is the failure of one row of an import job: a member (UserID)
// or a department (PartyID). It unwraps to an *[APIError] with the row's
// code.
type ItemError struct {
	UserID  string
	PartyID int
	Err     *APIError
}

// Error names the row and its code.
func (e *ItemError) Error() string {
	who := "user " + strconv.Quote(e.UserID)
	if e.UserID == "" {
		who = "department " + strconv.Itoa(e.PartyID)
	}
	return fmt.Sprintf("wecom: import row %s: errcode %d: %s", who, e.Err.Code, e.Err.Message)
}

// Unwrap returns the row's *APIError.
func (e *ItemError) Unwrap() error { return e.Err }

// batchResultResponse is batch/getresult on the wire. Numbers are decoded
// leniently (WeCom is loose about numbers versus strings).
type batchResultResponse struct {
	ErrCode    flexInt `json:"errcode"`
	ErrMsg     string  `json:"errmsg"`
	Status     flexInt `json:"status"`
	Type       string  `json:"type"`
	Total      flexInt `json:"total"`
	Percentage flexInt `json:"percentage"`
	Result     []struct {
		UserID  string  `json:"userid"`
		PartyID flexInt `json:"partyid"`
		Action  flexInt `json:"action"`
		ErrCode flexInt `json:"errcode"`
		ErrMsg  string  `json:"errmsg"`
	} `json:"result"`
}

// GetBatchResult reads the state of import job jobID (batch/getresult,
// https://developer.work.weixin.qq.com/document/path/91133).
//
// A job that ran and failed as a whole (a top-level errcode next to its
// type, such as 45026 deletion guard or 302005 import failure) is a
// *[JobError]. An unknown job (40088) or one whose result WeCom no longer
// keeps (40089: only the last 5 are kept) is an *[APIError]. The call is a
// read: it is retried on network errors, HTTP 5xx, -1, 45009 and 45033.
func (c *Client) GetBatchResult(ctx context.Context, jobID string) (*BatchResult, error) {
	if err := validJobID(jobID); err != nil {
		return nil, fmt.Errorf("wecom: GetBatchResult: %w", err)
	}
	var resp batchResultResponse
	err := c.getJSON(ctx, pathBatchResult, url.Values{"jobid": {jobID}}, &resp)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && resp.Type != "" {
			return nil, &JobError{JobID: jobID, JobType: resp.Type, Code: ae.Code, Message: ae.Message}
		}
		return nil, err
	}
	r := &BatchResult{
		Status:     BatchStatus(resp.Status),
		Type:       resp.Type,
		Total:      int(resp.Total),
		Percentage: int(resp.Percentage),
	}
	if len(resp.Result) > 0 {
		r.Items = make([]BatchItem, len(resp.Result))
		for i, it := range resp.Result {
			r.Items[i] = BatchItem{
				UserID:  it.UserID,
				PartyID: int(it.PartyID),
				Action:  PartyAction(it.Action),
				ErrCode: int(it.ErrCode),
				ErrMsg:  it.ErrMsg,
			}
		}
	}
	return r, nil
}

// WaitBatchResult polls [Client.GetBatchResult] until job jobID is done
// and returns its result. The delay between polls grows exponentially with
// jitter ([WithPollDelay]; default 500 ms to 10 s); [WithProgress] sees the
// percentage every time it changes.
//
// A job that failed as a whole ends the wait with its *[JobError]. When ctx
// ends first, the error is a *[WaitError] carrying the last status and
// percentage seen, and wrapping ctx's error.
func (c *Client) WaitBatchResult(ctx context.Context, jobID string, opts ...WaitOption) (*BatchResult, error) {
	if err := validJobID(jobID); err != nil {
		return nil, fmt.Errorf("wecom: WaitBatchResult: %w", err)
	}
	w, err := newWaitConfig(opts)
	if err != nil {
		return nil, err
	}
	var last *BatchResult
	err = c.waitJob(ctx, jobID, w, func(ctx context.Context) (jobState, error) {
		r, err := c.GetBatchResult(ctx, jobID)
		if err != nil {
			return jobState{}, err
		}
		last = r
		return jobState{done: r.Status == BatchDone, status: int(r.Status), percentage: r.Percentage}, nil
	})
	if err != nil {
		return nil, err
	}
	return last, nil
}

// Invite limits of batch/invite.
const (
	MaxInviteUsers   = 1000
	MaxInviteParties = 100
	MaxInviteTags    = 100
)

// InviteRequest names who batch/invite should invite
// (https://developer.work.weixin.qq.com/document/path/90975): at most 1000
// userids, 100 department ids and 100 tag ids, and at least one of them.
type InviteRequest struct {
	Users   []string
	Parties []int
	Tags    []int
}

// InviteResult lists the targets WeCom found invalid; the valid ones were
// invited all the same. A list is nil when nothing in it was invalid.
type InviteResult struct {
	InvalidUsers   []string
	InvalidParties []int
	InvalidTags    []int
}

type inviteBody struct {
	User  []string `json:"user,omitempty"`
	Party []int    `json:"party,omitempty"`
	Tag   []int    `json:"tag,omitempty"`
}

type inviteResponse struct {
	InvalidUser  []string  `json:"invaliduser"`
	InvalidParty []flexInt `json:"invalidparty"`
	InvalidTag   []flexInt `json:"invalidtag"`
}

// Invite sends an invitation to the members, departments and tags of req
// (batch/invite, https://developer.work.weixin.qq.com/document/path/90975).
// Limits are checked before any network call. Since it sends
// notifications, it is treated as a submission: not retried blindly.
// Success does not guarantee delivery: WeCom checks its frequency limits
// afterwards.
func (c *Client) Invite(ctx context.Context, req InviteRequest) (*InviteResult, error) {
	switch {
	case len(req.Users) == 0 && len(req.Parties) == 0 && len(req.Tags) == 0:
		return nil, fmt.Errorf("wecom: Invite: %w: at least one of Users, Parties and Tags", ErrRequired)
	case len(req.Users) > MaxInviteUsers:
		return nil, fmt.Errorf("wecom: Invite: Users: %w: %d userids, at most %d", ErrInvalidValue, len(req.Users), MaxInviteUsers)
	case len(req.Parties) > MaxInviteParties:
		return nil, fmt.Errorf("wecom: Invite: Parties: %w: %d ids, at most %d", ErrInvalidValue, len(req.Parties), MaxInviteParties)
	case len(req.Tags) > MaxInviteTags:
		return nil, fmt.Errorf("wecom: Invite: Tags: %w: %d ids, at most %d", ErrInvalidValue, len(req.Tags), MaxInviteTags)
	}
	for i, u := range req.Users {
		if u == "" || len(u) > 64 || strings.ContainsAny(u, " \t\r\n") {
			return nil, fmt.Errorf("wecom: Invite: Users[%d]: %w: %.70q is not a userid", i, ErrInvalidValue, u)
		}
	}
	for i, id := range req.Parties {
		if id <= 0 {
			return nil, fmt.Errorf("wecom: Invite: Parties[%d]: %w: department id %d is not positive", i, ErrInvalidValue, id)
		}
	}
	for i, id := range req.Tags {
		if id <= 0 {
			return nil, fmt.Errorf("wecom: Invite: Tags[%d]: %w: tag id %d is not positive", i, ErrInvalidValue, id)
		}
	}
	var resp inviteResponse
	body := inviteBody{User: req.Users, Party: req.Parties, Tag: req.Tags}
	if err := c.postJSON(ctx, pathInvite, body, callSubmit, &resp); err != nil {
		return nil, err
	}
	res := &InviteResult{}
	if len(resp.InvalidUser) > 0 {
		res.InvalidUsers = resp.InvalidUser
	}
	for _, id := range resp.InvalidParty {
		res.InvalidParties = append(res.InvalidParties, int(id))
	}
	for _, id := range resp.InvalidTag {
		res.InvalidTags = append(res.InvalidTags, int(id))
	}
	return res, nil
}
