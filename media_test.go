package wecom

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// uploadCapture records the uploaded parts.
type uploadCapture struct {
	mu        sync.Mutex
	filenames []string
	contents  [][]byte
	lengths   []int64
}

func (u *uploadCapture) responder(t *testing.T, answers ...string) httpmock.Responder {
	var n atomic.Int64
	return func(r *http.Request) (*http.Response, error) {
		assert.Equal(t, "file", r.URL.Query().Get("type"))
		assert.NotEmpty(t, r.URL.Query().Get("access_token"))
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		require.NoError(t, err)
		assert.Equal(t, "multipart/form-data", mt)
		mr := multipart.NewReader(r.Body, params["boundary"])
		p, err := mr.NextPart()
		require.NoError(t, err)
		assert.Equal(t, "media", p.FormName())
		b, _ := io.ReadAll(p)
		_, err = mr.NextPart()
		assert.ErrorIs(t, err, io.EOF, "exactly one part")
		u.mu.Lock()
		u.filenames = append(u.filenames, p.FileName())
		u.contents = append(u.contents, b)
		u.lengths = append(u.lengths, r.ContentLength)
		u.mu.Unlock()
		i := int(n.Add(1)) - 1
		return httpmock.NewStringResponse(200, answers[min(i, len(answers)-1)]), nil
	}
}

const okUpload = `{"errcode":0,"errmsg":"","type":"file","media_id":"1G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0","created_at":"1380000000"}`

func TestUploadFileShape(t *testing.T) {
	t.Parallel()
	content := []byte("姓名,帐号\n张三,zhangsan\n")
	dir := t.TempDir()
	path := filepath.Join(dir, "m.csv")
	require.NoError(t, os.WriteFile(path, content, 0o600))
	readers := map[string]func() io.Reader{
		"bytes.Reader":   func() io.Reader { return bytes.NewReader(content) },
		"strings.Reader": func() io.Reader { return strings.NewReader(string(content)) },
		"one-shot":       func() io.Reader { return iotest.OneByteReader(bytes.NewReader(content)) },
		"os.File": func() io.Reader {
			f, err := os.Open(path)
			require.NoError(t, err)
			t.Cleanup(func() { f.Close() })
			return f
		},
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, mt := mockClient(t)
			tokenResponder(t, mt)
			var cap uploadCapture
			mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/media/upload", cap.responder(t, okUpload))
			m, err := c.UploadFile(context.Background(), "members.csv", mk())
			require.NoError(t, err)
			assert.Equal(t, "1G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0", m.MediaID)
			assert.Equal(t, "file", m.Type)
			assert.Equal(t, time.Unix(1380000000, 0), m.CreatedAt)
			require.Len(t, cap.contents, 1)
			assert.Equal(t, content, cap.contents[0])
			assert.Equal(t, "members.csv", cap.filenames[0])
			assert.Positive(t, cap.lengths[0], "Content-Length is sent, not chunked")
		})
	}
}

// A token error makes the client refresh the token and resend the upload:
// the second attempt carries the same bytes, even from a one-shot reader.
func TestUploadFileReplayedAfterTokenRefresh(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t)
	n := tokenResponder(t, mt)
	var cap uploadCapture
	mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/media/upload",
		cap.responder(t, `{"errcode":42001,"errmsg":"access_token expired"}`, okUpload))
	content := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB, several chunks
	_, err := c.UploadFile(context.Background(), "big.csv", iotest.HalfReader(bytes.NewReader(content)))
	require.NoError(t, err)
	require.Len(t, cap.contents, 2)
	assert.Equal(t, content, cap.contents[0])
	assert.Equal(t, cap.contents[0], cap.contents[1])
	assert.EqualValues(t, 2, n.Load())
}

