package wecomtest

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestGetToken(t *testing.T) {
	t.Parallel()
	s := newSrv(t, WithCorp("wwcorp1", "sekrit"))
	if s.CorpID != "wwcorp1" || s.CorpSecret != "sekrit" || !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("bad server fields %q %q %q", s.URL, s.CorpID, s.CorpSecret)
	}
	tests := []struct {
		name, query string
		code        int
	}{
		{"ok", "corpid=wwcorp1&corpsecret=sekrit", 0},
		{"missing corpid", "corpsecret=sekrit", 41002},
		{"missing secret", "corpid=wwcorp1", 41004},
		{"wrong corpid", "corpid=other&corpsecret=sekrit", 40013},
		{"wrong secret", "corpid=wwcorp1&corpsecret=nope", 40001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := getJSON(t, s.URL+"/cgi-bin/gettoken?"+tc.query)
			wantCode(t, m, tc.code)
			if tc.code == 0 {
				if str(t, m, "errmsg") != "ok" || num(t, m, "expires_in") != 7200 {
					t.Fatalf("bad success shape %v", m)
				}
				if tok := str(t, m, "access_token"); tok == "" || len(tok) > 512 {
					t.Fatalf("bad token length %d", len(tok))
				}
			}
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		wantCode(t, postJSON(t, s.URL+"/cgi-bin/gettoken?corpid=wwcorp1&corpsecret=sekrit", obj{}), 40058)
	})
	t.Run("same token while valid", func(t *testing.T) {
		if a, b := token(t, s), token(t, s); a != b {
			t.Fatal("token changed while valid")
		}
	})
}

func TestDefaultCorp(t *testing.T) {
	t.Parallel()
	a, b := newSrv(t), newSrv(t)
	if a.CorpID != DefaultCorpID || a.CorpSecret == "" || a.CorpSecret == b.CorpSecret {
		t.Fatalf("defaults: %q %q %q", a.CorpID, a.CorpSecret, b.CorpSecret)
	}
	if len(a.Departments()) != 1 || a.Departments()[0].ID != 1 || len(a.Members()) != 0 {
		t.Fatal("a new directory must hold the root department only")
	}
}

