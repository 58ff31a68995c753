package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// Export API paths.
const (
	pathExportSimpleUser = "/cgi-bin/export/simple_user"
	pathExportUser       = "/cgi-bin/export/user"
	pathExportDepartment = "/cgi-bin/export/department"
	pathExportTagUser    = "/cgi-bin/export/taguser"
	pathExportGetResult  = "/cgi-bin/export/get_result"
)

// Limits of ExportRequest.BlockSize (records per data file).
const (
	MinExportBlockSize = 10_000
	MaxExportBlockSize = 1_000_000
)

// ExportRequest is the body of an export job
// (https://developer.work.weixin.qq.com/document/path/94849,
// https://developer.work.weixin.qq.com/document/path/94953).
//
// EncodingAESKey is the key the data files are encrypted with: 43
// characters of [A-Za-z0-9]. Empty means a fresh random key, but the four
// ExportXxx methods then cannot tell you which key they chose, so you could
// not decrypt the result: pass NewEncodingAESKey() yourself, or use
// StartExport, whose ExportJob carries the key it used.
//
// BlockSize is the number of records per data file, between
// MinExportBlockSize and MaxExportBlockSize; 0 leaves it to WeCom (10^6).
type ExportRequest struct {
	EncodingAESKey string
	BlockSize      int
}

// WithExportTempDir sets the directory where OpenExportFile stages data
// files larger than 4 MiB (default os.TempDir()). A data file can be
// hundreds of MB; the staged copy is removed when the file is closed.
func WithExportTempDir(dir string) Option {
	return func(c *config) { c.exportDir = dir }
}

// NewEncodingAESKey returns a fresh random EncodingAESKey (43 characters of
// [A-Za-z0-9], from crypto/rand), suitable for ExportRequest.
func NewEncodingAESKey() string { return wxcrypto.NewKey() }

// ExportKind names one of the four export APIs
// (https://developer.work.weixin.qq.com/document/path/94849,
// https://developer.work.weixin.qq.com/document/path/94953).
type ExportKind int

// Export kinds.
const (
	ExportKindSimpleUser ExportKind = iota + 1 // export/simple_user: members, basic fields
	ExportKindUser                             // export/user: members, all fields
	ExportKindDepartment                       // export/department
	ExportKindTagUser                          // export/taguser: one tag's members and departments
)

// String returns the kind as the API path names it ("simple_user", …).
func (k ExportKind) String() string {
	switch k {
	case ExportKindSimpleUser:
		return "simple_user"
	case ExportKindUser:
		return "user"
	case ExportKindDepartment:
		return "department"
	case ExportKindTagUser:
		return "taguser"
	}
	return "ExportKind(" + strconv.Itoa(int(k)) + ")"
}

// ExportJob is a submitted export job and the key its data files are
// encrypted with; pass JobID to WaitExportResult and EncodingAESKey to the
// record iterators (https://developer.work.weixin.qq.com/document/path/94954).
type ExportJob struct {
	Kind           ExportKind
	TagID          int // ExportKindTagUser only
	JobID          string
	EncodingAESKey string // needed to decrypt the data files: keep it with JobID
}

type exportBody struct {
	TagID          int    `json:"tagid,omitempty"`
	EncodingAESKey string `json:"encoding_aeskey"`
	BlockSize      int    `json:"block_size,omitempty"`
}

type jobIDResponse struct {
	JobID string `json:"jobid"`
}

