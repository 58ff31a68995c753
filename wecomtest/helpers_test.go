package wecomtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests drive the server over raw HTTP only, and decrypt with crypto/aes
// directly, never through the server's own helpers.

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1700000000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newSrv(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := NewServer(opts...)
	t.Cleanup(s.Close)
	return s
}

type obj = map[string]any

var errmsgShape = regexp.MustCompile(`^.+, hint: \[\d+_\d+_[0-9a-f]+\], from ip: 127\.0\.0\.1, more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=(-?\d+)$`)

func doReq(t testing.TB, method, u string, body []byte, ct string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return resp.StatusCode, b
}

func decodeObj(t testing.TB, b []byte) obj {
	t.Helper()
	var m obj
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, b)
	}
	return m
}

func getJSON(t testing.TB, u string) obj {
	t.Helper()
	st, b := doReq(t, http.MethodGet, u, nil, "")
	if st != 200 {
		t.Fatalf("GET %s: HTTP %d %s", u, st, b)
	}
	return decodeObj(t, b)
}

func postJSON(t testing.TB, u string, v any) obj {
	t.Helper()
	var body []byte
	switch x := v.(type) {
	case string:
		body = []byte(x)
	case []byte:
		body = x
	default:
		body, _ = json.Marshal(v)
	}
	st, b := doReq(t, http.MethodPost, u, body, "application/json")
	if st != 200 {
		t.Fatalf("POST %s: HTTP %d %s", u, st, b)
	}
	return decodeObj(t, b)
}

func num(t testing.TB, m obj, k string) int {
	t.Helper()
	v, ok := m[k]
	if !ok {
		t.Fatalf("field %q missing in %v", k, m)
	}
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("field %q is %T, want a JSON number: %v", k, v, m)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("field %q: %v", k, err)
	}
	return int(i)
}

func str(t testing.TB, m obj, k string) string {
	t.Helper()
	v, ok := m[k].(string)
	if !ok {
		t.Fatalf("field %q is %T, want string: %v", k, m[k], m)
	}
	return v
}

// wantCode asserts errcode and, for errors, WeCom's errmsg shape.
func wantCode(t testing.TB, m obj, code int) {
	t.Helper()
	if got := num(t, m, "errcode"); got != code {
		t.Fatalf("errcode = %d, want %d (%v)", got, code, m)
	}
	msg := str(t, m, "errmsg")
	if code != 0 {
		sm := errmsgShape.FindStringSubmatch(msg)
		if sm == nil || sm[1] != fmt.Sprint(code) {
			t.Fatalf("errmsg %q lacks WeCom's hint shape for %d", msg, code)
		}
	}
}

func (s *Server) api(path, tok string, q ...string) string {
	v := url.Values{}
	if tok != "" {
		v.Set("access_token", tok)
	}
	for i := 0; i+1 < len(q); i += 2 {
		v.Set(q[i], q[i+1])
	}
	return s.URL + "/cgi-bin/" + path + "?" + v.Encode()
}

func token(t testing.TB, s *Server) string {
	t.Helper()
	m := getJSON(t, s.URL+"/cgi-bin/gettoken?corpid="+url.QueryEscape(s.CorpID)+"&corpsecret="+url.QueryEscape(s.CorpSecret))
	wantCode(t, m, 0)
	return str(t, m, "access_token")
}

func multipartBody(field, filename string, data []byte) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile(field, filename)
	fw.Write(data)
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func uploadRaw(t testing.TB, s *Server, tok, typ, field, filename string, data []byte) obj {
	t.Helper()
	body, ct := multipartBody(field, filename, data)
	st, b := doReq(t, http.MethodPost, s.api("media/upload", tok, "type", typ), body, ct)
	if st != 200 {
		t.Fatalf("upload: HTTP %d %s", st, b)
	}
	return decodeObj(t, b)
}

func upload(t testing.TB, s *Server, tok string, data []byte) string {
	t.Helper()
	m := uploadRaw(t, s, tok, "file", "media", "import.csv", data)
	wantCode(t, m, 0)
	return str(t, m, "media_id")
}

// submit uploads csv and submits it to batch/<kind>; it returns the jobid.
func submit(t testing.TB, s *Server, tok, kind, csv string, extra obj) string {
	t.Helper()
	body := obj{"media_id": upload(t, s, tok, []byte(csv))}
	for k, v := range extra {
		body[k] = v
	}
	m := postJSON(t, s.api("batch/"+kind, tok), body)
	wantCode(t, m, 0)
	id := str(t, m, "jobid")
	if len(id) != 43 || strings.ContainsAny(id, "+/=") {
		t.Fatalf("import jobid %q is not 43 url-safe base64 characters", id)
	}
	return id
}

// waitJob polls batch/getresult until status 3.
func waitJob(t testing.TB, s *Server, tok, id string) obj {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m := getJSON(t, s.api("batch/getresult", tok, "jobid", id))
		if num(t, m, "status") == 3 {
			return m
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

func runImport(t testing.TB, s *Server, tok, kind, csv string) obj {
	t.Helper()
	return waitJob(t, s, tok, submit(t, s, tok, kind, csv, nil))
}

// rowCodes maps userid (or partyid) → errcode from a finished job.
func rowCodes(t testing.TB, m obj) map[string]int {
	t.Helper()
	out := map[string]int{}
	items, _ := m["result"].([]any)
	for _, it := range items {
		r := it.(obj)
		k := ""
		if u, ok := r["userid"].(string); ok {
			k = u
		} else {
			k = r["partyid"].(json.Number).String()
		}
		out[k] = num(t, r, "errcode")
	}
	return out
}

// waitExport polls export/get_result until status 2 and returns data_list.
func waitExport(t testing.TB, s *Server, tok, id string) []obj {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m := getJSON(t, s.api("export/get_result", tok, "jobid", id))
		wantCode(t, m, 0)
		if num(t, m, "status") == 2 {
			var out []obj
			for _, it := range m["data_list"].([]any) {
				out = append(out, it.(obj))
			}
			return out
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("export %s did not finish", id)
	return nil
}

// independentDecrypt is AES-256-CBC with IV = key[:16] and 32-byte PKCS#7,
// written against crypto/cipher directly (not wxcrypto).
func independentDecrypt(t testing.TB, encodingAESKey string, ct []byte) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		t.Fatalf("bad key: %v", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) == 0 || len(ct)%32 != 0 {
		t.Fatalf("ciphertext length %d is not a positive multiple of 32", len(ct))
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad < 1 || pad > 32 {
		t.Fatalf("bad pad %d", pad)
	}
	for _, c := range pt[len(pt)-pad:] {
		if int(c) != pad {
			t.Fatalf("bad padding bytes")
		}
	}
	return pt[:len(pt)-pad]
}

const testKey = "IJUiXNpvGbODwKEBSEsAeOAPAhkqHqNCF6g19t9wfg2"

func download(t testing.TB, u string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("download read: %v", err)
	}
	return resp.StatusCode, b, resp.Header
}

func memberCSV(rows ...string) string {
	return MemberCSVHeader + "\n" + strings.Join(rows, "\n") + "\n"
}
