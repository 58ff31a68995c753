package wecom

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecomkit/wecom/internal/vectors"
	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// The official key set of https://developer.work.weixin.qq.com/document/path/91144
// (wecom-api.md §8.7), also used for the self-generated fixtures.
const (
	testToken      = "QDG6eK"
	testAESKey     = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	testReceiverID = "wx5823bf96d3bd56c7"

	// wecom-api.md §8.7 item 3: testdata/callback_batch_job_result.xml.
	fixtureTimestamp = "1700000000"
	fixtureNonce     = "1234567890"
	fixtureSignature = "e71205edb9ace090ddd3ffa3707f163949e1c926"
	fixtureJobID     = "S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4"
)

var fixtureTime = time.Unix(1700000000, 0)

func newTestCrypto(t testing.TB) *CallbackCrypto {
	t.Helper()
	cc, err := NewCallbackCrypto(testToken, testAESKey, testReceiverID)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/callback_batch_job_result.xml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func batchXML(jobID, jobType, errCode string) string {
	return `<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>` +
		`<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event>` +
		`<BatchJob><JobId><![CDATA[` + jobID + `]]></JobId><JobType><![CDATA[` + jobType + `]]></JobType>` +
		`<ErrCode>` + errCode + `</ErrCode><ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob></xml>`
}

// replyFields reads the reply XML of EncryptMessage.
type replyFields struct {
	Encrypt      string `xml:"Encrypt"`
	MsgSignature string `xml:"MsgSignature"`
	TimeStamp    string `xml:"TimeStamp"`
	Nonce        string `xml:"Nonce"`
}

func parseReply(t testing.TB, b []byte) replyFields {
	t.Helper()
	var r replyFields
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply is not XML: %v\n%s", err, b)
	}
	return r
}

// signedPost builds a POST as WeCom sends it: msg encrypted and signed by cc.
func signedPost(t testing.TB, cc *CallbackCrypto, msg, ts string) *http.Request {
	t.Helper()
	body, err := cc.EncryptMessage([]byte(msg), ts, "987654321")
	if err != nil {
		t.Fatal(err)
	}
	rep := parseReply(t, body)
	return postRequest(rep.MsgSignature, ts, rep.Nonce, body)
}

func postRequest(sig, ts, nonce string, body []byte) *http.Request {
	q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}
	return httptest.NewRequest(http.MethodPost, "/callback?"+q.Encode(), bytes.NewReader(body))
}

// envelope wraps an Encrypt value, signed with the test token, in a POST.
func envelopeRequest(enc string) *http.Request {
	sig := wxcrypto.Signature(testToken, fixtureTimestamp, fixtureNonce, enc)
	return postRequest(sig, fixtureTimestamp, fixtureNonce, []byte("<xml><Encrypt><![CDATA["+enc+"]]></Encrypt></xml>"))
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// encryptFrame encrypts raw plaintext (no framing added) with the test key.
func encryptFrame(t testing.TB, plain []byte) string {
	t.Helper()
	key, err := wxcrypto.DecodeKey(testAESKey)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := wxcrypto.Encrypt(key, plain)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ct)
}

func frame(msg string, length uint32, receiver string) []byte {
	b := []byte("0123456789abcdef")
	b = binary.BigEndian.AppendUint32(b, length)
	b = append(b, msg...)
	return append(b, receiver...)
}

