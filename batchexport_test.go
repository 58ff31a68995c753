package wecom

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom/internal/vectors"
	"github.com/wecomkit/wecom/internal/wxcrypto"
)

const exportTestBase = "https://qyapi.test"

var fastRetry = RetryPolicy{MaxAttempts: 3, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

// newMockClient returns a client whose every request goes to its own
// httpmock transport, with gettoken answered.
func newMockClient(t *testing.T, opts ...Option) (*Client, *httpmock.MockTransport) {
	t.Helper()
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, exportTestBase+"/cgi-bin/gettoken",
		httpmock.NewStringResponder(200, `{"errcode":0,"errmsg":"ok","access_token":"TOKEN","expires_in":7200}`))
	opts = append([]Option{WithBaseURL(exportTestBase), WithRetry(fastRetry), WithHTTPClient(&http.Client{Transport: mt})}, opts...)
	c, err := NewClient("corp", "secret", opts...)
	require.NoError(t, err)
	return c, mt
}

func TestExportRequestShapes(t *testing.T) {
	t.Parallel()
	key := NewEncodingAESKey()
	cases := []struct {
		name string
		path string
		call func(c *Client) (string, error)
		want map[string]any
	}{
		{"simple_user", "/cgi-bin/export/simple_user", func(c *Client) (string, error) {
			return c.ExportSimpleUser(context.Background(), ExportRequest{EncodingAESKey: key})
		}, map[string]any{"encoding_aeskey": key}},
		{"user", "/cgi-bin/export/user", func(c *Client) (string, error) {
			return c.ExportUser(context.Background(), ExportRequest{EncodingAESKey: key, BlockSize: 10000})
		}, map[string]any{"encoding_aeskey": key, "block_size": float64(10000)}},
		{"department", "/cgi-bin/export/department", func(c *Client) (string, error) {
			return c.ExportDepartment(context.Background(), ExportRequest{EncodingAESKey: key, BlockSize: 1000000})
		}, map[string]any{"encoding_aeskey": key, "block_size": float64(1000000)}},
		{"taguser", "/cgi-bin/export/taguser", func(c *Client) (string, error) {
			return c.ExportTagUser(context.Background(), 7, ExportRequest{EncodingAESKey: key})
		}, map[string]any{"encoding_aeskey": key, "tagid": float64(7)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, mt := newMockClient(t)
			var got map[string]any
			var query string
			mt.RegisterResponder(http.MethodPost, exportTestBase+tc.path, func(r *http.Request) (*http.Response, error) {
				query = r.URL.RawQuery
				b, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(b, &got); err != nil {
					return nil, err
				}
				return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","jobid":"jobid_abc"}`), nil
			})
			id, err := tc.call(c)
			require.NoError(t, err)
			assert.Equal(t, "jobid_abc", id)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, "access_token=TOKEN", query)
		})
	}
}

