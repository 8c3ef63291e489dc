package microsnap

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/microsnap/microsnap/bindings/go/internal/cheader"
)

// The Code constants are literals (so go doc shows their values); each must
// equal its constant in include/microsnap.h, read through cgo, and the
// header must have no code this package lacks.
func TestCodesEqualTheHeader(t *testing.T) {
	byName := map[string]Code{}
	for code, name := range codeNames {
		header := "MSNAP_ERR_" + strings.ToUpper(name)
		if code == CodeOK {
			header = "MSNAP_OK"
		}
		byName[header] = code
	}
	for header, value := range cheader.Codes {
		code, ok := byName[header]
		switch {
		case !ok:
			t.Errorf("%s = %d has no Code in this package", header, value)
		case int32(code) != value:
			t.Errorf("%s is %d in the header, %d (%s) here", header, value, int32(code), code)
		}
	}
	if len(byName) != len(cheader.Codes) {
		t.Errorf("%d codes here, %d in the header", len(byName), len(cheader.Codes))
	}
	// cheader lists the codes by hand: it must list every one the header has.
	text, err := os.ReadFile("../../include/microsnap.h")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^#define (MSNAP_(?:OK|ERR_[A-Z_]+)) `).FindAllSubmatch(text, -1) {
		if _, ok := cheader.Codes[string(m[1])]; !ok {
			t.Errorf("include/microsnap.h defines %s; add it to internal/cheader and a Code here", m[1])
		}
	}
	if SupportedABIVersion != cheader.ABIVersion {
		t.Errorf("SupportedABIVersion is %d, the header's MSNAP_ABI_VERSION %d", SupportedABIVersion, cheader.ABIVersion)
	}
}