func TestNewCallbackCrypto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, token, key, receiver string
		wantKeyErr                 bool
	}{
		{"empty token", "", testAESKey, testReceiverID, false},
		{"empty receiver", testToken, testAESKey, "", false},
		{"empty key", testToken, "", testReceiverID, true},
		{"short key", testToken, testAESKey[:42], testReceiverID, true},
		{"long key", testToken, testAESKey + "A", testReceiverID, true},
		{"key with symbol", testToken, testAESKey[:42] + "+", testReceiverID, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc, err := NewCallbackCrypto(tc.token, tc.key, tc.receiver)
			if err == nil || cc != nil {
				t.Fatalf("NewCallbackCrypto = %v, %v; want an error", cc, err)
			}
			if got := errors.Is(err, ErrInvalidAESKey); got != tc.wantKeyErr {
				t.Errorf("errors.Is(%v, ErrInvalidAESKey) = %v, want %v", err, got, tc.wantKeyErr)
			}
			if tc.key != "" && strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
	if _, err := NewCallbackCrypto(testToken, testAESKey, testReceiverID); err != nil {
		t.Fatalf("valid input: %v", err)
	}
}

func TestCallbackOfficialVectors(t *testing.T) {
	t.Parallel()
	v := vectors.LoadCallback(t)
	cc, err := NewCallbackCrypto(v.Token, v.EncodingAESKey, v.ReceiverID)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("GET VerifyURL", func(t *testing.T) {
		t.Parallel()
		vu := v.VerifyURL
		got, err := cc.VerifyURL(vu.MsgSignature, vu.Timestamp, vu.Nonce, vu.Echostr)
		if err != nil || string(got) != vu.Plaintext {
			t.Fatalf("VerifyURL = %q, %v; want %q", got, err, vu.Plaintext)
		}
	})

	t.Run("POST DecryptMessage", func(t *testing.T) {
		t.Parallel()
		p := v.Post
		got, err := cc.DecryptMessage(p.MsgSignature, p.Timestamp, p.Nonce, []byte(p.Body))
		if err != nil || string(got) != p.Plaintext {
			t.Fatalf("DecryptMessage = %q, %v; want %q", got, err, p.Plaintext)
		}
		if _, err := ParseBatchJobEvent(got); !errors.Is(err, ErrNotBatchJobEvent) {
			t.Fatalf("ParseBatchJobEvent(text message) error = %v, want ErrNotBatchJobEvent", err)
		}
	})

	// Through the handler: WeCom percent-encodes echostr; a sender that
	// leaves '+' literal must work too.
	h := NewCallbackHandler(cc, nil)
	vu := v.VerifyURL
	encoded := url.Values{"msg_signature": {vu.MsgSignature}, "timestamp": {vu.Timestamp}, "nonce": {vu.Nonce}, "echostr": {vu.Echostr}}.Encode()
	literal := "msg_signature=" + vu.MsgSignature + "&timestamp=" + vu.Timestamp + "&nonce=" + vu.Nonce + "&echostr=" + vu.Echostr
	if !strings.Contains(literal, "+") {
		t.Fatal("vector echostr has no '+'; the literal case tests nothing")
	}
	for name, rawQuery := range map[string]string{"percent-encoded": encoded, "literal plus": literal} {
		t.Run("GET handler "+name, func(t *testing.T) {
			t.Parallel()
			w := serve(h, httptest.NewRequest(http.MethodGet, "/callback?"+rawQuery, nil))
			if w.Code != http.StatusOK || w.Body.String() != vu.Plaintext {
				t.Fatalf("GET = %d %q, want 200 %q", w.Code, w.Body.String(), vu.Plaintext)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}

	t.Run("POST handler raw message", func(t *testing.T) {
		t.Parallel()
		p := v.Post
		ts, _ := strconv.ParseInt(p.Timestamp, 10, 64)
		var got []byte
		h := NewCallbackHandler(cc, func(context.Context, *BatchJobEvent) error {
			t.Error("batch func called for a text message")
			return nil
		}, WithHandlerClock(fixedClock(time.Unix(ts+30, 0))), WithRawMessageFunc(func(_ context.Context, m []byte) error {
			got = m
			return nil
		}))
		w := serve(h, postRequest(p.MsgSignature, p.Timestamp, p.Nonce, []byte(p.Body)))
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Fatalf("POST = %d %q, want 200 and no body", w.Code, w.Body.String())
		}
		if string(got) != p.Plaintext {
			t.Fatalf("raw func got %q", got)
		}
	})
}

func TestBatchJobFixture(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	plain, err := cc.DecryptMessage(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseBatchJobEvent(plain)
	if err != nil {
		t.Fatal(err)
	}
	want := BatchJobEvent{
		ToUserName: testReceiverID, FromUserName: "sys", CreateTime: fixtureTime,
		MsgType: "event", Event: "batch_job_result",
		JobID: fixtureJobID, JobType: "replace_user", ErrCode: 0, ErrMsg: "ok",
	}
	if *ev != want {
		t.Fatalf("event = %+v\nwant    %+v", *ev, want)
	}
	if ev.IsExport() || ev.Err() != nil {
		t.Fatalf("IsExport = %v, Err = %v", ev.IsExport(), ev.Err())
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	msgs := []string{
		"",
		"x",
		batchXML("jobid_6a5471bd193e4e6d9138dfc601dd2829", "export_user", "0"),
		"<xml><Content><![CDATA[你好 ]]]]><![CDATA[>]]></Content></xml>",
		strings.Repeat("0123456789abcdef", 1000),
	}
	for i, msg := range msgs {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			body, err := cc.EncryptMessage([]byte(msg), "1700000123", "abcXYZ09")
			if err != nil {
				t.Fatal(err)
			}
			rep := parseReply(t, body)
			if rep.TimeStamp != "1700000123" || rep.Nonce != "abcXYZ09" || len(rep.MsgSignature) != 40 {
				t.Fatalf("reply fields = %+v", rep)
			}
			if !bytes.HasPrefix(body, []byte("<xml><Encrypt><![CDATA[")) {
				t.Fatalf("reply = %s", body)
			}
			got, err := cc.DecryptMessage(rep.MsgSignature, rep.TimeStamp, rep.Nonce, body)
			if err != nil || string(got) != msg {
				t.Fatalf("DecryptMessage = %q, %v", got, err)
			}
		})
	}

	for _, tc := range []struct{ ts, nonce string }{{"", "n1"}, {"12a", "n1"}, {"1", ""}, {"1", "a]]>b"}, {"1", "a b"}} {
		if _, err := cc.EncryptMessage([]byte("m"), tc.ts, tc.nonce); err == nil {
			t.Errorf("EncryptMessage(ts %q, nonce %q): no error", tc.ts, tc.nonce)
		}
	}
}

// A fresh random prefix per message: the same message never encrypts twice
// to the same text.
func TestEncryptMessageRandomPrefix(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	a, _ := cc.EncryptMessage([]byte("m"), "1", "n")
	b, _ := cc.EncryptMessage([]byte("m"), "1", "n")
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions of the same message are identical")
	}
}

// malformedCase is one class of bad callback POST.
type malformedCase struct {
	name    string
	req     func(t *testing.T) *http.Request
	wantErr error // from DecryptMessage
	status  int
}

func malformedCases(t *testing.T) []malformedCase {
	fixture := readFixture(t)
	otherReceiver, err := NewCallbackCrypto(testToken, testAESKey, "wwOTHERCORP")
	if err != nil {
		t.Fatal(err)
	}
	return []malformedCase{
		{"bad signature", func(t *testing.T) *http.Request {
			return postRequest(strings.Repeat("0", 40), fixtureTimestamp, fixtureNonce, fixture)
		}, ErrSignatureMismatch, 403},
		{"signature over another nonce", func(t *testing.T) *http.Request {
			return postRequest(fixtureSignature, fixtureTimestamp, "1234567891", fixture)
		}, ErrSignatureMismatch, 403},
		{"wrong receiver", func(t *testing.T) *http.Request {
			return signedPost(t, otherReceiver, batchXML("j1", "sync_user", "0"), fixtureTimestamp)
		}, ErrReceiverMismatch, 403},
		{"bad base64", func(t *testing.T) *http.Request {
			return envelopeRequest("not*base64!")
		}, ErrMalformedCallback, 400},
		{"ciphertext not whole blocks", func(t *testing.T) *http.Request {
			return envelopeRequest(base64.StdEncoding.EncodeToString(make([]byte, 31)))
		}, ErrMalformedCallback, 400},
		{"short plaintext", func(t *testing.T) *http.Request {
			return envelopeRequest(encryptFrame(t, []byte("0123456789abcdef\x00")))
		}, ErrMalformedCallback, 400},
		{"length field overruns", func(t *testing.T) *http.Request {
			return envelopeRequest(encryptFrame(t, frame("<xml/>", 9999, testReceiverID)))
		}, ErrMalformedCallback, 400},
		{"non-XML body", func(t *testing.T) *http.Request {
			return postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, []byte("hello, not xml"))
		}, ErrMalformedCallback, 400},
		{"XML without Encrypt", func(t *testing.T) *http.Request {
			return postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, []byte("<xml><ToUserName>x</ToUserName></xml>"))
		}, ErrMalformedCallback, 400},
		{"empty body", func(t *testing.T) *http.Request {
			return postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, nil)
		}, ErrMalformedCallback, 400},
		{"truncated XML", func(t *testing.T) *http.Request {
			return postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, fixture[:100])
		}, ErrMalformedCallback, 400},
	}
}