func TestStartExportGeneratesKey(t *testing.T) {
	t.Parallel()
	c, mt := newMockClient(t)
	var sent string
	mt.RegisterResponder(http.MethodPost, exportTestBase+"/cgi-bin/export/user", func(r *http.Request) (*http.Response, error) {
		var b struct {
			Key string `json:"encoding_aeskey"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		sent = b.Key
		return httpmock.NewStringResponse(200, `{"errcode":0,"errmsg":"ok","jobid":"jobid_1"}`), nil
	})
	job, err := c.StartExport(context.Background(), ExportKindUser, 0, ExportRequest{})
	require.NoError(t, err)
	assert.True(t, wxcrypto.ValidKey(job.EncodingAESKey))
	assert.Equal(t, sent, job.EncodingAESKey)
	assert.Equal(t, ExportJob{Kind: ExportKindUser, JobID: "jobid_1", EncodingAESKey: sent}, *job)
	assert.NotEqual(t, NewEncodingAESKey(), NewEncodingAESKey())
}

func TestExportValidationBeforeNetwork(t *testing.T) {
	t.Parallel()
	c, mt := newMockClient(t)
	ctx := context.Background()
	good := NewEncodingAESKey()
	bad := []struct {
		name string
		err  error
	}{}
	add := func(name string, err error) {
		bad = append(bad, struct {
			name string
			err  error
		}{name, err})
	}
	_, err := c.ExportUser(ctx, ExportRequest{EncodingAESKey: "short"})
	add("short key", err)
	_, err = c.ExportUser(ctx, ExportRequest{EncodingAESKey: strings.Repeat("a", 42) + "!"})
	add("bad char", err)
	_, err = c.ExportUser(ctx, ExportRequest{EncodingAESKey: good, BlockSize: 9999})
	add("block 9999", err)
	_, err = c.ExportSimpleUser(ctx, ExportRequest{EncodingAESKey: good, BlockSize: 1000001})
	add("block 1000001", err)
	_, err = c.ExportDepartment(ctx, ExportRequest{BlockSize: -1})
	add("block -1", err)
	_, err = c.ExportTagUser(ctx, 0, ExportRequest{EncodingAESKey: good})
	add("tag 0", err)
	_, err = c.ExportTagUser(ctx, -3, ExportRequest{EncodingAESKey: good})
	add("tag -3", err)
	_, err = c.StartExport(ctx, ExportKindUser, 5, ExportRequest{})
	add("tag on user", err)
	_, err = c.StartExport(ctx, ExportKind(9), 0, ExportRequest{})
	add("kind", err)
	_, err = c.GetExportResult(ctx, "")
	add("empty jobid", err)
	_, err = c.WaitExportResult(ctx, "")
	add("empty jobid wait", err)
	_, err = c.WaitExportResult(ctx, "j", WithPollDelay(0, 0))
	add("bad poll", err)
	for _, b := range bad {
		assert.Error(t, b.err, b.name)
	}
	assert.ErrorIs(t, bad[0].err, ErrInvalidAESKey)
	assert.NotContains(t, bad[1].err.Error(), strings.Repeat("a", 42), "a key never goes into an error")
	assert.ErrorContains(t, bad[2].err, "9999")
	assert.Zero(t, mt.GetTotalCallCount(), "no request may be sent")
}

func TestExportSubmitErrors(t *testing.T) {
	t.Parallel()
	c, mt := newMockClient(t)
	mt.RegisterResponder(http.MethodPost, exportTestBase+"/cgi-bin/export/user",
		httpmock.NewStringResponder(200, `{"errcode":40058,"errmsg":"invalid parameter"}`))
	_, err := c.ExportUser(context.Background(), ExportRequest{})
	assert.True(t, IsCode(err, CodeInvalidParameter), "%v", err)
	mt.RegisterResponder(http.MethodPost, exportTestBase+"/cgi-bin/export/department",
		httpmock.NewStringResponder(200, `{"errcode":0,"errmsg":"ok"}`))
	_, err = c.ExportDepartment(context.Background(), ExportRequest{})
	var re *ResponseError
	assert.ErrorAs(t, err, &re)
}

func TestGetExportResult(t *testing.T) {
	t.Parallel()
	for status := range 4 {
		t.Run(ExportStatus(status).String(), func(t *testing.T) {
			t.Parallel()
			c, mt := newMockClient(t)
			body := fmt.Sprintf(`{"errcode":0,"errmsg":"ok","status":%d}`, status)
			if status == 2 {
				body = `{"errcode":0,"errmsg":"ok","status":2,"data_list":[{"url":"https://f.test/a?sign=x","size":96,"md5":"ABC"},{"url":"https://f.test/b","size":32,"md5":"def"}]}`
			}
			var q string
			mt.RegisterResponder(http.MethodGet, exportTestBase+"/cgi-bin/export/get_result", func(r *http.Request) (*http.Response, error) {
				q = r.URL.Query().Get("jobid")
				return httpmock.NewStringResponse(200, body), nil
			})
			res, err := c.GetExportResult(context.Background(), "jobid_x")
			require.NoError(t, err)
			assert.Equal(t, "jobid_x", q)
			assert.Equal(t, ExportStatus(status), res.Status)
			if status == 2 {
				assert.Equal(t, []ExportFile{{URL: "https://f.test/a?sign=x", Size: 96, MD5: "ABC"}, {URL: "https://f.test/b", Size: 32, MD5: "def"}}, res.DataList)
			} else {
				assert.Empty(t, res.DataList)
			}
		})
	}
	assert.Equal(t, "ExportStatus(7)", ExportStatus(7).String())
}

func TestGetExportResultErrors(t *testing.T) {
	t.Parallel()
	c, mt := newMockClient(t)
	mt.RegisterResponder(http.MethodGet, exportTestBase+"/cgi-bin/export/get_result",
		httpmock.NewStringResponder(200, `{"errcode":40088,"errmsg":"jobid not found"}`))
	_, err := c.GetExportResult(context.Background(), "jobid_x")
	assert.True(t, IsCode(err, CodeJobNotFound), "%v", err)

	c2, mt2 := newMockClient(t)
	mt2.RegisterResponder(http.MethodGet, exportTestBase+"/cgi-bin/export/get_result",
		httpmock.NewStringResponder(200, `{"errcode":0,"errmsg":"ok"}`))
	_, err = c2.GetExportResult(context.Background(), "jobid_x")
	var re *ResponseError
	assert.ErrorAs(t, err, &re)
}

func TestWaitExportResult(t *testing.T) {
	t.Parallel()
	seq := func(bodies ...string) httpmock.Responder {
		var n atomic.Int32
		return func(*http.Request) (*http.Response, error) {
			i := int(n.Add(1)) - 1
			return httpmock.NewStringResponse(200, bodies[min(i, len(bodies)-1)]), nil
		}
	}
	t.Run("done", func(t *testing.T) {
		t.Parallel()
		c, mt := newMockClient(t)
		mt.RegisterResponder(http.MethodGet, exportTestBase+"/cgi-bin/export/get_result", seq(
			`{"errcode":0,"errmsg":"ok","status":0}`,
			`{"errcode":0,"errmsg":"ok","status":1}`,
			`{"errcode":0,"errmsg":"ok","status":2,"data_list":[{"url":"https://f.test/a","size":32,"md5":"00"}]}`))
		res, err := c.WaitExportResult(context.Background(), "jobid_x", WithPollDelay(time.Millisecond, 5*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, ExportDone, res.Status)
		assert.Len(t, res.DataList, 1)
		assert.Equal(t, 3, mt.GetCallCountInfo()["GET "+exportTestBase+"/cgi-bin/export/get_result"])
	})
	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		c, mt := newMockClient(t)
		mt.RegisterResponder(http.MethodGet, exportTestBase+"/cgi-bin/export/get_result", seq(
			`{"errcode":0,"errmsg":"ok","status":1}`,
			`{"errcode":0,"errmsg":"ok","status":3}`))
		res, err := c.WaitExportResult(context.Background(), "jobid_x", WithPollDelay(time.Millisecond, 5*time.Millisecond))
		var je *JobError
		require.ErrorAs(t, err, &je)
		assert.Equal(t, "jobid_x", je.JobID)
		assert.Equal(t, "export", je.JobType)
		assert.Equal(t, ExportFailed, res.Status)
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		c, mt := newMockClient(t)
		mt.RegisterResponder(http.MethodGet, exportTestBase+"/cgi-bin/export/get_result", seq(`{"errcode":0,"errmsg":"ok","status":1}`))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := c.WaitExportResult(ctx, "jobid_x", WithPollDelay(time.Millisecond, 5*time.Millisecond))
		var we *WaitError
		require.ErrorAs(t, err, &we)
		assert.Equal(t, int(ExportRunning), we.Status)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

// fileServer serves named bodies with Range support; handler hooks let a
// test misbehave.
type fileServer struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	ranges []string // Range headers seen
	hook   func(w http.ResponseWriter, r *http.Request, n int) bool
	calls  int
}

func newFileServer(t *testing.T) *fileServer {
	fs := &fileServer{files: map[string][]byte{}}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.calls++
		n := fs.calls
		fs.ranges = append(fs.ranges, r.Header.Get("Range"))
		body, ok := fs.files[r.URL.Path]
		hook := fs.hook
		fs.mu.Unlock()
		if r.URL.Query().Get("access_token") != "" {
			http.Error(w, "token leaked", http.StatusBadRequest)
			return
		}
		if hook != nil && hook(w, r, n) {
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(fs.Close)
	return fs
}

// add stores body and returns an ExportFile describing it.
func (fs *fileServer) add(name string, body []byte) ExportFile {
	fs.mu.Lock()
	fs.files["/"+name] = body
	fs.mu.Unlock()
	sum := md5.Sum(body)
	return ExportFile{URL: fs.URL + "/" + name + "?sign=SECRETSIG&expires=1", Size: int64(len(body)), MD5: hex.EncodeToString(sum[:])}
}

func encryptFor(t testing.TB, key string, plain []byte) []byte {
	t.Helper()
	k, err := wxcrypto.DecodeKey(key)
	require.NoError(t, err)
	ct, err := wxcrypto.Encrypt(k, plain)
	require.NoError(t, err)
	return ct
}

func TestExportVector(t *testing.T) {
	t.Parallel()
	v := vectors.LoadExport(t)
	ct, err := base64.StdEncoding.DecodeString(v.CiphertextBase64)
	require.NoError(t, err)
	fs := newFileServer(t)
	f := fs.add("v", ct)
	require.Equal(t, v.Size, f.Size)
	require.Equal(t, v.MD5, f.MD5)
	c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))

	rc, err := c.OpenExportFile(context.Background(), f, v.EncodingAESKey)
	require.NoError(t, err)
	plain, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	assert.Equal(t, v.Plaintext, string(plain))

	f.MD5 = strings.ToUpper(f.MD5) // md5 compares case-insensitively
	var users []ExportedUser
	for u, err := range c.ExportedUsers(context.Background(), &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, v.EncodingAESKey) {
		require.NoError(t, err)
		users = append(users, u)
	}
	assert.Equal(t, []ExportedUser{{UserID: "zhangsan", Name: "张三", Department: []int{1, 2}}}, users)
}

func userDoc(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"userlist":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"userid":"u%d","name":"用户%d","department":[1,%d],"gender":"%d","extattr":{"attrs":[{"type":0,"name":"爱好","text":{"value":"v%d"}}]},"status":1}`, i, i, i+2, i%3, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func collectUsers(c *Client, res *ExportResult, key string) ([]ExportedUser, error) {
	var out []ExportedUser
	for u, err := range c.ExportedUsers(context.Background(), res, key) {
		if err != nil {
			return out, err
		}
		out = append(out, u)
	}
	return out, nil
}

func TestOpenExportFileFaults(t *testing.T) {
	t.Parallel()
	key := NewEncodingAESKey()
	plain := userDoc(50)
	ct := encryptFor(t, key, plain)
	ctx := context.Background()

	t.Run("md5 mismatch", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		f.MD5 = strings.Repeat("0", 32)
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		_, err := c.OpenExportFile(ctx, f, key)
		var ce *ChecksumError
		require.ErrorAs(t, err, &ce)
		assert.ErrorIs(t, err, ErrChecksumMismatch)
		assert.Contains(t, err.Error(), "md5 mismatch")
		assert.NotContains(t, err.Error(), "SECRETSIG")
		users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, key)
		assert.ErrorIs(t, err, ErrChecksumMismatch)
		assert.Empty(t, users, "no record from an unverified file")
	})
	t.Run("size mismatch", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		f.Size += 16
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		_, err := c.OpenExportFile(ctx, f, key)
		var ce *ChecksumError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, int64(len(ct)), ce.GotSize)
		assert.Contains(t, err.Error(), "size mismatch")
		f.Size -= 32 // a longer body than announced is read only one byte past
		_, err = c.OpenExportFile(ctx, f, key)
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, f.Size+1, ce.GotSize)
	})
	t.Run("truncated", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		fs.files["/a"] = ct[:len(ct)/2] // the server has only half
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, key)
		assert.ErrorIs(t, err, ErrChecksumMismatch)
		assert.Empty(t, users)
	})
	t.Run("corrupted", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		bad := bytes.Clone(ct)
		bad[100] ^= 1
		fs.files["/a"] = bad
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, key)
		assert.ErrorIs(t, err, ErrChecksumMismatch)
		assert.Empty(t, users)
	})
	t.Run("not a multiple of 16", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", append(bytes.Clone(ct), 0xff, 0x00, '!'))
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		_, err := c.OpenExportFile(ctx, f, key)
		assert.ErrorIs(t, err, ErrCiphertextLength)
	})
	t.Run("base64 body", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		b64 := base64.StdEncoding.EncodeToString(ct)
		require.NotZero(t, len(b64)%16)
		f := fs.add("a", []byte(b64))
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		rc, err := c.OpenExportFile(ctx, f, key)
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		assert.Equal(t, plain, got)
		require.NoError(t, rc.Close())
	})
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		other := NewEncodingAESKey()
		_, err := c.OpenExportFile(ctx, f, other)
		if !errors.Is(err, ErrBadPadding) {
			// About 1 key in 256 pads correctly by chance: then the JSON
			// fails instead, and still no record comes out.
			users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, other)
			assert.Error(t, err)
			assert.Empty(t, users)
			return
		}
		users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, other)
		assert.ErrorIs(t, err, ErrBadPadding)
		assert.Empty(t, users)
		_, err = c.OpenExportFile(ctx, f, "bad")
		assert.ErrorIs(t, err, ErrInvalidAESKey)
	})
	t.Run("invalid JSON", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		doc := bytes.Clone(plain)
		i := bytes.Index(doc, []byte(`"u7"`))
		doc[i+4] = ';' // {"userid":"u7";…
		f := fs.add("a", encryptFor(t, key, doc))
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, key)
		var de *ExportDecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, 0, de.File)
		assert.Len(t, users, 7, "the records before the bad one")
	})
	t.Run("expired URL", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		fs.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
			http.Error(w, "<Error><Code>AccessDenied</Code></Error>", http.StatusForbidden)
			return true
		}
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		_, err := c.OpenExportFile(ctx, f, key)
		assert.ErrorIs(t, err, ErrExportURLExpired)
		var re *ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 403, re.StatusCode)
		assert.NotContains(t, err.Error(), "SECRETSIG")
		assert.Equal(t, 1, fs.calls, "a 403 is not retried")
	})
	t.Run("5xx then success", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		fs.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n <= 2 {
				http.Error(w, "busy", http.StatusBadGateway)
				return true
			}
			return false
		}
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, key)
		require.NoError(t, err)
		assert.Len(t, users, 50)
		assert.Equal(t, 3, fs.calls)
	})
	t.Run("5xx forever", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		fs.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		_, err := c.OpenExportFile(ctx, f, key)
		var re *ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 503, re.StatusCode)
		assert.Equal(t, fastRetry.MaxAttempts, fs.calls)
	})
	t.Run("dropped then Range resume", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		fs.hook = dropAfter(t, 1000, ct)
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		users, err := collectUsers(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, key)
		require.NoError(t, err)
		assert.Len(t, users, 50)
		assert.Equal(t, []string{"", "bytes=1000-"}, fs.ranges)
	})
	t.Run("dropped, Range ignored", func(t *testing.T) {
		t.Parallel()
		fs := newFileServer(t)
		f := fs.add("a", ct)
		drop := dropAfter(t, 1000, ct)
		fs.hook = func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n == 1 {
				return drop(w, r, n)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(ct)))
			w.Write(ct) // 200 with the whole body
			return true
		}
		c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
		rc, err := c.OpenExportFile(ctx, f, key)
		require.NoError(t, err)
		got, _ := io.ReadAll(rc)
		rc.Close()
		assert.Equal(t, plain, got)
	})
	t.Run("bad ExportFile", func(t *testing.T) {
		t.Parallel()
		c, mt := newMockClient(t)
		for _, f := range []ExportFile{
			{URL: "ftp://x/y", Size: 32, MD5: strings.Repeat("a", 32)},
			{URL: "https://x/y", Size: 0, MD5: strings.Repeat("a", 32)},
			{URL: "https://x/y", Size: 32, MD5: "xyz"},
		} {
			_, err := c.OpenExportFile(ctx, f, key)
			assert.Error(t, err)
		}
		assert.Zero(t, mt.GetTotalCallCount())
	})
}