// StartExport submits an export job of the given kind and returns its job
// id together with the key its files will be encrypted with (a fresh one
// from NewEncodingAESKey when req.EncodingAESKey is empty). tagID is the
// tag to export for ExportKindTagUser and must be 0 for the other kinds.
// Everything is validated before any network call.
//
// See https://developer.work.weixin.qq.com/document/path/94849 and
// https://developer.work.weixin.qq.com/document/path/94953.
func (c *Client) StartExport(ctx context.Context, kind ExportKind, tagID int, req ExportRequest) (*ExportJob, error) {
	var path string
	switch kind {
	case ExportKindSimpleUser:
		path = pathExportSimpleUser
	case ExportKindUser:
		path = pathExportUser
	case ExportKindDepartment:
		path = pathExportDepartment
	case ExportKindTagUser:
		path = pathExportTagUser
		if tagID <= 0 {
			return nil, fmt.Errorf("wecom: export/taguser: tagID must be positive, got %d", tagID)
		}
	default:
		return nil, fmt.Errorf("wecom: StartExport: unknown export kind %d", int(kind))
	}
	if kind != ExportKindTagUser && tagID != 0 {
		return nil, fmt.Errorf("wecom: export/%s: tagID must be 0, got %d", kind, tagID)
	}
	key := req.EncodingAESKey
	if key == "" {
		key = NewEncodingAESKey()
	} else if !wxcrypto.ValidKey(key) {
		// Never echo the key itself, not even a bad one.
		return nil, fmt.Errorf("wecom: export/%s: EncodingAESKey (%d characters): %w", kind, len(key), ErrInvalidAESKey)
	}
	if req.BlockSize != 0 && (req.BlockSize < c.minExportBlock || req.BlockSize > MaxExportBlockSize) {
		return nil, fmt.Errorf("wecom: export/%s: BlockSize %d is outside [%d, %d] (0 for WeCom's default)",
			kind, req.BlockSize, c.minExportBlock, MaxExportBlockSize)
	}
	body := exportBody{EncodingAESKey: key, BlockSize: req.BlockSize}
	if kind == ExportKindTagUser {
		body.TagID = tagID
	}
	var out jobIDResponse
	if err := c.postJSON(ctx, path, body, callSubmit, &out); err != nil {
		return nil, err
	}
	if out.JobID == "" {
		return nil, &ResponseError{Path: path, StatusCode: 200, Reason: "response has no jobid"}
	}
	return &ExportJob{Kind: kind, TagID: body.TagID, JobID: out.JobID, EncodingAESKey: key}, nil
}

func (c *Client) startExportID(ctx context.Context, kind ExportKind, tagID int, req ExportRequest) (string, error) {
	j, err := c.StartExport(ctx, kind, tagID, req)
	if err != nil {
		return "", err
	}
	return j.JobID, nil
}

// ExportSimpleUser starts an export of the members the app can see, with
// their basic fields (export/simple_user,
// https://developer.work.weixin.qq.com/document/path/94849). With an empty
// req.EncodingAESKey a random key is chosen that this method cannot return:
// pass NewEncodingAESKey() yourself or use StartExport.
func (c *Client) ExportSimpleUser(ctx context.Context, req ExportRequest) (jobID string, err error) {
	return c.startExportID(ctx, ExportKindSimpleUser, 0, req)
}

// ExportUser starts an export of the members the app can see, with all
// their fields (export/user,
// https://developer.work.weixin.qq.com/document/path/94849). See
// ExportSimpleUser about an empty key.
func (c *Client) ExportUser(ctx context.Context, req ExportRequest) (string, error) {
	return c.startExportID(ctx, ExportKindUser, 0, req)
}

// ExportDepartment starts an export of the departments the app can see
// (export/department,
// https://developer.work.weixin.qq.com/document/path/94849). See
// ExportSimpleUser about an empty key.
func (c *Client) ExportDepartment(ctx context.Context, req ExportRequest) (string, error) {
	return c.startExportID(ctx, ExportKindDepartment, 0, req)
}

// ExportTagUser starts an export of the members and departments of tag
// tagID (export/taguser,
// https://developer.work.weixin.qq.com/document/path/94953). See
// ExportSimpleUser about an empty key.
func (c *Client) ExportTagUser(ctx context.Context, tagID int, req ExportRequest) (string, error) {
	return c.startExportID(ctx, ExportKindTagUser, tagID, req)
}

// ExportStatus is the state of an export job.
type ExportStatus int

// Export job states (export/get_result,
// https://developer.work.weixin.qq.com/document/path/94954).
const (
	ExportPending ExportStatus = 0
	ExportRunning ExportStatus = 1
	ExportDone    ExportStatus = 2
	ExportFailed  ExportStatus = 3
)

// String returns "pending", "running", "done" or "failed".
func (s ExportStatus) String() string {
	switch s {
	case ExportPending:
		return "pending"
	case ExportRunning:
		return "running"
	case ExportDone:
		return "done"
	case ExportFailed:
		return "failed"
	}
	return "ExportStatus(" + strconv.Itoa(int(s)) + ")"
}

