package wecomtest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

type receivedEvent struct {
	ToUserName   string
	FromUserName string
	CreateTime   int64
	MsgType      string
	Event        string
	JobID        string `xml:"BatchJob>JobId"`
	JobType      string `xml:"BatchJob>JobType"`
	ErrCode      int    `xml:"BatchJob>ErrCode"`
	ErrMsg       string `xml:"BatchJob>ErrMsg"`
}

// receiver is a callback endpoint that checks signatures and decrypts with
// its own implementation (sha1 + crypto/cipher), answering fail statuses
// for the first len(fail) POSTs.
type receiver struct {
	t          testing.TB
	token, key string
	corpID     string
	mu         sync.Mutex
	fail       []int
	events     []receivedEvent
	errs       []string
	hits       int
	*httptest.Server
}

func newReceiver(t testing.TB, corpID string, fail ...int) *receiver {
	r := &receiver{t: t, token: "cbtoken", key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", corpID: corpID, fail: fail}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits++
	if len(r.fail) > 0 {
		st := r.fail[0]
		r.fail = r.fail[1:]
		w.WriteHeader(st)
		return
	}
	bad := func(format string, args ...any) {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
		w.WriteHeader(http.StatusForbidden)
	}
	body, _ := io.ReadAll(req.Body)
	var env struct {
		ToUserName string
		AgentID    *string
		Encrypt    string
	}
	if err := xml.Unmarshal(body, &env); err != nil {
		bad("xml: %v", err)
		return
	}
	q := req.URL.Query()
	parts := []string{r.token, q.Get("timestamp"), q.Get("nonce"), env.Encrypt}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	if hex.EncodeToString(sum[:]) != q.Get("msg_signature") || req.Method != http.MethodPost {
		bad("signature mismatch")
		return
	}
	ct, err := base64.StdEncoding.DecodeString(env.Encrypt)
	if err != nil {
		bad("base64: %v", err)
		return
	}
	plain := independentDecrypt(r.t, r.key, ct)
	n := binary.BigEndian.Uint32(plain[16:20])
	msg, recv := plain[20:20+n], string(plain[20+n:])
	if recv != r.corpID || env.ToUserName != r.corpID || env.AgentID == nil {
		bad("receiver %q / envelope %+v", recv, env)
		return
	}
	var ev receivedEvent
	if err := xml.Unmarshal(msg, &ev); err != nil {
		bad("event xml: %v", err)
		return
	}
	r.events = append(r.events, ev)
}

func (r *receiver) snapshot() ([]receivedEvent, []string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedEvent(nil), r.events...), append([]string(nil), r.errs...), r.hits
}

func (r *receiver) callback() obj {
	return obj{"url": r.URL + "/cb?x=1", "token": r.token, "encodingaeskey": r.key}
}

func TestImportCallback(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newSrv(t, WithClock(clk.Now), WithCallbackRetries(3, time.Millisecond))
	rcv := newReceiver(t, s.CorpID, 500, 502)
	tok := token(t, s)
	id := submit(t, s, tok, "syncuser", memberCSV("n,a,,a@x.com,1"), obj{"callback": rcv.callback(), "to_invite": false})
	waitJob(t, s, tok, id)
	if !s.WaitIdle(10 * time.Second) {
		t.Fatal("not idle")
	}
	evs, errs, hits := rcv.snapshot()
	if len(errs) > 0 || hits != 3 || len(evs) != 1 {
		t.Fatalf("hits %d events %d errs %v", hits, len(evs), errs)
	}
	want := receivedEvent{ToUserName: s.CorpID, FromUserName: "sys", CreateTime: 1700000000, MsgType: "event",
		Event: "batch_job_result", JobID: id, JobType: "sync_user", ErrCode: 0, ErrMsg: "ok"}
	if evs[0] != want {
		t.Fatalf("event %+v", evs[0])
	}
	ds := s.CallbackDeliveries()
	if len(ds) != 3 || ds[0].Status != 500 || ds[1].Status != 502 || ds[2].Status != 200 || ds[2].Attempt != 3 || ds[2].JobID != id {
		t.Fatalf("deliveries %+v", ds)
	}

	// a job that fails as a whole reports its code
	for i := range 10 {
		if err := s.AddMember(Member{UserID: fmt.Sprintf("x%d", i), Name: "n", Department: []int{1}, Email: fmt.Sprintf("x%d@x.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	id = submit(t, s, tok, "replaceuser", memberCSV("n,a,,a@x.com,1"), obj{"callback": rcv.callback()})
	waitJob(t, s, tok, id)
	s.WaitIdle(10 * time.Second)
	evs, _, _ = rcv.snapshot()
	if last := evs[len(evs)-1]; last.JobID != id || last.ErrCode != 45026 || last.JobType != "replace_user" {
		t.Fatalf("event %+v", last)
	}
}

func TestCallbackRetriesGiveUp(t *testing.T) {
	t.Parallel()
	s := newSrv(t, WithCallbackRetries(2, time.Millisecond))
	rcv := newReceiver(t, s.CorpID, 500, 500, 500, 500, 500)
	tok := token(t, s)
	id := submit(t, s, tok, "replaceparty", DepartmentCSVHeader+"\na,2,1,\n", obj{"callback": rcv.callback()})
	waitJob(t, s, tok, id)
	s.WaitIdle(10 * time.Second)
	if _, _, hits := rcv.snapshot(); hits != 3 {
		t.Fatalf("hits %d, want 1+2", hits)
	}
	if ds := s.CallbackDeliveries(); len(ds) != 3 || ds[2].Status != 500 || ds[0].JobType != "replace_party" {
		t.Fatalf("%+v", ds)
	}
}

func TestExportCallback(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, "wwexport")
	s := newSrv(t, WithCorp("wwexport", "s"), WithAppCallback(rcv.URL, rcv.token, rcv.key))
	tok := token(t, s)
	wantCode(t, postJSON(t, s.api("export/taguser", tok), obj{"encoding_aeskey": testKey, "tagid": 1}), 40068)
	if err := s.AddTag(Tag{ID: 1, Name: "t"}); err != nil {
		t.Fatal(err)
	}
	id := submitExport(t, s, tok, "taguser", obj{"encoding_aeskey": testKey, "tagid": 1})
	waitExport(t, s, tok, id)
	s.WaitIdle(10 * time.Second)
	evs, errs, _ := rcv.snapshot()
	if len(errs) > 0 || len(evs) != 1 || evs[0].JobID != id || evs[0].JobType != "export_taguser" || evs[0].FromUserName != "sys" {
		t.Fatalf("events %+v errs %v", evs, errs)
	}
}

func TestCloseStopsDeliveries(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(block)
	s := NewServer(WithCallbackRetries(100, time.Hour))
	tok := token(t, s)
	id := submit(t, s, tok, "syncuser", memberCSV("n,a,,a@x.com,1"), obj{"callback": obj{"url": hang.URL, "token": "t", "encodingaeskey": testKey}})
	waitJob(t, s, tok, id)
	time.Sleep(20 * time.Millisecond) // let the POST start
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if s.WaitIdle(0) != true {
		t.Fatal("still active after Close")
	}
}