// dropAfter answers the first request with n bytes of body (announcing
// all of it) and then closes the connection.
func dropAfter(t *testing.T, n int, body []byte) func(w http.ResponseWriter, r *http.Request, call int) bool {
	return func(w http.ResponseWriter, r *http.Request, call int) bool {
		if call != 1 {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(200)
		w.Write(body[:n])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
}

func TestExportedUsersLargeFileStagedAndRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := NewEncodingAESKey()
	plain := userDoc(40000) // > 4 MiB
	ct := encryptFor(t, key, plain)
	require.Greater(t, len(ct), exportMemLimit)
	fs := newFileServer(t)
	f1 := fs.add("a", ct)
	f2 := fs.add("b", encryptFor(t, key, userDoc(3)))
	c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient), WithExportTempDir(dir))
	res := &ExportResult{Status: ExportDone, DataList: []ExportFile{f1, f2}}

	n := 0
	for u, err := range c.ExportedUsers(context.Background(), res, key) {
		require.NoError(t, err)
		if n == 0 {
			entries, _ := os.ReadDir(dir)
			assert.Len(t, entries, 1, "the file is staged on disk")
		}
		if n < 40000 {
			require.Equal(t, "u"+strconv.Itoa(n), u.UserID)
		}
		n++
	}
	assert.Equal(t, 40003, n)
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "staged files are removed")

	// Early break also removes it.
	for range c.ExportedUsers(context.Background(), res, key) {
		break
	}
	entries, _ = os.ReadDir(dir)
	assert.Empty(t, entries)
}

