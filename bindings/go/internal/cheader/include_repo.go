//go:build !microsnap_pkgconfig

package cheader

// In the repository: the header the binding compiles with (link_repo.go).

/*
#cgo CFLAGS: -I${SRCDIR}/../../../../include
*/
import "C"
