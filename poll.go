package wecom

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Default polling delays of WaitBatchResult and WaitExportResult.
const (
	DefaultPollMinDelay = 500 * time.Millisecond
	DefaultPollMaxDelay = 10 * time.Second
)

// WaitOption configures WaitBatchResult and WaitExportResult.
type WaitOption func(*waitConfig)

type waitConfig struct {
	minDelay, maxDelay time.Duration
	progress           func(int)
	notifier           *JobNotifier
	err                error
}

// WithPollDelay sets the delay between two polls: it starts at min and
// doubles up to max, with jitter. min must be positive and max ≥ min.
func WithPollDelay(min, max time.Duration) WaitOption {
	return func(w *waitConfig) {
		if min <= 0 || max < min {
			w.err = fmt.Errorf("wecom: WithPollDelay(%v, %v): want 0 < min <= max", min, max)
			return
		}
		w.minDelay, w.maxDelay = min, max
	}
}

// WithProgress calls fn with the job's percentage (0-100) the first time it
// is seen and every time it changes. fn runs on the waiting goroutine.
func WithProgress(fn func(percentage int)) WaitOption {
	return func(w *waitConfig) { w.progress = fn }
}

// WithNotifier makes the wait return as soon as n receives the job's
// batch_job_result event (fed by a CallbackHandler with WithJobNotifier),
// instead of at the next poll: the result is then read once. Polling goes
// on as a fallback, so a lost callback only costs time.
func WithNotifier(n *JobNotifier) WaitOption {
	return func(w *waitConfig) { w.notifier = n }
}

func newWaitConfig(opts []WaitOption) (waitConfig, error) {
	w := waitConfig{minDelay: DefaultPollMinDelay, maxDelay: DefaultPollMaxDelay}
	for _, o := range opts {
		if o != nil {
			o(&w)
		}
	}
	return w, w.err
}

// WaitError reports a wait that ended before its job did, because ctx was
// cancelled or its deadline passed. It carries the last status seen.
type WaitError struct {
	JobID      string
	Status     int // the last status polled (BatchStatus or ExportStatus value); -1 if never polled
	Percentage int // the last percentage polled (imports only)
	Err        error
}

// Error names the job, the last status and percentage seen, and the cause.
func (e *WaitError) Error() string {
	return fmt.Sprintf("wecom: waiting for job %s (last status %d, %d%%): %v", e.JobID, e.Status, e.Percentage, e.Err)
}

// Unwrap returns the cause, usually ctx.Err(): errors.Is(err,
// context.DeadlineExceeded) works.
func (e *WaitError) Unwrap() error { return e.Err }

// jobState is one poll's view of a job.
type jobState struct {
	done       bool
	status     int
	percentage int
}

// waitJob polls until poll reports done, poll fails, or ctx ends. With a
// notifier, an event for jobID cuts the current delay short.
func (c *Client) waitJob(ctx context.Context, jobID string, w waitConfig, poll func(context.Context) (jobState, error)) error {
	var events <-chan *BatchJobEvent
	if w.notifier != nil {
		ch, cancel := w.notifier.Subscribe(jobID)
		defer cancel()
		events = ch
	}
	last := jobState{status: -1, percentage: -1}
	for attempt := 1; ; attempt++ {
		st, err := poll(ctx)
		if err != nil {
			// A retry that would outlast ctx's deadline ends the poll early,
			// with ctx.Err() still nil: that, too, is ctx ending the wait.
			if ctx.Err() != nil || errors.Is(err, errDeadlineAhead) {
				return &WaitError{JobID: jobID, Status: last.status, Percentage: max(last.percentage, 0), Err: err}
			}
			return err
		}
		if w.progress != nil && st.percentage != last.percentage {
			w.progress(st.percentage)
		}
		last = st
		if st.done {
			return nil
		}
		d := jitterBackoff(w.minDelay, w.maxDelay, attempt)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return &WaitError{JobID: jobID, Status: last.status, Percentage: max(last.percentage, 0), Err: ctx.Err()}
		case <-t.C:
		case <-events:
			t.Stop()
			events = nil // the event came: read the result once; plain polling after that
		}
	}
}

// errNoJobID is returned for an empty job id, before any network call.
var errNoJobID = errors.New("wecom: jobID is empty")

// validJobID checks a job id before it goes into a URL.
func validJobID(jobID string) error {
	switch {
	case jobID == "":
		return errNoJobID
	case len(jobID) > 64:
		return fmt.Errorf("wecom: jobID %.20q… is longer than 64 bytes", jobID)
	}
	for i := 0; i < len(jobID); i++ {
		if c := jobID[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("wecom: jobID %.20q contains a space or control character", jobID)
		}
	}
	return nil
}