func TestExportedIteratorErrors(t *testing.T) {
	t.Parallel()
	c, _ := newMockClient(t)
	for _, res := range []*ExportResult{nil, {Status: ExportRunning}} {
		n := 0
		for _, err := range c.ExportedDepartments(context.Background(), res, NewEncodingAESKey()) {
			assert.Error(t, err)
			n++
		}
		assert.Equal(t, 1, n)
	}
	// Nothing to read: no records, no error.
	for range c.ExportedTagUsers(context.Background(), &ExportResult{Status: ExportDone}, NewEncodingAESKey()) {
		t.Fatal("no record expected")
	}
	// A cancelled ctx stops the iteration.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	key := NewEncodingAESKey()
	fs := newFileServer(t)
	f := fs.add("a", encryptFor(t, key, userDoc(3)))
	var errs []error
	for _, err := range c.ExportedUsers(ctx, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}, key) {
		errs = append(errs, err)
	}
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], context.Canceled)
}

// decodeAll runs the streaming decoder over doc and collects what it hands
// out, as "field=raw".
func decodeAll(r io.Reader, arrays, values []string) ([]string, error) {
	var out []string
	var ferr error
	decodeExportStream(context.Background(), r, 0, arrays, values, func(d *exportDecoder, field string, raw []byte) bool {
		out = append(out, field+"="+string(raw))
		return true
	}, func(err error) { ferr = err })
	return out, ferr
}

