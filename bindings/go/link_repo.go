//go:build !microsnap_pkgconfig

package microsnap

// In the repository the package links the library that `make lib` (or
// `cargo build --lib`) leaves in target/debug, with an rpath so that
// `go test` needs no LD_LIBRARY_PATH. Build with -tags microsnap_pkgconfig to
// link an installed library through pkg-config instead (link_pkgconfig.go).

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/debug -lmicrosnap -Wl,-rpath,${SRCDIR}/../../target/debug
*/
import "C"
