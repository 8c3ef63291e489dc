package microsnap

// This file holds only the exported trampoline: a cgo file with //export
// may not define C functions in its preamble.

/*
#include <stdint.h>
*/
import "C"

import "runtime/cgo"

// microsnapGoProgress is the progress callback's Go side. monitor is a
// runtime/cgo.Handle to the call's *opMonitor. It returns non-zero to ask
// the library to cancel.
//
//export microsnapGoProgress
func microsnapGoProgress(phase *C.char, done, total C.uint64_t, monitor C.uintptr_t) C.int32_t {
	m, ok := cgo.Handle(monitor).Value().(*opMonitor)
	if !ok {
		return 1
	}
	if m.report(Progress{Phase: C.GoString(phase), Done: uint64(done), Total: uint64(total)}) {
		return 0
	}
	return 1
}
