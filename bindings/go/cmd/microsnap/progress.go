package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

// progressBar draws one status line on a terminal: phase, bar, bytes,
// rate and ETA. It is only used when stderr is a terminal, so piped output
// stays clean.
type progressBar struct {
	w     io.Writer
	mu    sync.Mutex
	phase string
	start time.Time
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w} }

// with returns ctx carrying this bar as the progress receiver (ctx as is
// when there is no terminal).
func (e *env) withProgress(ctx context.Context) context.Context {
	if e.progress == nil {
		return ctx
	}
	return m.ContextWithProgress(ctx, e.progress.update)
}

func (p *progressBar) update(r m.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if r.Phase != p.phase {
		p.phase, p.start, p.last = r.Phase, now, time.Time{}
	}
	// Redraw at most 10 times a second, and always at the end of a phase.
	if now.Sub(p.last) < 100*time.Millisecond && r.Done < r.Total {
		return
	}
	p.last = now
	const width = 30
	frac := 1.0
	if r.Total > 0 {
		frac = float64(r.Done) / float64(r.Total)
	}
	fill := int(frac * width)
	elapsed := now.Sub(p.start).Seconds()
	rate, eta := 0.0, "--"
	if elapsed > 0.05 {
		rate = float64(r.Done) / elapsed
		if rate > 0 && r.Total >= r.Done {
			eta = time.Duration(float64(r.Total-r.Done) / rate * float64(time.Second)).Round(time.Second).String()
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%-7s [%s%s] %3.0f%% %s/%s %s/s ETA %s", r.Phase,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100,
		humanBytes(r.Done), humanBytes(r.Total), humanBytes(uint64(rate)), eta)
	p.drawn = true
}

// clear ends the status line so the next output starts on a fresh line.
func (p *progressBar) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// done clears the bar, if any, after a long operation.
func (e *env) done() {
	if e.progress != nil {
		e.progress.clear()
	}
}