func TestUploadFileRefusedBeforeNetwork(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		filename string
		r        io.Reader
		want     error
		substr   string
	}{
		{"empty", "a.csv", strings.NewReader(""), ErrFileTooSmall, ""},
		{"5 bytes", "a.csv", strings.NewReader("12345"), ErrFileTooSmall, ""},
		{"over 20 MB", "a.csv", io.LimitReader(zeroReader{}, MaxUploadSize+1), ErrFileTooLarge, ""},
		{"over 20 MB bytes.Reader", "a.csv", bytes.NewReader(make([]byte, MaxUploadSize+1)), ErrFileTooLarge, ""},
		{"no filename", "", strings.NewReader("123456"), nil, "filename is empty"},
		{"quote in filename", `a".csv`, strings.NewReader("123456"), nil, "quote"},
		{"newline in filename", "a\r\nX: y", strings.NewReader("123456"), nil, "control"},
		{"nil reader", "a.csv", nil, nil, "nil reader"},
		{"read error", "a.csv", iotest.ErrReader(errors.New("disk on fire")), nil, "disk on fire"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, mt := mockClient(t)
			_, err := c.UploadFile(context.Background(), tc.filename, tc.r)
			require.Error(t, err)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
			assert.Contains(t, err.Error(), tc.substr)
			assert.Zero(t, mt.GetTotalCallCount(), "no network call")
		})
	}
	// Exactly 6 bytes and exactly 20 MB are accepted.
	for _, size := range []int{MinUploadSize, MaxUploadSize} {
		c, mt := mockClient(t)
		tokenResponder(t, mt)
		var cap uploadCapture
		mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/media/upload", cap.responder(t, okUpload))
		_, err := c.UploadFile(context.Background(), "ok.csv", io.LimitReader(zeroReader{}, int64(size)))
		require.NoError(t, err, "size %d", size)
		assert.Len(t, cap.contents[0], size)
	}
}

func TestUploadFileAPIErrors(t *testing.T) {
	t.Parallel()
	c, mt := mockClient(t)
	tokenResponder(t, mt)
	mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/media/upload", httpmock.NewStringResponder(200, `{"errcode":40006,"errmsg":"invalid file size"}`))
	_, err := c.UploadFile(context.Background(), "a.csv", strings.NewReader("123456"))
	assert.True(t, IsCode(err, CodeInvalidFileSize))

	c2, mt2 := mockClient(t)
	tokenResponder(t, mt2)
	mt2.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/media/upload", httpmock.NewStringResponder(200, `{"errcode":0,"errmsg":""}`))
	_, err = c2.UploadFile(context.Background(), "a.csv", strings.NewReader("123456"))
	var re *ResponseError
	assert.ErrorAs(t, err, &re)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkUploadFile20MB uploads a 20 MB one-shot stream to a loopback
// server; B/op is the extra memory per upload: the buffered copy of the
// file (the body is streamed from it, never copied again) plus overhead.
func BenchmarkUploadFile20MB(b *testing.B) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cgi-bin/gettoken" {
			io.WriteString(w, `{"errcode":0,"errmsg":"ok","access_token":"T","expires_in":7200}`)
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, okUpload)
	}))
	defer hs.Close()
	c, _ := NewClient(testCorp, testSecret, WithBaseURL(hs.URL))
	ctx := context.Background()
	b.SetBytes(MaxUploadSize)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.UploadFile(ctx, "big.csv", io.LimitReader(zeroReader{}, MaxUploadSize)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(MaxUploadSize)/(1<<20), "file-MiB")
}

// UploadFile reads r from where it stands, as any io.Reader is read: a
// reader the caller has already advanced uploads only the rest, whatever
// its concrete type.
func TestUploadFileStartsAtTheReadersPosition(t *testing.T) {
	t.Parallel()
	const skip, rest = "HEADER-TO-SKIP\n", "userid,name\nzhangsan,张三\n"
	cases := map[string]func() io.Reader{
		"bytes.Reader":   func() io.Reader { return bytes.NewReader([]byte(skip + rest)) },
		"strings.Reader": func() io.Reader { return strings.NewReader(skip + rest) },
		"io.SectionReader": func() io.Reader {
			return io.NewSectionReader(strings.NewReader("xx"+skip+rest), 2, int64(len(skip+rest)))
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := mk()
			_, err := io.ReadFull(r, make([]byte, len(skip)))
			require.NoError(t, err)
			c, mt := mockClient(t)
			tokenResponder(t, mt)
			var cap uploadCapture
			mt.RegisterResponder(http.MethodPost, testBase+"/cgi-bin/media/upload", cap.responder(t, okUpload))
			_, err = c.UploadFile(context.Background(), "members.csv", r)
			require.NoError(t, err)
			require.Len(t, cap.contents, 1)
			assert.Equal(t, rest, string(cap.contents[0]))
		})
	}
}
