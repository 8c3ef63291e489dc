// Package cheader gives the binding's tests the constants of
// include/microsnap.h, read through cgo: a _test.go file cannot use cgo,
// and the binding itself spells its constants as literals so that go doc
// shows their values. Only tests import it.
package cheader

/*
#include "microsnap.h"
*/
import "C"

// ABIVersion is MSNAP_ABI_VERSION.
const ABIVersion = C.MSNAP_ABI_VERSION

// Codes are the status codes by their header names.
var Codes = map[string]int32{
	"MSNAP_OK":                     C.MSNAP_OK,
	"MSNAP_ERR_SNAPSHOT_NOT_FOUND": C.MSNAP_ERR_SNAPSHOT_NOT_FOUND,
	"MSNAP_ERR_SANDBOX_NOT_FOUND":  C.MSNAP_ERR_SANDBOX_NOT_FOUND,
	"MSNAP_ERR_IMAGE_NOT_FOUND":    C.MSNAP_ERR_IMAGE_NOT_FOUND,
	"MSNAP_ERR_ALREADY_EXISTS":     C.MSNAP_ERR_ALREADY_EXISTS,
	"MSNAP_ERR_SANDBOX_RUNNING":    C.MSNAP_ERR_SANDBOX_RUNNING,
	"MSNAP_ERR_HAS_CHILDREN":       C.MSNAP_ERR_HAS_CHILDREN,
	"MSNAP_ERR_INTEGRITY_MISMATCH": C.MSNAP_ERR_INTEGRITY_MISMATCH,
	"MSNAP_ERR_INVALID_ARGUMENT":   C.MSNAP_ERR_INVALID_ARGUMENT,
	"MSNAP_ERR_INVALID_MANIFEST":   C.MSNAP_ERR_INVALID_MANIFEST,
	"MSNAP_ERR_INVALID_ARCHIVE":    C.MSNAP_ERR_INVALID_ARCHIVE,
	"MSNAP_ERR_UNSUPPORTED":        C.MSNAP_ERR_UNSUPPORTED,
	"MSNAP_ERR_IO":                 C.MSNAP_ERR_IO,
	"MSNAP_ERR_CANCELLED":          C.MSNAP_ERR_CANCELLED,
	"MSNAP_ERR_INTERNAL":           C.MSNAP_ERR_INTERNAL,
	"MSNAP_ERR_UNAUTHORIZED":       C.MSNAP_ERR_UNAUTHORIZED,
	"MSNAP_ERR_REGISTRY_ERROR":     C.MSNAP_ERR_REGISTRY_ERROR,
}
