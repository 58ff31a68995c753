package exampleutil

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wecomkit/wecom"
)

// IsTerminal reports whether f is a character device (a terminal), using
// only os.File.Stat: no dependency needed.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Progress shows a job's percentage: a bar redrawn in place on a terminal
// ("\r[#####.....]  50%"), plain "progress: 50%" lines otherwise (a pipe,
// a file, CI logs).
type Progress struct {
	w     io.Writer
	tty   bool
	label string
	drawn bool
}

// NewProgress returns a Progress writing to f, labelled label.
func NewProgress(f *os.File, label string) *Progress {
	return &Progress{w: f, tty: IsTerminal(f), label: label}
}

// Option is the wecom.WithProgress option that feeds p.
func (p *Progress) Option() wecom.WaitOption { return wecom.WithProgress(p.Update) }

// Update shows percentage pct.
func (p *Progress) Update(pct int) {
	pct = min(max(pct, 0), 100)
	if !p.tty {
		fmt.Fprintf(p.w, "   %s progress: %d%%\n", p.label, pct)
		return
	}
	const width = 30
	n := pct * width / 100
	fmt.Fprintf(p.w, "\r   %s [%s%s] %3d%%", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), pct)
	p.drawn = true
}

// Done ends the bar's line, if one was drawn.
func (p *Progress) Done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
