package wecom

import (
	"errors"
	"fmt"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// WeCom error codes this library acts on. The full table is the global
// error-code page https://developer.work.weixin.qq.com/document/path/90313.
const (
	CodeOK                     = 0
	CodeSystemBusy             = -1    // system busy: retry with backoff
	CodeDataVersionConflict    = 6000  // concurrent modification: retry later
	CodeInvalidCredential      = 40001 // invalid corpsecret (from gettoken) or token problem
	CodeInvalidUserID          = 40003
	CodeInvalidMediaType       = 40004
	CodeInvalidType            = 40005
	CodeInvalidFileSize        = 40006
	CodeInvalidMediaID         = 40007 // media_id invalid or older than 3 days
	CodeInvalidCorpID          = 40013
	CodeInvalidAccessToken     = 40014
	CodeInvalidParameter       = 40058
	CodeJobNotFound            = 40088 // jobid does not exist
	CodeJobResultPurged        = 40089 // only the last 5 batch results are kept
	CodeInvalidImportFile      = 40092
	CodeMissingAccessToken     = 41001
	CodeMissingMediaID         = 41006
	CodeAccessTokenExpired     = 42001
	CodeEmptyMediaFile         = 44001
	CodeMediaTooLarge          = 45001
	CodeRateLimited            = 45009
	CodeAccountQuota           = 45024
	CodeDeletionProtection     = 45026 // replaceuser deletion guard tripped
	CodeConcurrencyLimited     = 45033
	CodeAPINotPermitted        = 48002
	CodeNoPermission           = 60011
	CodeUserIDExists           = 60102
	CodeInvalidMobile          = 60103
	CodeMobileExists           = 60104
	CodeInvalidEmail           = 60105
	CodeEmailExists            = 60106
	CodeTooManyDepartments     = 60110
	CodeUserIDNotFound         = 60111
	CodeInvalidName            = 60112
	CodeInvalidDepartmentID    = 60123
	CodeInvalidParentID        = 60124
	CodeInvalidDepartmentName  = 60125
	CodeMissingDepartment      = 60127
	CodeMobileAndEmailEmpty    = 60129
	CodeLeaderCountMismatch    = 60132
	CodeInviteTargetsEmpty     = 82001
	CodeDuplicateUserIDInFile  = 302003
	CodeInvalidOrgTree         = 302004
	CodeImportSystemFailure    = 302005
	CodeDuplicatePartyIDInFile = 302006
	CodeDuplicateSiblingName   = 302007
	CodeImportJobRunning       = 302008 // another import job is running
)

// APIError is a non-zero errcode returned by WeCom. Message is WeCom's errmsg
// verbatim (it never contains the access_token: WeCom does not echo it);
// Path is the API path without its query, so no token or secret can appear.
type APIError struct {
	Code    int
	Message string
	Path    string
}

// Error gives the code, WeCom's errmsg and the API path.
func (e *APIError) Error() string {
	return fmt.Sprintf("wecom: %s: errcode %d: %s", e.Path, e.Code, e.Message)
}

// TokenExpired reports whether the code says the access_token used is no
// longer good (40001, 40014, 42001): the client refreshes it and retries once.
func (e *APIError) TokenExpired() bool {
	switch e.Code {
	case CodeInvalidCredential, CodeInvalidAccessToken, CodeAccessTokenExpired:
		return true
	}
	return false
}

// Retryable reports whether the same request may succeed later unchanged
// (-1 system busy, 6000, 45009 rate limit, 45033 concurrency, 302005).
func (e *APIError) Retryable() bool {
	switch e.Code {
	case CodeSystemBusy, CodeDataVersionConflict, CodeRateLimited, CodeConcurrencyLimited, CodeImportSystemFailure:
		return true
	}
	return false
}

// Throttled reports whether WeCom refused the call before executing it
// because of a rate or concurrency limit (45009, 45033).
func (e *APIError) Throttled() bool {
	return e.Code == CodeRateLimited || e.Code == CodeConcurrencyLimited
}

// Is lets errors.Is(err, &APIError{Code: n}) match by code alone.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	return ok && t.Code == e.Code && (t.Path == "" || t.Path == e.Path)
}

// IsCode reports whether err is, or wraps, an *APIError or *JobError with
// the given code.
func IsCode(err error, code int) bool {
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == code {
		return true
	}
	var je *JobError
	return errors.As(err, &je) && je.Code == code
}

// JobError is an asynchronous job that finished in failure: a batch import
// whose getresult carries a top-level errcode (for example 45026 deletion
// protection, 302005 import failure), a batch_job_result event with a
// non-zero ErrCode, or an export whose status is 3 (failed).
type JobError struct {
	JobID   string
	JobType string
	Code    int
	Message string
}

// Error gives the job id, its type, the code and WeCom's message.
func (e *JobError) Error() string {
	t := e.JobType
	if t == "" {
		t = "job"
	}
	return fmt.Sprintf("wecom: %s %s failed: errcode %d: %s", t, e.JobID, e.Code, e.Message)
}

// Unwrap lets errors.Is(err, ErrTooManyDeletes) match a job that WeCom's
// own deletion guard (45026) stopped.
func (e *JobError) Unwrap() error {
	if e.Code == CodeDeletionProtection {
		return ErrTooManyDeletes
	}
	return nil
}

// Sentinel errors, to be matched with errors.Is.
var (
	// ErrSignatureMismatch: a callback's msg_signature does not match.
	ErrSignatureMismatch = errors.New("wecom: callback signature mismatch")
	// ErrReceiverMismatch: a decrypted callback names another receiver id.
	ErrReceiverMismatch = errors.New("wecom: callback receiver id mismatch")
	// ErrInvalidAESKey: an EncodingAESKey is not 43 characters of [A-Za-z0-9].
	ErrInvalidAESKey = wxcrypto.ErrInvalidKey
	// ErrBadPadding: decrypted data has invalid PKCS#7 padding (wrong key or
	// corrupted data).
	ErrBadPadding = wxcrypto.ErrBadPadding
	// ErrChecksumMismatch: a downloaded export file's size or md5 differs
	// from what export/get_result announced.
	ErrChecksumMismatch = errors.New("wecom: export file size or md5 mismatch")
	// ErrFileTooLarge: an upload is over the 20 MB limit of media/upload.
	ErrFileTooLarge = errors.New("wecom: file larger than 20 MB")
	// ErrFileTooSmall: an upload is 5 bytes or fewer; WeCom requires more.
	ErrFileTooSmall = errors.New("wecom: file must be larger than 5 bytes")
	// ErrTooManyDeletes: a replace import would delete more members than
	// allowed (ImportOptions.MaxDeletes, or WeCom's 45026 guard).
	ErrTooManyDeletes = errors.New("wecom: replace would delete too many members")
)