func TestDecryptMessageErrors(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	for _, tc := range malformedCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.req(t)
			body, _ := io.ReadAll(r.Body)
			q := r.URL.Query()
			got, err := cc.DecryptMessage(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
			if !errors.Is(err, tc.wantErr) || got != nil {
				t.Fatalf("DecryptMessage = %q, %v; want %v", got, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testAESKey) {
				t.Fatalf("error %q leaks a secret", err)
			}
		})
	}

	t.Run("bad padding (wrong key)", func(t *testing.T) {
		t.Parallel()
		// A wrong key gives valid-looking padding about once in 256 keys
		// (the last byte decrypts to 0x01); this one does not.
		other, err := NewCallbackCrypto(testToken, "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut", testReceiverID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = other.DecryptMessage(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))
		if !errors.Is(err, ErrBadPadding) {
			t.Fatalf("err = %v, want ErrBadPadding", err)
		}
		h := NewCallbackHandler(other, nil, WithHandlerClock(fixedClock(fixtureTime)))
		if w := serve(h, postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))); w.Code != 400 {
			t.Fatalf("handler status = %d, want 400", w.Code)
		}
	})

	t.Run("VerifyURL", func(t *testing.T) {
		t.Parallel()
		if _, err := cc.VerifyURL("0", "1", "2", ""); !errors.Is(err, ErrMalformedCallback) {
			t.Errorf("empty echostr: %v", err)
		}
		if _, err := cc.VerifyURL(strings.Repeat("0", 40), "1", "2", "abcd"); !errors.Is(err, ErrSignatureMismatch) {
			t.Errorf("bad signature: %v", err)
		}
		enc := "not*base64"
		if _, err := cc.VerifyURL(wxcrypto.Signature(testToken, "1", "2", enc), "1", "2", enc); !errors.Is(err, ErrMalformedCallback) {
			t.Errorf("bad base64: %v", err)
		}
	})

	t.Run("nil CallbackCrypto", func(t *testing.T) {
		t.Parallel()
		var nilCC *CallbackCrypto
		if _, err := nilCC.VerifyURL("a", "b", "c", "d"); err == nil {
			t.Error("VerifyURL: no error")
		}
		if _, err := nilCC.DecryptMessage("a", "b", "c", []byte("<xml/>")); err == nil {
			t.Error("DecryptMessage: no error")
		}
		if _, err := nilCC.EncryptMessage([]byte("a"), "1", "c"); err == nil {
			t.Error("EncryptMessage: no error")
		}
	})
}

func TestParseBatchJobEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		xml        string
		wantErr    error
		wantType   string
		wantCode   int
		wantExport bool
	}{
		{"import ok", batchXML("j1", "sync_user", "0"), nil, "sync_user", 0, false},
		{"invite", batchXML("j1", "invite_user", "0"), nil, "invite_user", 0, false},
		{"ErrCode with spaces", batchXML("j1", "replace_user", " \n 45026\t "), nil, "replace_user", 45026, false},
		{"negative ErrCode", batchXML("j1", "replace_party", "-1"), nil, "replace_party", -1, false},
		{"export_user", batchXML("jobid_1", "export_user", "0"), nil, "export_user", 0, true},
		{"export_tag", batchXML("jobid_1", "export_tag", "0"), nil, "export_tag", 0, true},
		{"export_taguser", batchXML("jobid_1", "export_taguser", "0"), nil, "export_taguser", 0, true},
		{"JobType padded", batchXML("j1", "  export_taguser\n", "0"), nil, "export_taguser", 0, true},
		{"no CreateTime", `<xml><Event>batch_job_result</Event><BatchJob><JobId>j</JobId><JobType>sync_user</JobType><ErrCode>0</ErrCode></BatchJob></xml>`, nil, "sync_user", 0, false},
		{"other event", `<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event></xml>`, ErrNotBatchJobEvent, "", 0, false},
		{"text message", `<xml><MsgType><![CDATA[text]]></MsgType><Content>hi</Content></xml>`, ErrNotBatchJobEvent, "", 0, false},
		{"empty xml", `<xml/>`, ErrNotBatchJobEvent, "", 0, false},
		{"no JobId", batchXML("", "sync_user", "0"), ErrMalformedCallback, "", 0, false},
		{"blank JobId", batchXML("  ", "sync_user", "0"), ErrMalformedCallback, "", 0, false},
		{"ErrCode not a number", batchXML("j1", "sync_user", "abc"), ErrMalformedCallback, "", 0, false},
		{"ErrCode missing", `<xml><Event>batch_job_result</Event><BatchJob><JobId>j</JobId></BatchJob></xml>`, ErrMalformedCallback, "", 0, false},
		{"ErrCode overflow", batchXML("j1", "sync_user", "99999999999999999999999"), ErrMalformedCallback, "", 0, false},
		{"CreateTime not a number", strings.Replace(batchXML("j1", "sync_user", "0"), "1700000000", "yesterday", 1), ErrMalformedCallback, "", 0, false},
		{"not XML", "garbage", ErrMalformedCallback, "", 0, false},
		{"empty", "", ErrMalformedCallback, "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := ParseBatchJobEvent([]byte(tc.xml))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || ev != nil {
					t.Fatalf("ParseBatchJobEvent = %+v, %v; want %v", ev, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.JobType != tc.wantType || ev.ErrCode != tc.wantCode || ev.IsExport() != tc.wantExport {
				t.Fatalf("event = %+v", ev)
			}
		})
	}
}