func TestExportDecoderStreaming(t *testing.T) {
	t.Parallel()
	doc := `  {"skip":{"a":[1,"]\"}",{"b":null}]},"tagname":"标签\"x\\","userlist":[ {"userid":"a\\"} , {"userid":"b\"}"},{}],` +
		`"n":-1.5e3,"partylist":[2, 3],"t":true,"department":null,"e":[]}  `
	want := []string{`tagname="标签\"x\\"`, `userlist={"userid":"a\\"}`, `userlist={"userid":"b\"}"}`, `userlist={}`,
		`partylist=2`, `partylist=3`}
	for _, r := range []io.Reader{strings.NewReader(doc), iotest.OneByteReader(strings.NewReader(doc)), iotest.HalfReader(strings.NewReader(doc))} {
		got, err := decodeAll(r, []string{"userlist", "partylist", "department"}, []string{"tagname"})
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	bad := []string{
		``, `[]`, `{`, `{"userlist":[{"a":1}`, `{"userlist":[{"a":1},]}`, `{"userlist":[1 2]}`, `{"userlist":{}}`,
		`{"a":1,}`, `{"a" 1}`, `{} x`, `{"a":1}}`, `{"userlist":[{"a":"x}]}`, `{1:2}`, `{"a":]}`,
	}
	for _, b := range bad {
		for _, r := range []io.Reader{strings.NewReader(b), iotest.OneByteReader(strings.NewReader(b))} {
			_, err := decodeAll(r, []string{"userlist"}, nil)
			var de *ExportDecodeError
			assert.ErrorAs(t, err, &de, "%q", b)
		}
	}
}

func TestDecodeUserMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	full := `{"userid":"zhangsan","name":"张三","department":[1,2],"order":[10,40],"position":"产品经理","mobile":"13800000000",` +
		`"gender":"1","email":"zs@example.com","biz_mail":"zs@corp.example","is_leader_in_dept":[1,0],"direct_leader":["lisi","wangwu"],` +
		`"avatar":"http://wx.qlogo.cn/a/0","thumb_avatar":"http://wx.qlogo.cn/a/100","telephone":"020-123456","alias":"jackzhang",` +
		`"address":"广州市海珠区新港中路","open_userid":"xxxxxx","main_department":1,` +
		`"extattr":{"attrs":[{"type":0,"name":"文本名称","text":{"value":"文本"}},{"type":1,"name":"网页名称","web":{"url":"http://www.test.com","title":"标题"}}]},` +
		`"status":1,"qr_code":"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=xxx","external_position":"高级产品经理",` +
		`"external_profile":{"external_corp_name":"企业简称","wechat_channels":{"nickname":"视频号名称","status":1},"external_attr":[{"type":2,"name":"测试app","miniprogram":{"appid":"wx8bd80126147dFAKE","pagepath":"/index","title":"my miniprogram"}}]},` +
		`"english_name":"jack","enable":1,"hide_mobile":0,"is_leader":0,"unknown":{"x":[1,2]}}`
	cases := []string{
		full,
		`{}`, `{ "userid" : "a" , "department" : [ ] , "direct_leader" : [ ] } `,
		`{"userid":"esc\"aped\\\/\u00e9\ud83d\ude00"}`, `{"gender":2}`, `{"gender":""}`, `{"gender":"3"}`, `{"gender":null}`,
		`{"userid":null}`, `{"UserID":"x"}`, `{"userid":"a","userid":"b"}`, `{"status":1.5}`, `{"status":1e2}`,
		`{"status":-0}`, `{"status":0123}`, `{"status":99999999999999999999}`, `{"department":[1,"2"]}`,
		`{"name":"bad` + "\xff" + `utf8"}`, `{"name":"ctl` + "\x01" + `"}`, `{"extattr":{"attrs":[{"type":0,"name":"n","text":{"value":"v"},"web":null}]}}`,
		`{"extattr":{"attrs":[]}}`, `{"extattr":{}}`, `{"extattr":null}`, `{"userid":"a"} x`, `{"userid":"a",}`, `{"userid" "a"}`,
		`{"x":[1,2,}`, `{"external_profile":null}`, `{"ſtatus":1}`, `{"main_department":true}`,
	}
	for _, raw := range cases {
		var want ExportedUser
		wantErr := json.Unmarshal([]byte(raw), &want)
		var got ExportedUser
		err := decodeUser([]byte(raw), &got)
		if wantErr != nil {
			assert.Error(t, err, raw)
			continue
		}
		require.NoError(t, err, raw)
		assert.Equal(t, want, got, raw)
	}
	var u ExportedUser
	require.True(t, fastDecodeUser([]byte(full), &u), "the documented shape takes the fast path")
	assert.Equal(t, GenderMale, u.Gender)
	assert.Equal(t, "文本", u.ExtAttr.Attrs[0].Text.Value)
	assert.Equal(t, "wx8bd80126147dFAKE", u.ExternalProfile.ExternalAttr[0].Miniprogram.AppID)
}

