package wecom_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// Load shape: loadGoroutines goroutines share one Client, each making
// loadCallsEach calls, against a wecomtest server that answers about 2% of
// them with a transient fault.
const (
	loadGoroutines = 1000
	loadCallsEach  = 10
)

// loadRig is a fake WeCom with a finished import job and a finished export
// job, and a cold Client for it.
type loadRig struct {
	srv                *wecomtest.Server
	c                  *wecom.Client
	tr                 *http.Transport
	batchJob, exportID string
}

func newLoadRig(tb testing.TB) *loadRig {
	tb.Helper()
	srv := wecomtest.NewServer(wecomtest.WithJobStepDelay(0), wecomtest.WithFaultSeed(20240408))
	tb.Cleanup(srv.Close)
	require.NoError(tb, srv.AddMember(wecomtest.Member{UserID: "u1", Name: "U1", Mobile: "13900000001", Department: []int{1}}))

	// The jobs are made by another client, so the load's client starts cold.
	setup, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	require.NoError(tb, err)
	ctx := context.Background()
	res, err := setup.ImportMembers(ctx, wecom.ImportSync, relMembers, wecom.ImportOptions{Wait: fastWait})
	require.NoError(tb, err)
	require.True(tb, res.Done())
	jobs := srv.Requests()
	var batchJob string
	for i := len(jobs) - 1; i >= 0 && batchJob == ""; i-- {
		if jobs[i].Path == "/cgi-bin/batch/getresult" {
			batchJob = jobs[i].Query.Get("jobid")
		}
	}
	require.NotEmpty(tb, batchJob)
	ej, err := setup.StartExport(ctx, wecom.ExportKindSimpleUser, 0, wecom.ExportRequest{})
	require.NoError(tb, err)
	_, err = setup.WaitExportResult(ctx, ej.JobID, fastWait...)
	require.NoError(tb, err)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256 // 1,000 callers on one host: keep connections, not TIME_WAITs
	tb.Cleanup(tr.CloseIdleConnections)
	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL),
		wecom.WithHTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}),
		// Generous: a call fails only if 8 attempts in a row are faulted.
		wecom.WithRetry(wecom.RetryPolicy{MaxAttempts: 8, MinDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}))
	require.NoError(tb, err)

	srv.ResetRequests()
	// Mixed transient faults, each about 1% of the calls it can hit.
	srv.InjectRandomFaults("/cgi-bin/batch/getresult", 0.01, wecomtest.Fault{ErrCode: wecom.CodeSystemBusy})
	srv.InjectRandomFaults("/cgi-bin/export/get_result", 0.01, wecomtest.Fault{Status: http.StatusServiceUnavailable})
	srv.InjectRandomFaults("*", 0.01, wecomtest.Fault{ErrCode: wecom.CodeConcurrencyLimited})
	return &loadRig{srv: srv, c: c, tr: tr, batchJob: batchJob, exportID: ej.JobID}
}

// call makes the i-th call of the mix: batch and export results in turn.
func (r *loadRig) call(ctx context.Context, i int) error {
	if i%2 == 0 {
		res, err := r.c.GetBatchResult(ctx, r.batchJob)
		if err == nil && !res.Done() {
			err = fmt.Errorf("batch job not done: %v", res.Status)
		}
		return err
	}
	res, err := r.c.GetExportResult(ctx, r.exportID)
	if err == nil && res.Status != wecom.ExportDone {
		err = fmt.Errorf("export job not done: %v", res.Status)
	}
	return err
}

// TestLoad: 1,000 goroutines × 10 calls through one cold Client with
// about 2% transient faults (-1, 503, 45033): every call succeeds, the
// 1,000 cold callers share one gettoken, and -race finds nothing.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	r := newLoadRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var failed atomic.Int64
	var firstErr atomic.Value
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range loadGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range loadCallsEach {
				if err := r.call(ctx, g+i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)

	total := loadGoroutines * loadCallsEach
	require.Zero(t, failed.Load(), "failed calls; first: %v", firstErr.Load())
	require.Equal(t, 1, r.srv.CallCount("/cgi-bin/gettoken"), "1,000 cold callers must share one gettoken")
	served := r.srv.CallCount("/cgi-bin/batch/getresult") + r.srv.CallCount("/cgi-bin/export/get_result")
	require.Greater(t, served, total, "the injected faults must have caused retries")
	t.Logf("%d calls by %d goroutines in %v: %.0f calls/s; %d requests served (%d retries after injected faults)",
		total, loadGoroutines, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), served, served-total)
}

// BenchmarkLoad is TestLoad's traffic as a benchmark: b.N calls spread
// over 1,000 goroutines sharing one Client, with the same faults.
func BenchmarkLoad(b *testing.B) {
	r := newLoadRig(b)
	ctx := context.Background()
	if _, err := r.c.AccessToken(ctx); err != nil {
		b.Fatal(err)
	}
	var next, failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range loadGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := r.call(ctx, int(i)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d calls failed", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
