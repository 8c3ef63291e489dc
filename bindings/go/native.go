package microsnap

/*
#include <stdlib.h>
#include "msnap_go.h"
*/
import "C"

import (
	"encoding/json"
	"unsafe"
)

// cArgs encodes v as the JSON argument object of a call. The caller frees
// the result with C.free (it is our allocation, not the library's).
func cArgs(v any) (*C.char, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Name: "invalid_argument", Message: "encode arguments: " + err.Error()}
	}
	return C.CString(string(b)), nil
}

func freeArgs(p *C.char) { C.free(unsafe.Pointer(p)) }

// takeString copies a library-owned string into Go memory and frees it with
// msnap_string_free, the only allowed way.
func takeString(p *C.char) []byte {
	if p == nil {
		return nil
	}
	b := []byte(C.GoString(p))
	C.msnap_string_free(p)
	return b
}
