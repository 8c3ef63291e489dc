//go:build microsnap_pkgconfig

package cheader

// With -tags microsnap_pkgconfig: the installed header (link_pkgconfig.go).

/*
#cgo pkg-config: microsnap
*/
import "C"
