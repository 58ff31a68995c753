package wecomtest

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func members100kCSV(n int) string {
	var sb strings.Builder
	sb.Grow(n * 110)
	sb.WriteString(MemberCSVHeader + "\n")
	for i := range n {
		fmt.Fprintf(&sb, "名字%d,user%06d,138%08d,u%d@example.com,1;%d,职位,男,0;1,%d;0,,,,0,\n", i, i, i, i, 2+i%50, i)
	}
	return sb.String()
}

// BenchmarkImportExport100k measures one full cycle over HTTP: upload a
// 100,000-member CSV, syncuser it into an empty directory, wait for the job,
// export/user (one 10^5-record block), wait, download every file and check
// its md5. Run with:
//
//	go test -run XXX -bench ImportExport100k -benchtime 1x -count 3 ./wecomtest/
func BenchmarkImportExport100k(b *testing.B) {
	const n = 100000
	csv := members100kCSV(n)
	b.ReportAllocs()
	b.SetBytes(int64(len(csv)))
	for b.Loop() {
		s := NewServer(WithJobStepDelay(0))
		tok := token(b, s)
		m := runImport(b, s, tok, "syncuser", csv)
		if num(b, m, "errcode") != 0 || num(b, m, "total") != n {
			b.Fatalf("import: %v", m["errcode"])
		}
		if s.MemberCount() != n {
			b.Fatalf("members %d", s.MemberCount())
		}
		list := waitExport(b, s, tok, submitExport(b, s, tok, "user", obj{"encoding_aeskey": testKey, "block_size": 100000}))
		total := 0
		for _, f := range list {
			st, body, _ := download(b, str(b, f, "url"))
			sum := md5.Sum(body)
			if st != 200 || hex.EncodeToString(sum[:]) != str(b, f, "md5") {
				b.Fatal("download")
			}
			total += len(body)
		}
		if total == 0 {
			b.Fatal("empty export")
		}
		s.Close()
	}
}
