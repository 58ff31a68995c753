package wecomtest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	tok := token(t, s)
	const p = "/cgi-bin/batch/getresult"
	u := s.api("batch/getresult", tok, "jobid", "x")

	t.Run("errcode times", func(t *testing.T) {
		s.InjectFault(p, Fault{ErrCode: 45009, Times: 2})
		wantCode(t, getJSON(t, u), 45009)
		wantCode(t, getJSON(t, u), 45009)
		wantCode(t, getJSON(t, u), 40088)
	})
	t.Run("status", func(t *testing.T) {
		s.InjectFault(p, Fault{Status: 502})
		st, b := doReq(t, "GET", u, nil, "")
		if st != 502 || !strings.Contains(string(b), "502 Bad Gateway") {
			t.Fatalf("HTTP %d %s", st, b)
		}
		wantCode(t, getJSON(t, u), 40088)
	})
	t.Run("body", func(t *testing.T) {
		s.InjectFault(p, Fault{Body: `{"errcode":0,"errm`, ContentType: "application/json"})
		st, b := doReq(t, "GET", u, nil, "")
		if st != 200 || string(b) != `{"errcode":0,"errm` {
			t.Fatalf("HTTP %d %s", st, b)
		}
		s.InjectFault(p, Fault{Body: "<html>maintenance</html>"})
		req, _ := http.NewRequest("GET", u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatal(resp.Header)
		}
	})
	t.Run("drop", func(t *testing.T) {
		s.InjectFault(p, Fault{Drop: true})
		// a fresh connection: Go's transport transparently retries an
		// idempotent request that a reused connection dropped
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatal("want a transport error")
		}
		wantCode(t, getJSON(t, u), 40088)
	})
	t.Run("delay", func(t *testing.T) {
		s.InjectFault(p, Fault{Delay: 150 * time.Millisecond})
		start := time.Now()
		wantCode(t, getJSON(t, u), 40088)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("forever and clear", func(t *testing.T) {
		s.InjectFault(p, Fault{ErrCode: -1, Times: -1})
		for range 5 {
			wantCode(t, getJSON(t, u), -1)
		}
		s.ClearFaults()
		wantCode(t, getJSON(t, u), 40088)
	})
	t.Run("gettoken", func(t *testing.T) {
		s.InjectFault("/cgi-bin/gettoken", Fault{ErrCode: 45009})
		m := getJSON(t, s.URL+"/cgi-bin/gettoken?corpid="+s.CorpID+"&corpsecret="+s.CorpSecret)
		wantCode(t, m, 45009)
		if token(t, s) != tok {
			t.Fatal("token changed")
		}
	})
}

func TestRandomFaults(t *testing.T) {
	t.Parallel()
	s := newSrv(t, WithFaultSeed(42))
	tok := token(t, s)
	s.InjectRandomFaults("*", 1, Fault{ErrCode: -1})
	wantCode(t, getJSON(t, s.api("export/get_result", tok, "jobid", "x")), -1)
	wantCode(t, postJSON(t, s.api("batch/invite", tok), obj{}), -1)
	token(t, s) // gettoken is never hit by "*"
	s.ClearFaults()
	s.InjectRandomFaults("/cgi-bin/batch/getresult", 0.5, Fault{Status: 503})
	n503 := 0
	for range 200 {
		st, _ := doReq(t, "GET", s.api("batch/getresult", tok, "jobid", "x"), nil, "")
		if st == 503 {
			n503++
		}
	}
	if n503 < 60 || n503 > 140 {
		t.Fatalf("%d of 200 faulted at rate 0.5", n503)
	}
}

func TestDownloadFaults(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	for i := range 300 {
		if err := s.AddMember(Member{UserID: fmt.Sprintf("u%d", i), Name: "n", Department: []int{1}, Email: fmt.Sprintf("u%d@x.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	tok := token(t, s)
	list := waitExport(t, s, tok, submitExport(t, s, tok, "user", obj{"encoding_aeskey": testKey}))
	u := str(t, list[0], "url")
	size, sum := num(t, list[0], "size"), str(t, list[0], "md5")
	get := func(hdr ...string) (int, []byte, error) {
		req, _ := http.NewRequest("GET", u, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	t.Run("truncate", func(t *testing.T) {
		s.InjectFault(ExportFilePath, Fault{Truncate: true})
		_, b, err := get()
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != size/2 {
			t.Fatalf("err %v, %d of %d bytes", err, len(b), size)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		s.InjectFault(ExportFilePath, Fault{Corrupt: true})
		st, b, err := get()
		h := md5.Sum(b)
		if err != nil || st != 200 || len(b) != size || hex.EncodeToString(h[:]) == sum {
			t.Fatalf("HTTP %d err %v", st, err)
		}
	})
	t.Run("drop after and resume", func(t *testing.T) {
		s.InjectFault(ExportFilePath, Fault{DropAfter: 1000})
		_, first, err := get()
		if err == nil || len(first) != 1000 {
			t.Fatalf("err %v, %d bytes", err, len(first))
		}
		st, rest, err := get("Range", "bytes=1000-")
		if err != nil || st != 206 {
			t.Fatalf("resume HTTP %d %v", st, err)
		}
		h := md5.Sum(append(first, rest...))
		if hex.EncodeToString(h[:]) != sum {
			t.Fatal("resumed file md5 mismatch")
		}
	})
	t.Run("status on download", func(t *testing.T) {
		s.InjectFault(ExportFilePath, Fault{Status: 500})
		if st, _, _ := get(); st != 500 {
			t.Fatal(st)
		}
		if st, b, _ := get(); st != 200 || len(b) != size {
			t.Fatal("fault not consumed")
		}
	})
	if n := s.CallCount(ExportFilePath); n != 6 {
		t.Fatalf("CallCount(ExportFilePath) = %d", n)
	}
}

// TestNoPanicOnGarbage throws malformed input at every endpoint: never a
// 500, always an errcode.
func TestNoPanicOnGarbage(t *testing.T) {
	t.Parallel()
	s := newSrv(t, WithMinBlockSize(1))
	tok := token(t, s)
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := []string{"", "null", "[]", "{}", `{"media_id":null}`, `{"media_id":[1]}`, `{"callback":"x"}`,
		`{"user":"x"}`, `{"party":[1.5]}`, `{"encoding_aeskey":1}`, `{"block_size":"x"}`, `{"tagid":-1}`, "\xff\xfe", strings.Repeat("{", 10000)}
	for i := 0; i < 20; i++ {
		b := make([]byte, rng.IntN(200))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		bodies = append(bodies, string(b))
	}
	for path, rt := range routes {
		for _, b := range bodies {
			for _, q := range []string{"", "&jobid=" + url.QueryEscape(b), "&type=file", "&corpid=" + url.QueryEscape(b)} {
				st, resp := doReq(t, rt.method, s.URL+path+"?access_token="+tok+q, []byte(b), "multipart/form-data; boundary=x")
				if st == 500 {
					t.Fatalf("%s: HTTP 500 for %q", path, b)
				}
				if st == 200 {
					decodeObj(t, resp)
				}
			}
		}
	}
	// random CSVs through every import type: jobs end, no panic
	var mu sync.Mutex
	for i := range 30 {
		var sb strings.Builder
		if i%2 == 0 {
			sb.WriteString(MemberCSVHeader + "\n")
		} else {
			sb.WriteString(DepartmentCSVHeader + "\n")
		}
		for range 5 {
			for c := range 6 {
				if c > 0 {
					sb.WriteByte(",;\""[rng.IntN(3)])
				}
				sb.WriteString([]string{"1", "2", "x", "", "0", "-1", "1;2", "a@b.c", "13800000000", "名"}[rng.IntN(10)])
			}
			sb.WriteString([]string{"\n", "\r\n"}[rng.IntN(2)])
		}
		kind := []string{"syncuser", "replaceuser", "replaceparty"}[i%3]
		mu.Lock()
		m := runImport(t, s, tok, kind, sb.String())
		mu.Unlock()
		if num(t, m, "status") != 3 {
			t.Fatal(m)
		}
	}
	for _, kind := range []string{"user", "simple_user", "department"} {
		fetchAll(t, waitExport(t, s, tok, submitExport(t, s, tok, kind, obj{"encoding_aeskey": testKey, "block_size": 3})), testKey)
	}
}

// TestCloseNoLeaks is not parallel: it compares goroutine counts.
func TestCloseNoLeaks(t *testing.T) {
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	runtime.GC()
	base := runtime.NumGoroutine()

	s := NewServer(WithJobStepDelay(20*time.Millisecond), WithCallbackRetries(50, 10*time.Millisecond))
	tok := token(t, s)
	var rows []string
	for i := range 200 {
		rows = append(rows, fmt.Sprintf("n,u%d,,u%d@x.com,1", i, i))
	}
	mid := upload(t, s, tok, []byte(memberCSV(rows...)))
	wantCode(t, postJSON(t, s.api("batch/syncuser", tok), obj{"media_id": mid,
		"callback": obj{"url": "http://127.0.0.1:1/cb", "token": "t", "encodingaeskey": testKey}}), 0)
	wantCode(t, postJSON(t, s.api("export/user", tok), obj{"encoding_aeskey": testKey}), 0)
	// a request stuck in an injected delay
	s.InjectFault("/cgi-bin/batch/invite", Fault{Delay: time.Hour})
	done := make(chan error, 1)
	go func() {
		resp, err := client.Post(s.api("batch/invite", tok), "application/json", bytes.NewReader([]byte(`{"user":["a"]}`)))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	time.Sleep(30 * time.Millisecond)
	start := time.Now()
	s.Close()
	<-done
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	tr.CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d > baseline %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
	// a closed server refuses connections; a second Close is harmless
	if _, err := client.Get(s.URL + "/cgi-bin/gettoken"); err == nil {
		t.Fatal("server still answering")
	}
	s.Close()
}
