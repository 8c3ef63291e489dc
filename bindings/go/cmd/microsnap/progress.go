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
	end := r.Total > 0 && r.Done >= r.Total
	if now.Sub(p.last) < 100*time.Millisecond && !end {
		return
	}
	p.last = now
	fmt.Fprint(p.w, "\r\033[K"+progressLine(r, now.Sub(p.start)))
	p.drawn = true
}

const barWidth = 30

// progressLine is the status line for r, elapsed into its phase. Done may
// exceed Total (a phase's total is the library's estimate) and Total may be
// 0 (not known): the bar is then full, or absent, never wider than itself.
func progressLine(r m.Progress, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0.05 {
		rate = float64(r.Done) / s
	}
	speed := humanBytes(uint64(rate)) + "/s"
	if r.Total == 0 {
		return fmt.Sprintf("%-7s %s %s", r.Phase, humanBytes(r.Done), speed)
	}
	frac := min(float64(r.Done)/float64(r.Total), 1)
	fill := min(max(int(frac*barWidth), 0), barWidth)
	eta := "--"
	if rate > 0 && r.Done < r.Total {
		if secs := float64(r.Total-r.Done) / rate; secs < 100*24*3600 {
			eta = time.Duration(secs * float64(time.Second)).Round(time.Second).String()
		}
	}
	return fmt.Sprintf("%-7s [%s%s] %3.0f%% %s/%s %s ETA %s", r.Phase,
		strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill), frac*100,
		humanBytes(r.Done), humanBytes(r.Total), speed, eta)
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