func TestAccessTokenChecks(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newSrv(t, WithClock(clk.Now), WithTokenTTL(time.Hour))
	path := func(tok string) string { return s.api("batch/getresult", tok, "jobid", "nope") }

	wantCode(t, getJSON(t, path("")), 41001)
	wantCode(t, getJSON(t, path("bogus")), 40014)
	// a token in the body does not count
	wantCode(t, postJSON(t, s.api("batch/invite", ""), obj{"access_token": "x", "user": []string{"a"}}), 41001)

	tok := token(t, s)
	if got := num(t, getJSON(t, s.URL+"/cgi-bin/gettoken?corpid="+s.CorpID+"&corpsecret="+url.QueryEscape(s.CorpSecret)), "expires_in"); got != 3600 {
		t.Fatalf("expires_in = %d, want the TTL", got)
	}
	wantCode(t, getJSON(t, path(tok)), 40088)

	clk.Advance(59 * time.Minute)
	wantCode(t, getJSON(t, path(tok)), 40088)
	clk.Advance(time.Minute)
	wantCode(t, getJSON(t, path(tok)), 42001)
	tok2 := token(t, s)
	if tok2 == tok {
		t.Fatal("expired token re-issued")
	}
	wantCode(t, getJSON(t, path(tok2)), 40088)

	s.ExpireTokens()
	wantCode(t, getJSON(t, path(tok2)), 42001)
	tok3 := token(t, s)
	if tok3 == tok2 {
		t.Fatal("ExpireTokens must force a new token")
	}
	wantCode(t, getJSON(t, path(tok3)), 40088)

	s.InvalidateTokens()
	wantCode(t, getJSON(t, path(tok3)), 40014)
	tok4 := token(t, s)
	wantCode(t, getJSON(t, path(tok4)), 40088)
	if s.TokenCount() != 4 {
		t.Fatalf("TokenCount = %d", s.TokenCount())
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	tok := token(t, s)
	st, b := doReq(t, http.MethodGet, s.api("user/get", tok), nil, "")
	if st != 404 {
		t.Fatalf("unknown path: HTTP %d", st)
	}
	wantCode(t, decodeObj(t, b), 40058)
	for _, p := range []string{"batch/syncuser", "batch/replaceuser", "batch/replaceparty", "batch/invite", "export/user", "media/upload"} {
		wantCode(t, getJSON(t, s.api(p, tok)), 40058)
	}
	for _, p := range []string{"batch/getresult", "export/get_result"} {
		wantCode(t, postJSON(t, s.api(p, tok), obj{}), 40058)
	}
	// oversized JSON body
	st, b = doReq(t, http.MethodPost, s.api("batch/invite", tok), bytes.Repeat([]byte(" "), 2<<20), "application/json")
	if st != 200 {
		t.Fatalf("HTTP %d", st)
	}
	wantCode(t, decodeObj(t, b), 40058)
	if s.CallCount("/cgi-bin/gettoken") != 1 || s.CallCount("/cgi-bin/batch/syncuser") != 1 {
		t.Fatalf("CallCount: %d %d", s.CallCount("/cgi-bin/gettoken"), s.CallCount("/cgi-bin/batch/syncuser"))
	}
	reqs := s.Requests()
	if len(reqs) < 10 || reqs[0].Path != "/cgi-bin/gettoken" || reqs[0].Query.Get("corpid") != s.CorpID || reqs[0].Method != "GET" {
		t.Fatalf("Requests: %+v", reqs[0])
	}
	s.ResetRequests()
	if len(s.Requests()) != 0 {
		t.Fatal("ResetRequests")
	}
}

func TestMediaUpload(t *testing.T) {
	t.Parallel()
	s := newSrv(t)
	tok := token(t, s)
	big := bytes.Repeat([]byte("a"), 20<<20)
	tests := []struct {
		name, typ, field, filename string
		data                       []byte
		code                       int
	}{
		{"ok", "file", "media", "a.csv", []byte("123456"), 0},
		{"exactly 20MiB", "file", "media", "a.csv", big, 0},
		{"over 20MiB", "file", "media", "a.csv", append(big, 'x'), 45001},
		{"5 bytes", "file", "media", "a.csv", []byte("12345"), 40006},
		{"1 byte", "file", "media", "a.csv", []byte("1"), 40006},
		{"empty", "file", "media", "a.csv", nil, 44001},
		{"no media part", "file", "file", "a.csv", []byte("123456"), 44001},
		{"type missing", "", "media", "a.csv", []byte("123456"), 40005},
		{"type bad", "doc", "media", "a.csv", []byte("123456"), 40005},
		{"image wrong ext", "image", "media", "a.txt", []byte("123456"), 40004},
		{"image ok", "image", "media", "a.PNG", []byte("123456"), 0},
		{"voice too big", "voice", "media", "a.amr", bytes.Repeat([]byte("a"), 2<<20+1), 45001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := uploadRaw(t, s, tok, tc.typ, tc.field, tc.filename, tc.data)
			if tc.code != 0 {
				wantCode(t, m, tc.code)
				return
			}
			if num(t, m, "errcode") != 0 || str(t, m, "errmsg") != "" || str(t, m, "type") != tc.typ || str(t, m, "media_id") == "" {
				t.Fatalf("bad success shape %v", m)
			}
			if _, ok := m["created_at"].(string); !ok {
				t.Fatalf("created_at must be a string: %v", m)
			}
		})
	}
	t.Run("not multipart", func(t *testing.T) {
		st, b := doReq(t, http.MethodPost, s.api("media/upload", tok, "type", "file"), []byte("hello world"), "text/plain")
		if st != 200 {
			t.Fatal(st)
		}
		wantCode(t, decodeObj(t, b), 44001)
	})
	t.Run("no token", func(t *testing.T) {
		wantCode(t, uploadRaw(t, s, "", "file", "media", "a.csv", []byte("123456")), 41001)
	})
}

func TestMediaTTLAndSubmitErrors(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newSrv(t, WithClock(clk.Now), WithTokenTTL(1000*time.Hour))
	tok := token(t, s)
	csv := memberCSV("张三,zhangsan,13800000001,,1")
	m := uploadRaw(t, s, tok, "file", "media", "a.csv", []byte(csv))
	if str(t, m, "created_at") != "1700000000" {
		t.Fatalf("created_at = %v", m["created_at"])
	}
	mid := str(t, m, "media_id")
	img := str(t, uploadRaw(t, s, tok, "image", "media", "a.jpg", []byte("123456")), "media_id")
	tests := []struct {
		name string
		body any
		code int
	}{
		{"missing media_id", obj{}, 41006},
		{"unknown media", obj{"media_id": "nope"}, 40007},
		{"image media", obj{"media_id": img}, 40007},
		{"bad json", "{not json", 40058},
		{"empty body", "", 40058},
		{"media_id not a string", obj{"media_id": 12}, 40058},
		{"bad callback url", obj{"media_id": mid, "callback": obj{"url": "ftp://x", "token": "t", "encodingaeskey": testKey}}, 40058},
		{"bad callback key", obj{"media_id": mid, "callback": obj{"url": "http://x", "token": "t", "encodingaeskey": "short"}}, 40058},
	}
	for _, tc := range tests {
		for _, kind := range []string{"syncuser", "replaceuser", "replaceparty"} {
			wantCode(t, postJSON(t, s.api("batch/"+kind, tok), tc.body), tc.code)
		}
	}
	clk.Advance(MediaTTL - time.Second)
	id := str(t, postJSON(t, s.api("batch/syncuser", tok), obj{"media_id": mid}), "jobid")
	waitJob(t, s, tok, id)
	clk.Advance(time.Second)
	wantCode(t, postJSON(t, s.api("batch/syncuser", tok), obj{"media_id": mid}), 40007)
}