func TestBatchJobEventErr(t *testing.T) {
	t.Parallel()
	ev, err := ParseBatchJobEvent([]byte(batchXML("j9", "replace_user", "45026")))
	if err != nil {
		t.Fatal(err)
	}
	var je *JobError
	if err := ev.Err(); !errors.As(err, &je) || je.JobID != "j9" || je.JobType != "replace_user" || je.Code != 45026 || je.Message != "ok" {
		t.Fatalf("Err() = %#v", err)
	}
	if !errors.Is(ev.Err(), ErrTooManyDeletes) {
		t.Error("a 45026 job error should match ErrTooManyDeletes")
	}
	if !ev.CreateTime.Equal(fixtureTime) {
		t.Errorf("CreateTime = %v", ev.CreateTime)
	}
	var nilEv *BatchJobEvent
	if nilEv.Err() != nil || nilEv.IsExport() {
		t.Error("nil event: Err or IsExport not zero")
	}
}

func TestParseExportNotification(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"export_user", "export_simple_user", "export_department", "export_taguser", "export_tag"} {
		ev, err := ParseExportNotification([]byte(batchXML("jobid_6a5471bd193e4e6d9138dfc601dd2829", typ, "0")))
		if err != nil || ev.JobType != typ || ev.JobID != "jobid_6a5471bd193e4e6d9138dfc601dd2829" {
			t.Errorf("%s: %+v, %v", typ, ev, err)
		}
	}
	for _, typ := range []string{"sync_user", "replace_party", "", "exportuser"} {
		if ev, err := ParseExportNotification([]byte(batchXML("j1", typ, "0"))); !errors.Is(err, ErrNotExportJob) || ev != nil {
			t.Errorf("%q: %+v, %v; want ErrNotExportJob", typ, ev, err)
		}
	}
	if _, err := ParseExportNotification([]byte(`<xml><Event>change_contact</Event></xml>`)); !errors.Is(err, ErrNotBatchJobEvent) {
		t.Errorf("non-batch event: %v", err)
	}
}

func TestCallbackHandlerStatuses(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	fixture := readFixture(t)
	valid := func(*testing.T) *http.Request {
		return postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, fixture)
	}
	type hcase struct {
		name   string
		opts   []HandlerOption
		req    func(t *testing.T) *http.Request
		status int
	}
	cases := []hcase{
		{"valid POST", nil, valid, 200},
		{"PUT", nil, func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodPut, "/cb", nil) }, 405},
		{"HEAD", nil, func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodHead, "/cb", nil) }, 405},
		{"DELETE", nil, func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodDelete, "/cb", nil) }, 405},
		{"GET without query", nil, func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodGet, "/cb", nil) }, 400},
		{"GET without echostr", nil, func(*testing.T) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/cb?msg_signature=a&timestamp=1&nonce=2", nil)
		}, 400},
		{"GET bad signature", nil, func(*testing.T) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/cb?msg_signature=a&timestamp=1&nonce=2&echostr=abcd%2B", nil)
		}, 403},
		{"GET bad escape in echostr", nil, func(*testing.T) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/cb?msg_signature=a&timestamp=1&nonce=2&echostr=ab+%zz", nil)
		}, 400},
		{"POST without query", nil, func(*testing.T) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/cb", bytes.NewReader(fixture))
		}, 400},
		{"POST without nonce", nil, func(*testing.T) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/cb?msg_signature="+fixtureSignature+"&timestamp="+fixtureTimestamp, bytes.NewReader(fixture))
		}, 400},
		{"POST timestamp not a number", nil, func(*testing.T) *http.Request {
			return postRequest(fixtureSignature, "17e8", fixtureNonce, fixture)
		}, 400},
		{"nil body", nil, func(*testing.T) *http.Request {
			r := postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, nil)
			r.Body = nil
			return r
		}, 400},
		{"huge body with length", nil, func(*testing.T) *http.Request {
			return postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, bytes.Repeat([]byte("x"), DefaultMaxBodySize+1))
		}, 413},
		{"huge body without length", nil, func(*testing.T) *http.Request {
			r := postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, nil)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(fixture), bytes.NewReader(make([]byte, 1<<20))))
			r.ContentLength = -1
			return r
		}, 413},
		{"body over a small limit", []HandlerOption{WithMaxBodySize(100)}, valid, 413},
		{"body at a limit that fits", []HandlerOption{WithMaxBodySize(int64(len(fixture)))}, valid, 200},
		{"stale timestamp", []HandlerOption{WithHandlerClock(fixedClock(fixtureTime.Add(6 * time.Minute)))}, valid, 403},
		{"future timestamp", []HandlerOption{WithHandlerClock(fixedClock(fixtureTime.Add(-6 * time.Minute)))}, valid, 403},
		{"within tolerance", []HandlerOption{WithHandlerClock(fixedClock(fixtureTime.Add(4 * time.Minute)))}, valid, 200},
		{"custom tolerance", []HandlerOption{WithTimestampTolerance(time.Second), WithHandlerClock(fixedClock(fixtureTime.Add(2 * time.Second)))}, valid, 403},
		{"tolerance disabled", []HandlerOption{WithTimestampTolerance(0), WithHandlerClock(fixedClock(fixtureTime.Add(1000 * time.Hour)))}, valid, 200},
		{"batch_job_result without JobId", nil, func(t *testing.T) *http.Request {
			return signedPost(t, cc, batchXML("", "sync_user", "0"), fixtureTimestamp)
		}, 400},
		{"batch_job_result with bad ErrCode", nil, func(t *testing.T) *http.Request {
			return signedPost(t, cc, batchXML("j", "sync_user", "x"), fixtureTimestamp)
		}, 400},
	}
	for _, mc := range malformedCases(t) {
		cases = append(cases, hcase{"malformed: " + mc.name, nil, mc.req, mc.status})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			opts := append([]HandlerOption{WithHandlerClock(fixedClock(fixtureTime))}, tc.opts...)
			h := NewCallbackHandler(cc, func(context.Context, *BatchJobEvent) error {
				calls.Add(1)
				return nil
			}, opts...)
			w := serve(h, tc.req(t))
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d (body %q)", w.Code, tc.status, w.Body.String())
			}
			if tc.status == 405 && w.Header().Get("Allow") != "GET, POST" {
				t.Errorf("Allow = %q", w.Header().Get("Allow"))
			}
			if tc.status == 200 && w.Body.Len() != 0 {
				t.Errorf("200 body = %q, want empty", w.Body.String())
			}
			wantCalls := int32(0)
			if tc.status == 200 {
				wantCalls = 1
			}
			if calls.Load() != wantCalls {
				t.Errorf("fn called %d times, want %d", calls.Load(), wantCalls)
			}
		})
	}
}

