package wecom_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoSecretsInLogsOrErrors drives successes and failures with a debug
// logger capturing everything, and checks that no access_token, corpsecret,
// callback token or AES key appears in any log record or error string.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	t.Parallel()
	srv := wecomtest.NewServer()
	defer srv.Close()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fast := wecom.WithRetry(wecom.RetryPolicy{MaxAttempts: 2, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})
	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL), wecom.WithLogger(logger), fast)
	require.NoError(t, err)
	ctx := context.Background()

	var errs []error
	record := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	secrets := []string{srv.CorpSecret}
	tok, err := c.AccessToken(ctx)
	require.NoError(t, err)
	secrets = append(secrets, tok)

	// A successful import with a callback and an export, with their keys.
	cbKey := wecom.NewEncodingAESKey()
	const cbToken = "CallbackTok3n"
	secrets = append(secrets, cbKey, cbToken)
	members := []wecom.Member{{UserID: "s1", Name: "S One", Mobile: "13800000001", Departments: []int{1}}}
	_, err = c.ImportMembers(ctx, wecom.ImportSync, members, wecom.ImportOptions{
		Callback: &wecom.JobCallback{URL: "http://127.0.0.1:1/cb", Token: cbToken, EncodingAESKey: cbKey},
		Wait:     []wecom.WaitOption{wecom.WithPollDelay(time.Millisecond, 10*time.Millisecond)},
	})
	record(err)
	expKey := wecom.NewEncodingAESKey()
	secrets = append(secrets, expKey)
	jobID, err := c.ExportUser(ctx, wecom.ExportRequest{EncodingAESKey: expKey})
	require.NoError(t, err)
	res, err := c.WaitExportResult(ctx, jobID, wecom.WithPollDelay(time.Millisecond, 10*time.Millisecond))
	require.NoError(t, err)
	for _, f := range res.DataList {
		// The download URL is pre-signed: its query must not leak either.
		if i := strings.IndexByte(f.URL, '?'); i >= 0 {
			secrets = append(secrets, f.URL[i+1:])
		}
	}
	for _, err := range c.ExportedUsers(ctx, res, expKey) {
		record(err)
	}

	// Failures: a wrong key, corrupted and truncated files, token expiry,
	// injected errcodes and HTTP errors, a dropped connection.
	for _, err := range c.ExportedUsers(ctx, res, wecom.NewEncodingAESKey()) {
		record(err)
	}
	srv.InjectFault(wecomtest.ExportFilePath, wecomtest.Fault{Corrupt: true, Times: -1})
	for _, err := range c.ExportedUsers(ctx, res, expKey) {
		record(err)
	}
	srv.ClearFaults()
	srv.InjectFault(wecomtest.ExportFilePath, wecomtest.Fault{Truncate: true, Times: -1})
	for _, err := range c.ExportedUsers(ctx, res, expKey) {
		record(err)
	}
	srv.ClearFaults()
	srv.ExpireTokens()
	_, err = c.GetExportResult(ctx, jobID)
	record(err)
	tok2, err := c.AccessToken(ctx)
	require.NoError(t, err)
	secrets = append(secrets, tok2)
	for _, f := range []wecomtest.Fault{
		{ErrCode: wecom.CodeSystemBusy, Times: 5},
		{ErrCode: wecom.CodeAccessTokenExpired, Times: 5},
		{Status: http.StatusBadGateway, Times: 5},
		{Body: "<html>error</html>", Times: 5},
		{Body: `{"errcode":0,"errmsg":"o`, ContentType: "application/json", Times: 5},
		{Drop: true, Times: 5},
	} {
		srv.InjectFault("/cgi-bin/export/get_result", f)
		_, err = c.GetExportResult(ctx, jobID)
		record(err)
		srv.ClearFaults()
	}
	srv.InvalidateTokens()
	srv.InjectFault("/cgi-bin/gettoken", wecomtest.Fault{ErrCode: wecom.CodeInvalidCredential, Times: -1})
	_, err = c.GetBatchResult(ctx, "nosuchjob")
	record(err)
	srv.ClearFaults()
	tok3, err := c.AccessToken(ctx)
	require.NoError(t, err)
	secrets = append(secrets, tok3)

	// A wrong secret and an unreachable server.
	bad, err := wecom.NewClient(srv.CorpID, "wrong-secret-value-123", wecom.WithBaseURL(srv.URL), wecom.WithLogger(logger), fast)
	require.NoError(t, err)
	secrets = append(secrets, "wrong-secret-value-123")
	_, err = bad.AccessToken(ctx)
	record(err)
	down, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL("http://127.0.0.1:1"), wecom.WithLogger(logger), fast)
	require.NoError(t, err)
	_, err = down.UploadFile(ctx, "a.csv", strings.NewReader("123456789"))
	record(err)

	// Callback crypto failures.
	cc, err := wecom.NewCallbackCrypto(cbToken, cbKey, srv.CorpID)
	require.NoError(t, err)
	_, err = cc.DecryptMessage("00", "1", "2", []byte("<xml><Encrypt>AAAA</Encrypt></xml>"))
	record(err)
	_, err = wecom.NewCallbackCrypto(cbToken, cbKey[:42]+"!", srv.CorpID)
	record(err)
	_, err = c.ExportUser(ctx, wecom.ExportRequest{EncodingAESKey: cbKey[:40]})
	record(err)

	require.GreaterOrEqual(t, len(errs), 10, "the failures above must produce errors")
	all := logs.String()
	for _, err := range errs {
		all += "\n" + err.Error()
		for e := err; e != nil; e = errors.Unwrap(e) {
			all += "\n" + e.Error()
		}
	}
	require.NotEmpty(t, logs.String(), "debug logging must have produced records")
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(all, s) {
			t.Errorf("a secret (%d bytes, starts %q) appears in logs or errors", len(s), s[:min(3, len(s))])
		}
	}
	for _, marker := range []string{"access_token=" + tok, "corpsecret=" + srv.CorpSecret} {
		if strings.Contains(all, marker) {
			t.Errorf("found %q", marker[:14])
		}
	}
}