func FuzzFastDecodeUser(f *testing.F) {
	f.Add([]byte(`{"userid":"a","department":[1,2],"gender":"1","extattr":{"attrs":[{"type":0,"name":"n","text":{"value":"v"}}]}}`))
	f.Add([]byte(`{"userid":"a\u0041","name":"x","status":-3,"direct_leader":["a","b"]}`))
	f.Add([]byte(`{"gender":1,"order":[0],"zz":{"a":[true,false,null]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got ExportedUser
		if !fastDecodeUser(raw, &got) {
			return
		}
		var want ExportedUser
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", raw, err)
		}
		if !assert.ObjectsAreEqual(want, got) {
			t.Fatalf("fast path differs on %q:\n got %#v\nwant %#v", raw, got, want)
		}
	})
}

// FuzzExportDecryptDecode feeds arbitrary ciphertext (or arbitrary
// plaintext, encrypted) through the verified-file path: padding check,
// streaming decryption, streaming decoding. It must never panic and must
// end in io.EOF or a typed error.
func FuzzExportDecryptDecode(f *testing.F) {
	key, _ := wxcrypto.DecodeKey("IJUiXNpvGbODwKEBSEsAeOAPAhkqHqNCF6g19t9wfg2")
	f.Add([]byte(`{"userlist":[{"userid":"zhangsan","name":"张三","department":[1,2]}]}`), true)
	f.Add([]byte(`{"tagname":"t","userlist":[{"userid":"a","name":"b"}],"partylist":[2]}`), true)
	f.Add([]byte(`{"department":[{"id":2,"name":"广州研发中心","name_en":"RDGZ","parentid":1,"order":10}]}`), true)
	f.Add([]byte(`{"userlist":[{"userid":`), true)
	f.Add(bytes.Repeat([]byte{0x42}, 48), false)
	f.Fuzz(func(t *testing.T, data []byte, encrypt bool) {
		ct := data
		if encrypt {
			ct, _ = wxcrypto.Encrypt(key, data)
		}
		r, err := openVerified(bytes.NewReader(ct), int64(len(ct)), key)
		if err != nil {
			if !errors.Is(err, ErrBadPadding) && !errors.Is(err, ErrCiphertextLength) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, kind := range [][2][]string{{{"userlist"}}, {{"department"}}, {{"userlist", "partylist"}, {"tagname"}}} {
			r, _ := openVerified(bytes.NewReader(ct), int64(len(ct)), key)
			decodeExportStream(context.Background(), r, 0, kind[0], kind[1], func(d *exportDecoder, field string, raw []byte) bool {
				var u ExportedUser
				_ = decodeUser(raw, &u)
				var dep ExportedDepartment
				_ = unmarshalObject(raw, &dep)
				return true
			}, func(err error) {
				var de *ExportDecodeError
				if !errors.As(err, &de) && !errors.Is(err, ErrBadPadding) {
					t.Fatalf("untyped error %v", err)
				}
			})
		}
		_ = r
	})
}
