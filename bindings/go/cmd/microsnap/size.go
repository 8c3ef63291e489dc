package main

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
)

// sizeHelp is what --size help says sizes may look like.
const sizeHelp = "bytes (1073741824) or a number with a binary unit K, M, G, T, P, each also as KiB or KB (powers of 1024): 4G, 512MiB, 1.5G"

// sizeSyntax is a decimal number (no sign, no exponent, no inf or nan),
// then an optional unit.
var sizeSyntax = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(I?B)?$`)

var unitShift = map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50}

// parseSize reads a size as users type it: 4G, 512M, 1GiB, 1.5K, 1048576.
// The result is a whole, positive number of bytes that fits an off_t;
// anything else (1.5 bytes, -1, inf, nan, 1e30) is an error saying why.
func parseSize(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	m := sizeSyntax.FindStringSubmatch(t)
	if m == nil || (m[2] == "" && m[3] == "IB") {
		return 0, fmt.Errorf("%q is not a size (sizes are %s)", s, sizeHelp)
	}
	n, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("%q is not a size (sizes are %s)", s, sizeHelp)
	}
	n.Mul(n, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), unitShift[m[2]])))
	switch {
	case n.Sign() == 0:
		return 0, fmt.Errorf("%q is zero bytes", s)
	case !n.IsInt():
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	case n.Num().Cmp(big.NewInt(math.MaxInt64)) > 0:
		return 0, fmt.Errorf("%q is more than the largest file size, %d bytes", s, int64(math.MaxInt64))
	}
	return n.Num().Uint64(), nil
}
