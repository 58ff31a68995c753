package wecom

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// The export pipeline benchmarks: 1,000,000 export/user-shaped members
// (about 480 bytes each) encrypted like a WeCom data file and served over
// loopback. BenchmarkExportPipeline runs this package's pipeline
// (OpenExportFile + ExportedUsers); BenchmarkExportNaive the obvious code
// (io.ReadAll → md5 → decrypt → json.Unmarshal). WECOM_BENCH_USERS sets a
// smaller count for quick runs. Figures: BENCHMARKS.md.

const benchKey = "IJUiXNpvGbODwKEBSEsAeOAPAhkqHqNCF6g19t9wfg2"

type benchFile struct {
	data  *os.File // unlinked: the OS frees it when the process exits
	size  int64
	md5   string
	users int
	srv   *httptest.Server
}

var (
	exportBenchOnce sync.Once
	exportBenchData *benchFile
	exportBenchErr  error
)

func benchUsers() int {
	if s := os.Getenv("WECOM_BENCH_USERS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 1_000_000
}

// appendBenchUser appends one realistic export/user record (~480 bytes).
func appendBenchUser(b []byte, i int) []byte {
	id := fmt.Sprintf("u%07d", i)
	b = append(b, `{"userid":"`...)
	b = append(b, id...)
	b = append(b, `","name":"张伟`...)
	b = strconv.AppendInt(b, int64(i%1000), 10)
	b = append(b, `","department":[1,`...)
	b = strconv.AppendInt(b, int64(2+i%500), 10)
	b = append(b, `],"order":[0,`...)
	b = strconv.AppendInt(b, int64(i%97), 10)
	b = append(b, `],"position":"高级工程师","mobile":"138`...)
	b = fmt.Appendf(b, "%08d", i)
	b = append(b, `","gender":"`...)
	b = strconv.AppendInt(b, int64(1+i%2), 10)
	b = append(b, `","email":"`...)
	b = append(b, id...)
	b = append(b, `@example.com","is_leader_in_dept":[0,`...)
	b = strconv.AppendInt(b, int64(i%7/6), 10)
	b = append(b, `],"direct_leader":["u`...)
	b = fmt.Appendf(b, "%07d", i/10)
	b = append(b, `"],"avatar":"https://wework.qpic.cn/wwpic/`...)
	b = fmt.Appendf(b, "%06d", i)
	b = append(b, `/0","telephone":"","address":"广州市天河区`...)
	b = strconv.AppendInt(b, int64(i%400), 10)
	b = append(b, `号","open_userid":"woAJ2G`...)
	b = fmt.Appendf(b, "%016x", uint64(i)*2654435761)
	b = append(b, `","main_department":`...)
	b = strconv.AppendInt(b, int64(2+i%500), 10)
	b = append(b, `,"extattr":{"attrs":[{"type":0,"name":"工号","text":{"value":"E`...)
	b = fmt.Appendf(b, "%07d", i)
	b = append(b, `"}}]},"status":1,"qr_code":""}`...)
	return b
}

// loadBenchFile builds the encrypted data file once per process, streaming
// it to an unlinked temporary file so that it is not on the heap the
// benchmarks measure.
func loadBenchFile(b *testing.B) *benchFile {
	exportBenchOnce.Do(func() { exportBenchData, exportBenchErr = buildBenchFile(benchUsers()) })
	if exportBenchErr != nil {
		b.Fatal(exportBenchErr)
	}
	return exportBenchData
}

func buildBenchFile(n int) (*benchFile, error) {
	f, err := os.CreateTemp("", "wecom-bench-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	key, _ := wxcrypto.DecodeKey(benchKey)
	block, _ := aes.NewCipher(key)
	enc := cipher.NewCBCEncrypter(block, key[:aes.BlockSize])
	h := md5.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var pending []byte
	flush := func(final bool) error {
		m := len(pending) - len(pending)%aes.BlockSize
		if final {
			pending = wxcrypto.Pad(pending)
			m = len(pending)
		}
		enc.CryptBlocks(pending[:m], pending[:m])
		if _, err := w.Write(pending[:m]); err != nil {
			return err
		}
		pending = append(pending[:0], pending[m:]...)
		return nil
	}
	pending = append(pending, `{"userlist":[`...)
	for i := range n {
		if i > 0 {
			pending = append(pending, ',')
		}
		pending = appendBenchUser(pending, i)
		if len(pending) >= 1<<20 {
			if err := flush(false); err != nil {
				return nil, err
			}
		}
	}
	pending = append(pending, `]}`...)
	if err := flush(true); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	bf := &benchFile{data: f, size: size, md5: hex.EncodeToString(h.Sum(nil)), users: n}
	bf.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(f, 0, size))
	}))
	return bf, nil
}

