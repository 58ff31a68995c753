package wecom

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestExportedIteratorsYieldErrorOnce: after an error the sequence stops,
// even when the loop body carries on past the error.
func TestExportedIteratorsYieldErrorOnce(t *testing.T) {
	t.Parallel()
	key := NewEncodingAESKey()
	tests := []struct {
		name string
		doc  string
		run  func(c *Client, res *ExportResult) (records, errs int)
	}{
		{"user record", `{"userlist":[{"userid":"a"},{"userid":1},{"userid":"c"}]}`, func(c *Client, res *ExportResult) (int, int) {
			return countSeq(c.ExportedUsers(context.Background(), res, key))
		}},
		{"department record", `{"department":[{"id":2},null,{"id":3}]}`, func(c *Client, res *ExportResult) (int, int) {
			return countSeq(c.ExportedDepartments(context.Background(), res, key))
		}},
		{"tagname", `{"tagname":1,"userlist":[{"userid":"a","name":"b"}],"partylist":[2]}`, func(c *Client, res *ExportResult) (int, int) {
			return countSeq(c.ExportedTagUsers(context.Background(), res, key))
		}},
		{"partylist", `{"tagname":"t","userlist":[],"partylist":[0,2]}`, func(c *Client, res *ExportResult) (int, int) {
			return countSeq(c.ExportedTagUsers(context.Background(), res, key))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFileServer(t)
			f := fs.add("a", encryptFor(t, key, []byte(tc.doc)))
			c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient))
			records, errs := tc.run(c, &ExportResult{Status: ExportDone, DataList: []ExportFile{f}})
			assert.Equal(t, 1, errs, "the error is yielded once and the sequence stops")
			assert.LessOrEqual(t, records, 1, "no record after the error")
		})
	}
}

func countSeq[T any](seq func(func(T, error) bool)) (records, errs int) {
	for _, err := range seq {
		if err != nil {
			errs++
			if errs > 5 {
				break
			}
			continue // a loop that logs errors and carries on
		}
		records++
	}
	return records, errs
}