func TestCallbackHandlerNilCrypto(t *testing.T) {
	t.Parallel()
	h := NewCallbackHandler(nil, nil)
	if w := serve(h, postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))); w.Code != 500 {
		t.Fatalf("status = %d, want 500", w.Code)
	}
}

func TestCallbackHandlerNonBatchMessages(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	msg := `<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>create_user</ChangeType></xml>`
	tests := []struct {
		name   string
		raw    func(context.Context, []byte) error
		status int
	}{
		{"no raw func", nil, 200},
		{"raw func ok", func(_ context.Context, b []byte) error {
			if string(b) != msg {
				return fmt.Errorf("raw func got %q", b)
			}
			return nil
		}, 200},
		{"raw func fails", func(context.Context, []byte) error { return errors.New("db down") }, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := []HandlerOption{WithHandlerClock(fixedClock(fixtureTime))}
			if tc.raw != nil {
				opts = append(opts, WithRawMessageFunc(tc.raw))
			}
			h := NewCallbackHandler(cc, func(context.Context, *BatchJobEvent) error {
				return errors.New("batch func must not be called")
			}, opts...)
			if w := serve(h, signedPost(t, cc, msg, fixtureTimestamp)); w.Code != tc.status {
				t.Fatalf("status = %d, want %d", w.Code, tc.status)
			}
		})
	}
}

// manualClock is a clock a test moves by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCallbackHandlerRetriesAndDuplicates(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	clock := &manualClock{t: fixtureTime}
	var calls atomic.Int32
	fail := atomic.Bool{}
	fail.Store(true)
	h := NewCallbackHandler(cc, func(_ context.Context, ev *BatchJobEvent) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New("downstream unavailable")
		}
		return nil
	}, WithHandlerClock(clock.Now), WithTimestampTolerance(0), WithDuplicateWindow(time.Minute))
	post := func() int {
		return serve(h, postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))).Code
	}
	step := func(name string, wantStatus int, wantCalls int32) {
		t.Helper()
		if got := post(); got != wantStatus || calls.Load() != wantCalls {
			t.Fatalf("%s: status %d, calls %d; want %d, %d", name, got, calls.Load(), wantStatus, wantCalls)
		}
	}
	step("fn fails", 500, 1)
	step("retry, fn fails again", 500, 2)
	fail.Store(false)
	step("retry succeeds", 200, 3)
	step("duplicate", 200, 3)
	clock.Add(59 * time.Second)
	step("duplicate within window", 200, 3)
	// Same JobId, another JobType: a different event.
	if w := serve(h, signedPost(t, cc, batchXML(fixtureJobID, "sync_user", "0"), fixtureTimestamp)); w.Code != 200 || calls.Load() != 4 {
		t.Fatalf("other JobType: status %d, calls %d", w.Code, calls.Load())
	}
	clock.Add(2 * time.Second)
	step("after the window", 200, 5)

	t.Run("suppression disabled", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		h := NewCallbackHandler(cc, func(context.Context, *BatchJobEvent) error { n.Add(1); return nil },
			WithHandlerClock(fixedClock(fixtureTime)), WithDuplicateWindow(0))
		for i := 0; i < 3; i++ {
			serve(h, postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t)))
		}
		if n.Load() != 3 {
			t.Fatalf("fn called %d times, want 3", n.Load())
		}
	})
}

func TestCallbackHandlerDuplicateMemoryBounded(t *testing.T) {
	t.Parallel()
	s := newRecentSet[jobKey, struct{}](time.Hour, 3)
	now := fixtureTime
	for i := 0; i < 10; i++ {
		s.put(jobKey{strconv.Itoa(i), "t"}, struct{}{}, now)
	}
	if len(s.items) != 3 || s.order.Len() != 3 {
		t.Fatalf("kept %d/%d entries, want 3", len(s.items), s.order.Len())
	}
	for i, want := range map[int]bool{0: false, 6: false, 7: true, 9: true} {
		if _, ok := s.get(jobKey{strconv.Itoa(i), "t"}, now); ok != want {
			t.Errorf("entry %d kept = %v, want %v", i, ok, want)
		}
	}
	// Expired entries go on the next put.
	s.put(jobKey{"late", "t"}, struct{}{}, now.Add(2*time.Hour))
	if len(s.items) != 1 {
		t.Fatalf("after expiry kept %d entries, want 1", len(s.items))
	}
}

