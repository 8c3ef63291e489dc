package microsnap

/*
#include <stdlib.h>
#include <string.h>
#include "msnap_go.h"
*/
import "C"

import (
	"unsafe"

	"github.com/go-json-experiment/json"
)

// cArgs encodes v as the JSON argument object of a call. The caller frees
// the result with C.free (it is our allocation, not the library's). A
// string that is not valid UTF-8 (which the library would refuse) is an
// invalid_argument error here, as the library's would be; encoding/json
// replaced its bytes with U+FFFD and sent another path.
func cArgs(v any) (*C.char, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Name: "invalid_argument", Message: "encode arguments: " + err.Error()}
	}
	return C.CString(string(b)), nil
}

func freeArgs(p *C.char) { C.free(unsafe.Pointer(p)) }

// useString runs use on a library-owned string where it lies, then frees it
// with msnap_string_free, the only allowed way; a NULL string is an empty
// body. use must not keep the slice or anything pointing into it (a copying
// decoder such as json.Unmarshal does not): it saves copying results that
// can be megabytes.
func useString(p *C.char, use func(body []byte) error) error {
	if p == nil {
		return use(nil)
	}
	defer C.msnap_string_free(p)
	return use(unsafe.Slice((*byte)(unsafe.Pointer(p)), C.strlen(p)))
}

// takeString copies a library-owned string into Go memory and frees it with
// msnap_string_free, the only allowed way. It copies once (C.GoString and
// a []byte conversion would copy twice): a listing can be megabytes.
func takeString(p *C.char) []byte {
	if p == nil {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(p), C.int(C.strlen(p)))
	C.msnap_string_free(p)
	return b
}
