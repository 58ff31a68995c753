package wecom

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecodeEnvelope feeds arbitrary HTTP statuses and bodies to the
// response decoder every API call goes through. It must never panic, must
// succeed only for a 2xx JSON object whose errcode is 0, and must otherwise
// return an *APIError (non-zero errcode) or a *ResponseError whose text
// is bounded and carries no token.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(200, []byte(`{"errcode":0,"errmsg":"ok","jobid":"jobid_1"}`), uint8(0))
	f.Add(200, []byte(`{"errcode":"0","errmsg":"ok","status":"3","type":"sync_user","total":"2","percentage":100,"result":[{"userid":"a","errcode":0}]}`), uint8(1))
	f.Add(200, []byte(`{"errcode":45026,"errmsg":"deletion protection","type":"replace_user","status":3}`), uint8(1))
	f.Add(200, []byte(`{"errcode":0,"errmsg":"ok","status":2,"data_list":[{"url":"https://x/y?sign=abc","size":16,"md5":"00"}]}`), uint8(2))
	f.Add(200, []byte(`{"errcode":0,"errmsg":"ok","access_token":"tok","expires_in":7200}`), uint8(3))
	f.Add(200, []byte(`{"errcode":0,"errmsg":"ok","jobid":"jobid_`), uint8(0))
	f.Add(200, []byte("<html><body>bad gateway</body></html>"), uint8(0))
	f.Add(502, []byte("<html>access_token=SECRETTOKEN&x=1</html>"), uint8(0))
	f.Add(200, []byte(`{"errcode":1e3}`), uint8(0))
	f.Add(200, []byte(`{"errcode":null}`), uint8(0))
	f.Add(200, []byte(`  `), uint8(0))
	f.Add(200, []byte(`{"errcode":-1,"errmsg":"system busy"} trailing`), uint8(0))
	f.Add(204, []byte(`{"errcode":"9223372036854775808"}`), uint8(0))
	f.Fuzz(func(t *testing.T, status int, body []byte, shape uint8) {
		var out any
		switch shape % 5 {
		case 1:
			out = &batchResultResponse{}
		case 2:
			out = &exportResultResponse{}
		case 3:
			out = &tokenResponse{}
		case 4:
			out = &importJobIDResponse{}
		}
		err := decodeEnvelope("/cgi-bin/x", status, body, out)
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d accepted", status)
			}
			var env envelope
			if json.Unmarshal(body, &env) != nil || env.ErrCode == nil || *env.ErrCode != 0 {
				t.Fatalf("accepted a body without errcode 0: %q", body)
			}
			return
		}
		var (
			ae *APIError
			re *ResponseError
		)
		switch {
		case errors.As(err, &ae):
			if ae.Code == 0 || status < 200 || status > 299 {
				t.Fatalf("APIError %d for status %d", ae.Code, status)
			}
		case errors.As(err, &re):
			if re.StatusCode != status || len(re.Snippet) > 64*3 {
				t.Fatalf("ResponseError %+v for status %d", re, status)
			}
			if i := strings.Index(re.Error(), "access_token="); i >= 0 && !strings.HasPrefix(re.Error()[i+len("access_token="):], "REDACTED") {
				t.Fatalf("unredacted token in %q", re.Error())
			}
		default:
			t.Fatalf("untyped error %T %v", err, err)
		}
	})
}

// FuzzWriteDepartmentsCSV checks the department template writer: a
// department WeCom would reject is a *CSVError naming its row, with nothing
// written; an accepted one reads back, cell for cell, as what was given.
func FuzzWriteDepartmentsCSV(f *testing.F) {
	f.Add("研发", 2, 1, 10, "测试", 3, 2, 0)
	f.Add("a,b", 2, 1, 0, "c", 3, 1, 0)
	f.Add("x", 2, 3, 0, "y", 3, 2, 0)
	f.Add("dup", 2, 1, 0, "dup", 3, 1, 0)
	f.Add("\"q\"", 2, 1, -1, "\xff", 2, 1, 1)
	f.Add(strings.Repeat("长", 33), 1, 0, 0, "b", 4294967296, 1, 0)
	f.Fuzz(func(t *testing.T, n1 string, id1, p1, o1 int, n2 string, id2, p2, o2 int) {
		depts := []Department{{Name: n1, ID: id1, ParentID: p1, Order: o1}, {Name: n2, ID: id2, ParentID: p2, Order: o2}}
		var buf bytes.Buffer
		err := WriteDepartmentsCSV(&buf, depts)
		if err != nil {
			var ce *CSVError
			if !errors.As(err, &ce) || ce.Row < 1 || ce.Row > 2 || ce.Column == "" {
				t.Fatalf("error %v is not a *CSVError naming row and column", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes despite %v", buf.Len(), err)
			}
			return
		}
		recs, perr := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
		if perr != nil {
			t.Fatalf("output %q does not parse: %v", buf.Bytes(), perr)
		}
		if len(recs) != 3 || strings.Join(recs[0], ",") != deptCSVHeader {
			t.Fatalf("parsed %q", recs)
		}
		for i, d := range depts {
			want := []string{d.Name, strconv.Itoa(d.ID), strconv.Itoa(d.ParentID), strconv.Itoa(d.Order)}
			if strings.Join(recs[i+1], "\x00") != strings.Join(want, "\x00") {
				t.Fatalf("row %d reads back %q, want %q", i+1, recs[i+1], want)
			}
		}
	})
}