func TestCallbackHandlerInFlightRetry(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	h := NewCallbackHandler(cc, func(context.Context, *BatchJobEvent) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return nil
	}, WithHandlerClock(fixedClock(fixtureTime)))
	first := make(chan int)
	go func() {
		first <- serve(h, postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))).Code
	}()
	<-entered
	if w := serve(h, postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))); w.Code != 503 {
		t.Fatalf("retry while running: %d, want 503", w.Code)
	}
	close(release)
	if code := <-first; code != 200 {
		t.Fatalf("first: %d", code)
	}
	if w := serve(h, postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))); w.Code != 200 || calls.Load() != 1 {
		t.Fatalf("retry after success: %d, calls %d", w.Code, calls.Load())
	}
}

func TestCallbackHandlerFeedsNotifier(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	n := NewJobNotifier()
	ch, cancel := n.Subscribe(fixtureJobID)
	defer cancel()
	fail := true
	h := NewCallbackHandler(cc, func(context.Context, *BatchJobEvent) error {
		if fail {
			return errors.New("not yet")
		}
		return nil
	}, WithHandlerClock(fixedClock(fixtureTime)), WithJobNotifier(n))
	req := func() *http.Request {
		return postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t))
	}
	if w := serve(h, req()); w.Code != 500 {
		t.Fatalf("status %d", w.Code)
	}
	select {
	case ev := <-ch:
		t.Fatalf("notified although fn failed: %+v", ev)
	default:
	}
	fail = false
	if w := serve(h, req()); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	select {
	case ev := <-ch:
		if ev.JobID != fixtureJobID || ev.JobType != "replace_user" {
			t.Fatalf("event %+v", ev)
		}
	default:
		t.Fatal("subscriber not notified")
	}
}

