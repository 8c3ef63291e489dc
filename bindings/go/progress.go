package microsnap

import (
	"context"
	"sync"
	"sync/atomic"
)

// monitorChecksContext lets a test switch off the trampoline's own context
// check, to prove that the native cancel token alone stops a call.
var monitorChecksContext atomic.Bool

func init() { monitorChecksContext.Store(true) }

// Progress is one report from a long operation: Done of Total bytes of the
// current Phase ("copy", "hash", "export", "import", "prune", "push" or "pull";
// docs/abi.md lists them). Done
// restarts at 0 when a new phase begins.
type Progress struct {
	// Phase names the current phase.
	Phase string
	// Done counts the bytes processed so far in this phase.
	Done uint64
	// Total is the phase's size in bytes.
	Total uint64
}

// ProgressFunc receives progress reports. It runs on a library worker
// thread while the operation is in progress, never on two threads at once,
// so it must not block for long. Within a phase, Done never goes backwards
// (the library guarantees it, docs/abi.md; the reports are passed on as
// they come). To stop the operation, cancel its context.
type ProgressFunc func(Progress)

type progressKey struct{}

// ContextWithProgress returns a context that makes every long operation run
// with it (Snapshot.Create, SnapshotArtifact.Verify, Snapshot.Export,
// Snapshot.Import, Snapshot.Push, Snapshot.Pull, CreateSandbox, ...) report
// its progress to fn.
func ContextWithProgress(ctx context.Context, fn ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

func progressFrom(ctx context.Context) ProgressFunc {
	fn, _ := ctx.Value(progressKey{}).(ProgressFunc)
	return fn
}

// opMonitor is what the progress trampoline reaches through its cgo.Handle:
// the call's context (so a done context stops the operation at its next
// report, even before the cancel token fires) and the user's callback.
type opMonitor struct {
	ctx context.Context
	fn  ProgressFunc

	mu       sync.Mutex
	panicked any
	didPanic bool
}

// report runs the callback and says whether the operation should go on. A
// panic in the callback must not unwind through the library's frames: it is
// caught here, the operation is cancelled, and the panic is raised again on
// the calling goroutine once the call has returned.
func (m *opMonitor) report(p Progress) (goOn bool) {
	if m.fn != nil {
		defer func() {
			if r := recover(); r != nil {
				m.mu.Lock()
				m.panicked, m.didPanic = r, true
				m.mu.Unlock()
				goOn = false
			}
		}()
		m.fn(p)
	}
	return !monitorChecksContext.Load() || m.ctx.Err() == nil
}

// repanic re-raises a panic the callback raised during the call.
func (m *opMonitor) repanic() {
	m.mu.Lock()
	r, did := m.panicked, m.didPanic
	m.mu.Unlock()
	if did {
		panic(r)
	}
}
