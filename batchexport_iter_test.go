package wecom

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// TestExportedIteratorsPanicRemovesStagedFile: a panic in the loop body
// unwinds through the iterator; the staged data file must still be closed
// and removed.
func TestExportedIteratorsPanicRemovesStagedFile(t *testing.T) {
	t.Parallel()
	key := NewEncodingAESKey()
	ct := encryptFor(t, key, userDoc(40000)) // > 4 MiB: staged on disk
	require.Greater(t, len(ct), exportMemLimit)
	tests := []struct {
		name  string
		after int // panic at this record
	}{
		{"first record", 0},
		{"later record", 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fs := newFileServer(t)
			f := fs.add("a", ct)
			c, _ := newMockClient(t, WithHTTPClient(http.DefaultClient), WithExportTempDir(dir))
			res := &ExportResult{Status: ExportDone, DataList: []ExportFile{f}}
			func() {
				defer func() { assert.Equal(t, "boom", recover()) }()
				n := 0
				for _, err := range c.ExportedUsers(context.Background(), res, key) {
					require.NoError(t, err)
					if n == tc.after {
						panic("boom")
					}
					n++
				}
			}()
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "the staged file is removed after a panic in the loop body")
		})
	}
}