// A waiter that would poll only after a long delay wakes within a second of
// the callback (the pattern WaitBatchResult uses with WithNotifier).
func TestNotifierWakesWaiterBeforePoll(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	n := NewJobNotifier()
	h := NewCallbackHandler(cc, nil, WithHandlerClock(fixedClock(fixtureTime)), WithJobNotifier(n))
	srv := httptest.NewServer(h)
	defer srv.Close()

	woke := make(chan time.Time, 1)
	go func() {
		ch, cancel := n.Subscribe(fixtureJobID)
		defer cancel()
		poll := time.NewTimer(30 * time.Second)
		defer poll.Stop()
		select {
		case <-ch:
			woke <- time.Now()
		case <-poll.C:
			woke <- time.Time{}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	q := url.Values{"msg_signature": {fixtureSignature}, "timestamp": {fixtureTimestamp}, "nonce": {fixtureNonce}}
	sent := time.Now()
	resp, err := http.Post(srv.URL+"/?"+q.Encode(), "text/xml", bytes.NewReader(readFixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	select {
	case at := <-woke:
		if at.IsZero() || at.Sub(sent) > time.Second {
			t.Fatalf("waiter woke %v after the callback", at.Sub(sent))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("waiter not woken within 2s of the callback")
	}
}

func TestCallbackHandlerLogsNoSecrets(t *testing.T) {
	t.Parallel()
	v := vectors.LoadCallback(t)
	cc := newTestCrypto(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := NewCallbackHandler(cc, func(context.Context, *BatchJobEvent) error { return errors.New("fn failed") },
		WithHandlerLogger(logger), WithHandlerClock(fixedClock(fixtureTime)))
	vu := v.VerifyURL
	reqs := []*http.Request{
		httptest.NewRequest(http.MethodGet, "/?"+url.Values{"msg_signature": {vu.MsgSignature}, "timestamp": {vu.Timestamp}, "nonce": {vu.Nonce}, "echostr": {vu.Echostr}}.Encode(), nil),
		httptest.NewRequest(http.MethodGet, "/?msg_signature=0&timestamp=1&nonce=2&echostr=abc", nil),
		postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, readFixture(t)),
		postRequest("bad", fixtureTimestamp, fixtureNonce, readFixture(t)),
		envelopeRequest("not*base64"),
		httptest.NewRequest(http.MethodPatch, "/", nil),
	}
	for _, r := range reqs {
		serve(h, r)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if out == "" {
		t.Fatal("nothing logged")
	}
	for _, secret := range []string{testToken, testAESKey, vu.Plaintext, "<ToUserName>", fixtureSignature} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Every prefix and many single-byte corruptions of a valid request: the
// handler answers each with a status and never panics.
func TestCallbackHandlerMalformedInputs(t *testing.T) {
	t.Parallel()
	cc := newTestCrypto(t)
	fixture := readFixture(t)
	h := NewCallbackHandler(cc, nil, WithHandlerClock(fixedClock(fixtureTime)))
	check := func(r *http.Request) {
		t.Helper()
		switch code := serve(h, r).Code; code {
		case 200, 400, 403, 405, 413:
		default:
			t.Fatalf("unexpected status %d", code)
		}
	}
	for i := 0; i <= len(fixture); i++ {
		check(postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, fixture[:i]))
	}
	for i := range fixture {
		for _, c := range []byte{0, '<', '>', ']', 'A', '+', 0xff} {
			b := bytes.Clone(fixture)
			b[i] = c
			check(postRequest(fixtureSignature, fixtureTimestamp, fixtureNonce, b))
		}
	}
	// Correctly signed but corrupted ciphertexts exercise the decryption path.
	enc := parseReply(t, fixture).Encrypt
	for i := range enc {
		for _, c := range []byte{'A', '/', '=', '*'} {
			e := []byte(enc)
			e[i] = c
			check(envelopeRequest(string(e)))
		}
	}
	for _, raw := range []string{"", "&&&", "msg_signature", "echostr=%", "echostr=%zz&msg_signature=&timestamp=&nonce=", ";;", "timestamp=-1&nonce=1&msg_signature=1&echostr=1"} {
		for _, m := range []string{http.MethodGet, http.MethodPost, "BREW"} {
			r := httptest.NewRequest(m, "/", strings.NewReader("<xml><Encrypt>AAAA</Encrypt></xml>"))
			r.URL.RawQuery = raw
			check(r)
		}
	}
}

func TestJobNotifier(t *testing.T) {
	t.Parallel()
	ev := &BatchJobEvent{JobID: "j1", JobType: "sync_user", Event: "batch_job_result"}

	t.Run("subscribe then deliver", func(t *testing.T) {
		t.Parallel()
		n := NewJobNotifier()
		ch, cancel := n.Subscribe("j1")
		defer cancel()
		other, cancelOther := n.Subscribe("j2")
		defer cancelOther()
		n.Deliver(ev)
		n.Deliver(ev) // a second event does not block
		got := <-ch
		if got.JobID != "j1" || got == ev {
			t.Fatalf("got %+v (same pointer: %v); want a copy of the event", got, got == ev)
		}
		select {
		case e := <-other:
			t.Fatalf("j2 subscriber got %+v", e)
		default:
		}
	})

	t.Run("deliver then late subscribe", func(t *testing.T) {
		t.Parallel()
		n := NewJobNotifier()
		n.Deliver(ev)
		ch, cancel := n.Subscribe("j1")
		defer cancel()
		select {
		case got := <-ch:
			if got.JobID != "j1" {
				t.Fatalf("got %+v", got)
			}
		default:
			t.Fatal("late subscriber did not see the remembered event")
		}
	})

	t.Run("retention expires", func(t *testing.T) {
		t.Parallel()
		clock := &manualClock{t: fixtureTime}
		n := NewJobNotifier(WithNotifierRetention(time.Minute, 10), WithNotifierClock(clock.Now))
		n.Deliver(ev)
		clock.Add(61 * time.Second)
		ch, cancel := n.Subscribe("j1")
		defer cancel()
		select {
		case got := <-ch:
			t.Fatalf("expired event delivered: %+v", got)
		default:
		}
	})

	t.Run("retention bounded in count", func(t *testing.T) {
		t.Parallel()
		n := NewJobNotifier(WithNotifierRetention(time.Hour, 2))
		for _, id := range []string{"a", "b", "c"} {
			n.Deliver(&BatchJobEvent{JobID: id})
		}
		for id, want := range map[string]bool{"a": false, "b": true, "c": true} {
			ch, cancel := n.Subscribe(id)
			if got := len(ch) == 1; got != want {
				t.Errorf("%s remembered = %v, want %v", id, got, want)
			}
			cancel()
		}
	})

	t.Run("retention off", func(t *testing.T) {
		t.Parallel()
		n := NewJobNotifier(WithNotifierRetention(0, 0))
		n.Deliver(ev)
		ch, cancel := n.Subscribe("j1")
		defer cancel()
		if len(ch) != 0 {
			t.Fatal("event remembered with retention off")
		}
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		n := NewJobNotifier(WithNotifierRetention(0, 0))
		ch, cancel := n.Subscribe("j1")
		ch2, cancel2 := n.Subscribe("j1")
		defer cancel2()
		cancel()
		cancel() // idempotent
		n.Deliver(ev)
		if len(ch) != 0 {
			t.Fatal("cancelled subscriber got an event")
		}
		if len(ch2) != 1 {
			t.Fatal("remaining subscriber got nothing")
		}
		cancel2()
		n.mu.Lock()
		left := len(n.subs)
		n.mu.Unlock()
		if left != 0 {
			t.Fatalf("%d job entries left after every cancel", left)
		}
	})

	t.Run("broker", func(t *testing.T) {
		t.Parallel()
		b := &fakeBroker{}
		n := NewJobNotifier(WithEventBroker(b))
		b.deliverTo = []*JobNotifier{n, NewJobNotifier()}
		ch, cancel := n.Subscribe("j1")
		defer cancel()
		if err := n.Notify(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if b.published.Load() != 1 || len(ch) != 1 {
			t.Fatalf("published %d, delivered %d", b.published.Load(), len(ch))
		}
		if c2, cancel2 := b.deliverTo[1].Subscribe("j1"); len(c2) != 1 {
			t.Fatal("other replica did not get the event")
		} else {
			cancel2()
		}
	})

	t.Run("broker fails", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("redis down")
		n := NewJobNotifier(WithEventBroker(&fakeBroker{err: boom}))
		ch, cancel := n.Subscribe("j1")
		defer cancel()
		if err := n.Notify(context.Background(), ev); !errors.Is(err, boom) {
			t.Fatalf("Notify error = %v, want the broker's", err)
		}
		if len(ch) != 1 {
			t.Fatal("not delivered locally after the publish failure")
		}
	})

	t.Run("no broker", func(t *testing.T) {
		t.Parallel()
		n := NewJobNotifier()
		ch, cancel := n.Subscribe("j1")
		defer cancel()
		if err := n.Notify(context.Background(), ev); err != nil || len(ch) != 1 {
			t.Fatalf("Notify = %v, delivered %d", err, len(ch))
		}
		if err := n.Notify(context.Background(), &BatchJobEvent{}); err == nil {
			t.Fatal("Notify accepted an event without JobID")
		}
		if err := n.Notify(context.Background(), nil); err == nil {
			t.Fatal("Notify accepted a nil event")
		}
	})

	t.Run("zero value and nil", func(t *testing.T) {
		t.Parallel()
		var zero JobNotifier
		ch, cancel := zero.Subscribe("j1")
		if err := zero.Notify(context.Background(), ev); err != nil || len(ch) != 1 {
			t.Fatalf("zero value: %v, %d", err, len(ch))
		}
		cancel()
		var nilN *JobNotifier
		ch, cancel = nilN.Subscribe("j1")
		nilN.Deliver(ev)
		if err := nilN.Notify(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		cancel()
		cancel()
		select {
		case <-ch:
			t.Fatal("nil notifier delivered")
		default:
		}
		ch, cancel = NewJobNotifier().Subscribe("")
		cancel()
		if ch != nil {
			t.Fatal("empty job id: want a channel that never delivers")
		}
		NewJobNotifier().Deliver(nil)
		NewJobNotifier(nil, WithNotifierClock(nil)).Deliver(&BatchJobEvent{})
	})
}

type fakeBroker struct {
	published atomic.Int32
	err       error
	deliverTo []*JobNotifier
}

func (b *fakeBroker) Publish(_ context.Context, ev *BatchJobEvent) error {
	if b.err != nil {
		return b.err
	}
	b.published.Add(1)
	for _, n := range b.deliverTo {
		n.Deliver(ev)
	}
	return nil
}

func TestJobNotifierConcurrent(t *testing.T) {
	t.Parallel()
	n := NewJobNotifier(WithNotifierRetention(time.Minute, 64))
	const jobs, waiters = 50, 8
	var wg sync.WaitGroup
	var got atomic.Int32
	for j := 0; j < jobs; j++ {
		id := "job" + strconv.Itoa(j)
		for w := 0; w < waiters; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ch, cancel := n.Subscribe(id)
				defer cancel()
				select {
				case ev := <-ch:
					if ev.JobID == id {
						got.Add(1)
					}
				case <-time.After(5 * time.Second):
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Late subscribers of evicted jobs may miss their event; the
			// retention holds 64 of the 50 jobs, so none is evicted here.
			_ = n.Notify(context.Background(), &BatchJobEvent{JobID: id, JobType: "sync_user"})
			n.Deliver(&BatchJobEvent{JobID: id, JobType: "sync_user"})
		}()
	}
	wg.Wait()
	if got.Load() != jobs*waiters {
		t.Fatalf("%d of %d waiters got their event", got.Load(), jobs*waiters)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.subs) != 0 {
		t.Fatalf("%d subscriptions left", len(n.subs))
	}
}

func FuzzDecryptAndParse(f *testing.F) {
	fixture, err := os.ReadFile("testdata/callback_batch_job_result.xml")
	if err != nil {
		f.Fatal(err)
	}
	msg := batchXML(fixtureJobID, "replace_user", "0")
	f.Add(fixture, "", []byte(msg))
	f.Add([]byte("<xml><Encrypt>AAAA</Encrypt></xml>"), "AAAAAAAAAAAAAAAAAAAAAA==", []byte("<xml/>"))
	f.Add([]byte("<xml><Encrypt><![CDATA["), "!!", []byte(batchXML("j", "export_tag", " 1 ")))
	f.Add([]byte{}, parseReply(f, fixture).Encrypt, []byte("<xml><Event>batch_job_result</Event><BatchJob><JobId>x</JobId><ErrCode>9999999999999999999999</ErrCode></BatchJob></xml>"))
	cc := newTestCrypto(f)
	f.Fuzz(func(t *testing.T, body []byte, enc string, plain []byte) {
		// An arbitrary body with the fixture's query.
		if m, err := cc.DecryptMessage(fixtureSignature, fixtureTimestamp, fixtureNonce, body); err == nil {
			_, _ = ParseBatchJobEvent(m)
		}
		// An arbitrary Encrypt value, correctly signed, reaches decryption.
		sig := wxcrypto.Signature(testToken, fixtureTimestamp, fixtureNonce, enc)
		if m, err := cc.VerifyURL(sig, fixtureTimestamp, fixtureNonce, enc); err == nil {
			_, _ = ParseBatchJobEvent(m)
		} else if !errors.Is(err, ErrMalformedCallback) && !errors.Is(err, ErrBadPadding) &&
			!errors.Is(err, ErrReceiverMismatch) && !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("unclassified error %v", err)
		}
		// Arbitrary plaintext survives a round trip and parses without panic.
		out, err := cc.EncryptMessage(plain, fixtureTimestamp, fixtureNonce)
		if err != nil {
			t.Fatal(err)
		}
		rep := parseReply(t, out)
		got, err := cc.DecryptMessage(rep.MsgSignature, fixtureTimestamp, fixtureNonce, out)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
		if ev, err := ParseBatchJobEvent(plain); err == nil && ev.JobID == "" {
			t.Fatal("event without JobID accepted")
		}
		_, _ = ParseExportNotification(plain)
	})
}

func FuzzCallbackHandler(f *testing.F) {
	fixture, err := os.ReadFile("testdata/callback_batch_job_result.xml")
	if err != nil {
		f.Fatal(err)
	}
	valid := url.Values{"msg_signature": {fixtureSignature}, "timestamp": {fixtureTimestamp}, "nonce": {fixtureNonce}}.Encode()
	f.Add("POST", valid, fixture)
	f.Add("GET", valid+"&echostr=abc%2B", []byte{})
	f.Add("GET", "echostr=+%2", []byte{})
	f.Add("PUT", "", []byte("x"))
	cc := newTestCrypto(f)
	h := NewCallbackHandler(cc, nil, WithHandlerClock(fixedClock(fixtureTime)), WithMaxBodySize(4096))
	f.Fuzz(func(t *testing.T, method, rawQuery string, body []byte) {
		r, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.Method = method
		r.URL.RawQuery = rawQuery
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == 0 {
			t.Fatal("no status")
		}
	})
}