// ExportResult is the answer of export/get_result
// (https://developer.work.weixin.qq.com/document/path/94954). DataList is
// filled when Status is ExportDone; each file is an independently encrypted
// JSON document. The URLs are valid for 2 hours.
type ExportResult struct {
	Status   ExportStatus
	DataList []ExportFile
}

// ExportFile is one data file of an export. URL is pre-signed (no
// access_token is added to it; this library never logs it or puts it in an
// error with its query); Size and MD5 (hex) describe the ciphertext.
type ExportFile struct {
	URL  string `json:"url"`
	Size int64  `json:"size"`
	MD5  string `json:"md5"`
}

type exportResultResponse struct {
	envelope
	Status   *flexInt     `json:"status"`
	DataList []ExportFile `json:"data_list"`
}

// GetExportResult reads the state of an export job once
// (https://developer.work.weixin.qq.com/document/path/94954). It retries
// transient failures; WaitExportResult polls until the job ends.
func (c *Client) GetExportResult(ctx context.Context, jobID string) (*ExportResult, error) {
	res, _, err := c.getExportResult(ctx, jobID)
	return res, err
}

func (c *Client) getExportResult(ctx context.Context, jobID string) (*ExportResult, *exportResultResponse, error) {
	if err := validJobID(jobID); err != nil {
		return nil, nil, err
	}
	var out exportResultResponse
	if err := c.getJSON(ctx, pathExportGetResult, url.Values{"jobid": {jobID}}, &out); err != nil {
		return nil, nil, err
	}
	if out.Status == nil {
		return nil, nil, &ResponseError{Path: pathExportGetResult, StatusCode: 200, Reason: "response has no status"}
	}
	return &ExportResult{Status: ExportStatus(*out.Status), DataList: out.DataList}, &out, nil
}

// WaitExportResult polls export/get_result until the job is done and
// returns its result. A job that failed (status 3) is a *JobError with
// JobType "export"; a ctx that ends first gives a *WaitError carrying the
// last status. WithProgress is never called: exports report no percentage.
// See https://developer.work.weixin.qq.com/document/path/94954.
func (c *Client) WaitExportResult(ctx context.Context, jobID string, opts ...WaitOption) (*ExportResult, error) {
	if err := validJobID(jobID); err != nil {
		return nil, err
	}
	w, err := newWaitConfig(opts)
	if err != nil {
		return nil, err
	}
	var res *ExportResult
	var raw *exportResultResponse
	err = c.waitJob(ctx, jobID, w, func(ctx context.Context) (jobState, error) {
		r, rr, err := c.getExportResult(ctx, jobID)
		if err != nil {
			return jobState{}, err
		}
		res, raw = r, rr
		return jobState{done: r.Status == ExportDone || r.Status == ExportFailed, status: int(r.Status), percentage: -1}, nil
	})
	if err != nil {
		return nil, err
	}
	if res.Status == ExportFailed {
		je := &JobError{JobID: jobID, JobType: "export", Message: raw.ErrMsg}
		if raw.ErrCode != nil {
			je.Code = int(*raw.ErrCode)
		}
		if je.Message == "" || strings.EqualFold(je.Message, "ok") {
			je.Message = "export job failed (status 3)"
		}
		return res, je
	}
	return res, nil
}

// Errors of export files.
var (
	// ErrCiphertextLength: an export file (after base64 decoding, if it was
	// base64 text) is empty or not a multiple of 16 bytes long.
	ErrCiphertextLength = wxcrypto.ErrCiphertextLength
	// ErrExportURLExpired: the data file URL was refused with HTTP 403, 404
	// or 410; URLs are valid for 2 hours. The error is also a *ResponseError.
	ErrExportURLExpired = errors.New("wecom: export file URL expired or not found")
)

// errExportResultNotDone is yielded by the record iterators for a result
// whose status is not ExportDone.
func errExportResultNotDone(res *ExportResult) error {
	if res == nil {
		return errors.New("wecom: nil *ExportResult")
	}
	return fmt.Errorf("wecom: export result is %s, not done", res.Status)
}