func (bf *benchFile) exportFile() ExportFile {
	return ExportFile{URL: bf.srv.URL + "/data/1?sign=x", Size: bf.size, MD5: bf.md5}
}

// heapPeak samples the heap (objects + unused spans, as HeapInuse) every
// 2 ms without stopping the world, until stop is called.
func heapPeak() (stop func() uint64) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	var peak atomic.Uint64
	read := func() {
		metrics.Read(samples)
		if v := samples[0].Value.Uint64() + samples[1].Value.Uint64(); v > peak.Load() {
			peak.Store(v)
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		read()
		return peak.Load()
	}
}

func runExportBench(b *testing.B, run func(bf *benchFile) (int, error)) {
	bf := loadBenchFile(b)
	b.SetBytes(bf.size)
	b.ReportAllocs()
	var users int
	var peak uint64
	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		stop := heapPeak()
		n, err := run(bf)
		peak = max(peak, stop())
		if err != nil {
			b.Fatal(err)
		}
		if n != bf.users {
			b.Fatalf("decoded %d users, want %d", n, bf.users)
		}
		users += n
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(users)/elapsed.Seconds(), "users/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

func BenchmarkExportPipeline(b *testing.B) {
	c, err := NewClient("corp", "secret")
	if err != nil {
		b.Fatal(err)
	}
	runExportBench(b, func(bf *benchFile) (int, error) {
		res := &ExportResult{Status: ExportDone, DataList: []ExportFile{bf.exportFile()}}
		n := 0
		for u, err := range c.ExportedUsers(context.Background(), res, benchKey) {
			if err != nil {
				return n, err
			}
			if u.UserID == "" {
				return n, fmt.Errorf("empty user %d", n)
			}
			n++
		}
		return n, nil
	})
}

func BenchmarkExportNaive(b *testing.B) {
	runExportBench(b, func(bf *benchFile) (int, error) {
		f := bf.exportFile()
		resp, err := http.Get(f.URL)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		sum := md5.Sum(body)
		if int64(len(body)) != f.Size || hex.EncodeToString(sum[:]) != f.MD5 {
			return 0, ErrChecksumMismatch
		}
		key, _ := wxcrypto.DecodeKey(benchKey)
		plain, err := wxcrypto.Decrypt(key, body)
		if err != nil {
			return 0, err
		}
		body = nil
		var doc struct {
			Userlist []ExportedUser `json:"userlist"`
		}
		if err := json.Unmarshal(plain, &doc); err != nil {
			return 0, err
		}
		return len(doc.Userlist), nil
	})
}

// BenchmarkDecodeUser compares the member decoder with encoding/json on
// one record, without I/O.
func BenchmarkDecodeUser(b *testing.B) {
	raw := appendBenchUser(nil, 123456)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for range b.N {
			var u ExportedUser
			if err := decodeUser(raw, &u); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for range b.N {
			var u ExportedUser
			if err := json.Unmarshal(raw, &u); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestBenchUserShape(t *testing.T) {
	t.Parallel()
	raw := appendBenchUser(nil, 42)
	var want ExportedUser
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var got ExportedUser
	if !fastDecodeUser(raw, &got) {
		t.Fatal("benchmark record does not take the fast path")
	}
	if !bytes.Equal(must(json.Marshal(got)), must(json.Marshal(want))) {
		t.Fatalf("fast path differs:\n%+v\n%+v", got, want)
	}
	if len(raw) < 400 || len(raw) > 560 {
		t.Errorf("record is %d bytes, want about 480", len(raw))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
