//go:build microsnap_pkgconfig

package microsnap

// With -tags microsnap_pkgconfig the package finds the installed header and
// library through pkg-config (`make install` writes microsnap.pc).

/*
#cgo pkg-config: microsnap
*/
import "C"
