package wecom

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
)

// benchRows is the size of the benchmark input: a large directory.
const benchRows = 200_000

var benchData = sync.OnceValues(func() ([]Member, [][]string) {
	members := make([]Member, benchRows)
	records := make([][]string, 0, benchRows+1)
	ext := []string{"工号"}
	records = append(records, append(slices.Clone(memberHeaderFields), ext...))
	for i := range members {
		m := Member{
			UserID:         fmt.Sprintf("user%06d", i),
			Name:           fmt.Sprintf("张三%d", i%1000),
			Mobile:         fmt.Sprintf("+86-138%08d", i),
			Email:          fmt.Sprintf("user%06d@example.com", i),
			Departments:    []int{2 + i%50, 100 + i%7},
			Position:       "高级工程师",
			Gender:         Gender(1 + i%2),
			IsLeaderInDept: []bool{i%10 == 0, false},
			Order:          []int{i % 100, 0},
			Alias:          "Zhang San",
			Address:        "北京市海淀区中关村大街1号",
			Telephone:      "010-62345678",
			Disabled:       i%97 == 0,
			ExtAttrs:       map[string]string{"工号": fmt.Sprintf("E%06d", i)},
		}
		members[i] = m
		records = append(records, memberRecord(m, ext))
	}
	return members, records
})

// countingDiscard is io.Discard that counts bytes, to size b.SetBytes.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func benchOutputSize(b *testing.B) int64 {
	members, _ := benchData()
	var c countingDiscard
	if err := WriteMembersCSV(&c, members); err != nil {
		b.Fatal(err)
	}
	return c.n
}

// BenchmarkWriteMembersCSV200k: validation of every row (including the
// duplicate-userid check) plus writing, to io.Discard.
func BenchmarkWriteMembersCSV200k(b *testing.B) {
	members, _ := benchData()
	b.SetBytes(benchOutputSize(b))
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteMembersCSV(io.Discard, members); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingCSV200k is the baseline: the same rows, already formatted
// as strings, written by a bare encoding/csv writer with no validation.
func BenchmarkEncodingCSV200k(b *testing.B) {
	_, records := benchData()
	b.SetBytes(benchOutputSize(b))
	b.ReportAllocs()
	for b.Loop() {
		w := csv.NewWriter(io.Discard)
		for _, r := range records {
			if err := w.Write(r); err != nil {
				b.Fatal(err)
			}
		}
		w.Flush()
		if err := w.Error(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemberCSVWriter200k: the streaming writer, validating row by row.
func BenchmarkMemberCSVWriter200k(b *testing.B) {
	members, _ := benchData()
	b.SetBytes(benchOutputSize(b))
	b.ReportAllocs()
	for b.Loop() {
		w, err := NewMemberCSVWriter(io.Discard, []string{"工号"})
		if err != nil {
			b.Fatal(err)
		}
		for i := range members {
			if err := w.Write(members[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchDataMatchesBaseline guards the benchmark's fairness: both
// writers produce the same bytes for the benchmark rows.
func TestBenchDataMatchesBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 200,000 members")
	}
	members, records := benchData()
	var ours, std countingHash
	if err := WriteMembersCSV(&ours, members); err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(&std)
	if err := w.WriteAll(records); err != nil {
		t.Fatal(err)
	}
	if ours != std {
		t.Errorf("outputs differ: ours %d bytes (hash %x), encoding/csv %d bytes (hash %x)", ours.n, ours.h, std.n, std.h)
	}
}

// countingHash is a cheap FNV-1a over everything written.
type countingHash struct {
	n int64
	h uint64
}

func (c *countingHash) Write(p []byte) (int, error) {
	if c.n == 0 && c.h == 0 {
		c.h = 14695981039346656037
	}
	for _, b := range p {
		c.h ^= uint64(b)
		c.h *= 1099511628211
	}
	c.n += int64(len(p))
	return len(p), nil
}
