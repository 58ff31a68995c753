package wecom

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// exportMemLimit is the largest data file OpenExportFile keeps in memory;
// larger files are staged in a temporary file.
const exportMemLimit = 4 << 20

// ChecksumError is an export data file whose downloaded size or md5
// differs from what export/get_result announced. It matches
// ErrChecksumMismatch with errors.Is. File is the URL without its query.
type ChecksumError struct {
	File              string
	WantSize, GotSize int64
	WantMD5, GotMD5   string
}

// Error names the file (without its query) and the sizes and md5s that differ.
func (e *ChecksumError) Error() string {
	if e.WantSize != e.GotSize {
		return fmt.Sprintf("wecom: export file %s: size mismatch: want %d bytes, got %d", e.File, e.WantSize, e.GotSize)
	}
	return fmt.Sprintf("wecom: export file %s: md5 mismatch: want %s, got %s", e.File, e.WantMD5, e.GotMD5)
}

// Unwrap makes errors.Is(err, ErrChecksumMismatch) true.
func (e *ChecksumError) Unwrap() error { return ErrChecksumMismatch }

// safeURL returns scheme://host/path of u: a signed URL without its
// signature, fit for logs and errors.
func safeURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// OpenExportFile downloads one data file of an export, verifies it and
// returns its plaintext JSON as a stream
// (https://developer.work.weixin.qq.com/document/path/94954).
//
// The ciphertext is downloaded first, resuming with an HTTP Range request
// after a dropped connection or a 5xx answer (c's RetryPolicy bounds the
// consecutive failures), and checked against f.Size and f.MD5: a mismatch
// is a *ChecksumError (ErrChecksumMismatch). No plaintext byte is handed
// out before that check. The padding of the last blocks is checked too, so
// a wrong key fails here with ErrBadPadding (in all but about 1 in 256
// cases, where it fails as soon as the JSON is read). Files larger than
// 4 MiB are staged in a temporary file (os.TempDir), removed by Close:
// that is what keeps memory flat for files of hundreds of MB.
//
// Decryption is AES-256-CBC with IV = key[:16] and 32-byte PKCS#7 padding,
// done as the returned reader is read. A body whose length is not a
// multiple of 16 is base64-decoded when it is base64 text, and otherwise is
// ErrCiphertextLength. A URL refused with 403, 404 or 410 (it is valid for
// 2 hours) is ErrExportURLExpired and a *ResponseError. No access_token is
// sent: the URL is pre-signed; it is never logged or put in an error with
// its query.
func (c *Client) OpenExportFile(ctx context.Context, f ExportFile, encodingAESKey string) (io.ReadCloser, error) {
	if ctx == nil {
		return nil, errors.New("wecom: nil context")
	}
	key, err := wxcrypto.DecodeKey(encodingAESKey)
	if err != nil {
		return nil, fmt.Errorf("wecom: OpenExportFile: %w", ErrInvalidAESKey)
	}
	u, err := url.Parse(f.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("wecom: OpenExportFile: ExportFile.URL is not an http(s) URL")
	}
	name := safeURL(u)
	wantMD5 := strings.ToLower(f.MD5)
	if b, err := hex.DecodeString(wantMD5); err != nil || len(b) != md5.Size {
		return nil, fmt.Errorf("wecom: OpenExportFile: %s: ExportFile.MD5 %.40q is not 32 hex digits", name, f.MD5)
	}
	if f.Size <= 0 {
		return nil, fmt.Errorf("wecom: OpenExportFile: %s: ExportFile.Size %d is not positive", name, f.Size)
	}

	st, err := newStage(f.Size, c.exportDir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.close()
		}
	}()
	h := md5.New()
	got, err := c.download(ctx, u, name, f.Size, st, h)
	if err != nil {
		return nil, err
	}
	gotMD5 := hex.EncodeToString(h.Sum(nil))
	if got != f.Size || gotMD5 != wantMD5 {
		return nil, &ChecksumError{File: name, WantSize: f.Size, GotSize: got, WantMD5: wantMD5, GotMD5: gotMD5}
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: export file verified", slog.String("file", name), slog.Int64("bytes", got))

	ra, size, err := st.ciphertext()
	if err != nil {
		return nil, fmt.Errorf("wecom: export file %s: %w", name, err)
	}
	dr, err := openVerified(ra, size, key)
	if err != nil {
		return nil, fmt.Errorf("wecom: export file %s: %w", name, err)
	}
	ok = true
	return &exportFileReader{r: dr, st: st}, nil
}

