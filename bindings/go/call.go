package microsnap

/*
#include "microsnap.h"
*/
import "C"

import (
	"context"
	"runtime/cgo"
)

// cancellableCall is one long native call: it receives the cancel token
// (nil when ctx cannot be cancelled) and the monitor handle for progress
// (0 for none), and returns the status and the library's out-string.
type cancellableCall func(cancel *C.msnap_cancel, monitor C.uintptr_t, out **C.char) C.int32_t

// The run functions hand a successful call's out-string to decode in place
// (see useString): decode must not keep the slice or anything pointing
// into it. A failed call's out-string becomes the returned *Error.

// runCancellable runs a long native call under ctx, go-sqlite3 style: a
// plain call when ctx can never be done; otherwise a goroutine triggers the
// library's cancel token when ctx is done, and we wait for the call itself
// to return, so nothing it started outlives it. A success that raced the
// cancel is kept: the work is done and its result is returned.
func runCancellable(ctx context.Context, call cancellableCall, decode func(body []byte) error) error {
	if ctx.Err() != nil {
		return cancelledBefore(ctx)
	}
	var monitor *opMonitor
	var handle C.uintptr_t
	if fn := progressFrom(ctx); fn != nil || ctx.Done() != nil {
		monitor = &opMonitor{ctx: ctx, fn: fn}
		h := cgo.NewHandle(monitor)
		defer h.Delete()
		handle = C.uintptr_t(h)
	}

	var out *C.char
	var status C.int32_t
	if ctx.Done() == nil {
		status = call(nil, handle, &out)
	} else {
		var token *C.msnap_cancel
		if rc := C.msnap_cancel_new(&token); rc != C.MSNAP_OK {
			return decodeError(ctx, Code(rc), nil)
		}
		stop := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			select {
			case <-ctx.Done():
				C.msnap_cancel_trigger(token)
			case <-stop:
			}
		}()
		status = call(token, handle, &out)
		close(stop)
		<-stopped // the trigger never runs on a freed token
		C.msnap_cancel_free(token)
	}
	return useString(out, func(body []byte) error {
		if monitor != nil {
			monitor.repanic()
		}
		if status != C.MSNAP_OK {
			return decodeError(ctx, Code(status), body)
		}
		return decode(body)
	})
}

// runQuick runs a short native call that takes no cancel token: a done
// ctx stops it from starting.
func runQuick(ctx context.Context, call func(out **C.char) C.int32_t, decode func(body []byte) error) error {
	if ctx.Err() != nil {
		return cancelledBefore(ctx)
	}
	var out *C.char
	status := call(&out)
	return useString(out, func(body []byte) error {
		if status != C.MSNAP_OK {
			return decodeError(ctx, Code(status), body)
		}
		return decode(body)
	})
}