// openVerified checks the padding of ciphertext ra (size bytes, already
// verified) and returns the streaming decryption of it.
func openVerified(ra io.ReaderAt, size int64, key []byte) (io.Reader, error) {
	if size <= 0 || size%aes.BlockSize != 0 {
		return nil, ErrCiphertextLength
	}
	if err := checkTailPadding(ra, size, key); err != nil {
		return nil, err
	}
	return wxcrypto.NewDecryptReader(io.NewSectionReader(ra, 0, size), key)
}

// checkTailPadding decrypts the last (up to) two AES blocks on their own,
// which CBC allows, and checks the PKCS#7 padding: a wrong key is reported
// before any plaintext is read.
func checkTailPadding(ra io.ReaderAt, size int64, key []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return ErrInvalidAESKey
	}
	n := min(size, 2*aes.BlockSize)
	var buf [3 * aes.BlockSize]byte
	var iv, ct []byte
	if size > n {
		if _, err := ra.ReadAt(buf[:aes.BlockSize+n], size-n-aes.BlockSize); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		iv, ct = buf[:aes.BlockSize], buf[aes.BlockSize:aes.BlockSize+n]
	} else {
		if _, err := ra.ReadAt(buf[:n], 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		iv, ct = key[:aes.BlockSize], buf[:n]
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	// A pad value k ≤ 32 fits in the last 32 bytes.
	_, err = wxcrypto.Unpad(plain)
	return err
}

// exportFileReader is the plaintext stream of a verified data file.
type exportFileReader struct {
	r  io.Reader
	st *stage
}

func (r *exportFileReader) Read(p []byte) (int, error) {
	if r.st == nil {
		return 0, errors.New("wecom: read from a closed export file")
	}
	return r.r.Read(p)
}

func (r *exportFileReader) Close() error {
	if r.st == nil {
		return nil
	}
	err := r.st.close()
	r.st = nil
	return err
}

// stage holds a downloaded ciphertext: in memory when small, in a
// temporary file otherwise.
type stage struct {
	mem  *bytes.Buffer
	file *os.File
	dir  string
	n    int64
	werr error // the first write error: the disk, not the network
	// decoded replaces the body once it has been base64-decoded.
	decoded *stage
}

func newStage(size int64, dir string) (*stage, error) {
	if size <= exportMemLimit {
		return &stage{mem: bytes.NewBuffer(make([]byte, 0, size))}, nil
	}
	f, err := os.CreateTemp(dir, "wecom-export-*")
	if err != nil {
		return nil, fmt.Errorf("wecom: staging export file: %w", err)
	}
	return &stage{file: f, dir: dir}, nil
}

func (s *stage) Write(p []byte) (int, error) {
	var n int
	var err error
	if s.mem != nil {
		n, err = s.mem.Write(p)
	} else {
		n, err = s.file.Write(p)
	}
	s.n += int64(n)
	if err != nil && s.werr == nil {
		s.werr = err
	}
	return n, err
}

// reset discards everything written (a server that ignored Range).
func (s *stage) reset() error {
	s.n = 0
	if s.mem != nil {
		s.mem.Reset()
		return nil
	}
	if err := s.file.Truncate(0); err != nil {
		return err
	}
	_, err := s.file.Seek(0, io.SeekStart)
	return err
}

func (s *stage) readerAt() io.ReaderAt {
	if s.mem != nil {
		return bytes.NewReader(s.mem.Bytes())
	}
	return s.file
}

// ciphertext returns the binary ciphertext: the body itself, or its
// base64 decoding when the body is not a multiple of 16 bytes long and is
// base64 text (WeCom is not documented to base64 export files; this is a
// defence, see wecom-api.md §7.3).
func (s *stage) ciphertext() (io.ReaderAt, int64, error) {
	if s.n%aes.BlockSize == 0 {
		return s.readerAt(), s.n, nil
	}
	ra := s.readerAt()
	if !isBase64Text(io.NewSectionReader(ra, 0, s.n)) {
		return nil, 0, fmt.Errorf("%w (%d bytes, not base64 text either)", ErrCiphertextLength, s.n)
	}
	d, err := newStage(s.n*3/4, s.dir)
	if err != nil {
		return nil, 0, err
	}
	s.decoded = d
	if _, err := io.Copy(d, base64.NewDecoder(base64.StdEncoding, io.NewSectionReader(ra, 0, s.n))); err != nil {
		return nil, 0, fmt.Errorf("%w (base64 body does not decode: %v)", ErrCiphertextLength, err)
	}
	if d.n == 0 || d.n%aes.BlockSize != 0 {
		return nil, 0, fmt.Errorf("%w (%d bytes after base64 decoding)", ErrCiphertextLength, d.n)
	}
	return d.readerAt(), d.n, nil
}

// isBase64Text reports whether r holds standard base64 (line breaks
// allowed, '=' only at the end) of a whole number of bytes.
func isBase64Text(r io.Reader) bool {
	buf := make([]byte, 32<<10)
	chars, pads := 0, 0
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			switch {
			case c == '\r' || c == '\n':
			case c == '=':
				pads++
				if pads > 2 {
					return false
				}
			case pads > 0:
				return false
			case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
				chars++
			default:
				return false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return false
		}
	}
	return chars > 0 && (chars+pads)%4 == 0
}

func (s *stage) close() error {
	var err error
	if s.decoded != nil {
		err = s.decoded.close()
		s.decoded = nil
	}
	if s.file != nil {
		name := s.file.Name()
		err = errors.Join(err, s.file.Close(), os.Remove(name))
		s.file = nil
	}
	s.mem = nil
	return err
}

// download writes the body at u to w, hashing it into h, and returns its
// length. It reads at most size+1 bytes (one more shows a size mismatch).
// After a dropped connection or a 5xx it asks for the rest with
// "Range: bytes=N-"; a server that answers 200 instead of 206 makes it
// start over. Consecutive failures are bounded by the retry policy.
func (c *Client) download(ctx context.Context, u *url.URL, name string, size int64, st *stage, h hash.Hash) (int64, error) {
	hc := c.rc.GetClient()
	failures := 0
	var lastErr error
	for {
		if err := ctx.Err(); err != nil {
			if lastErr != nil {
				return st.n, fmt.Errorf("%w (last error: %w)", err, lastErr)
			}
			return st.n, err
		}
		before := st.n
		done, retry, err := c.downloadOnce(ctx, hc, u, name, size, st, h)
		if done {
			return st.n, nil
		}
		if !retry {
			return st.n, err
		}
		lastErr = err
		if st.n > before {
			failures = 0 // progress was made: count consecutive failures only
		}
		failures++
		if failures >= c.retry.MaxAttempts {
			return st.n, err
		}
		d := c.backoff(failures)
		c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: export download interrupted, resuming",
			slog.String("file", name), slog.Int64("have", st.n), slog.Duration("delay", d), slog.String("error", err.Error()))
		if err := sleepCtx(ctx, d); err != nil {
			return st.n, fmt.Errorf("%w (last error: %w)", err, lastErr)
		}
	}
}

// downloadOnce makes one request for the bytes not yet received.
func (c *Client) downloadOnce(ctx context.Context, hc *http.Client, u *url.URL, name string, size int64, st *stage, h hash.Hash) (done, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, false, fmt.Errorf("wecom: export file %s: %v", name, redact(err.Error()))
	}
	req.Header.Set("User-Agent", "wecomkit-wecom-go")
	offset := st.n
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return false, true, netErr(name, err)
	}
	defer resp.Body.Close()
	c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: export download",
		slog.String("file", name), slog.Int("status", resp.StatusCode), slog.Int64("offset", offset))
	switch {
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			// The server ignored Range: take the whole body again.
			if err := st.reset(); err != nil {
				return false, false, fmt.Errorf("wecom: staging export file: %w", err)
			}
			h.Reset()
		}
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		if !contentRangeStartsAt(resp.Header.Get("Content-Range"), offset) {
			return false, false, &ResponseError{Path: name, StatusCode: resp.StatusCode,
				Reason: "Content-Range does not start at the requested offset " + strconv.FormatInt(offset, 10)}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		// We already have every byte the server has (or it lost track):
		// the size check decides.
		return true, false, nil
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		re := &ResponseError{Path: name, StatusCode: resp.StatusCode, Reason: http.StatusText(resp.StatusCode) + " (the URL is valid for 2 hours)", Snippet: bodySnippet(resp.Body)}
		return false, false, fmt.Errorf("%w: %w", ErrExportURLExpired, re)
	default:
		re := &ResponseError{Path: name, StatusCode: resp.StatusCode, Reason: http.StatusText(resp.StatusCode), Snippet: bodySnippet(resp.Body)}
		return false, re.Temporary(), re
	}
	limit := size + 1 - st.n
	if limit <= 0 {
		return true, false, nil
	}
	n, err := io.Copy(io.MultiWriter(st, h), io.LimitReader(resp.Body, limit))
	if err != nil {
		if st.werr != nil {
			return false, false, fmt.Errorf("wecom: staging export file: %w", st.werr)
		}
		return false, true, netErr(name, err)
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "wecom: export download done",
		slog.String("file", name), slog.Int64("bytes", n), slog.Duration("elapsed", time.Since(start)))
	return true, false, nil
}

// contentRangeStartsAt reports whether a Content-Range header
// ("bytes N-M/T") starts at offset.
func contentRangeStartsAt(h string, offset int64) bool {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return err == nil && n == offset
}

func bodySnippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 64))
	return snippet(b)
}
