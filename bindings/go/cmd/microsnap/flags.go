package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
)

// Flag values that check what the user typed when it is parsed, so that a
// bad value is a usage error naming its flag and never reaches the
// library's JSON decoder.

// labelFlags collects repeated --label k=v.
type labelFlags map[string]string

func (l labelFlags) String() string { return "" }
func (l labelFlags) Type() string   { return "k=v" }

func (l labelFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("--label %q is not k=v", v)
	}
	l[k] = val
	return nil
}

// intFlag is an integer flag with a range; 0 is "not given" (the library
// default) when zeroIsDefault.
type intFlag struct {
	name          string
	min, max      int
	zeroIsDefault bool
	value         int
	what          string // what the number counts, for messages
}

func (f *intFlag) String() string {
	if f.value == 0 {
		return ""
	}
	return strconv.Itoa(f.value)
}

func (f *intFlag) Type() string { return "N" }

func (f *intFlag) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("--%s %q is not a whole number (%s: %d to %d)", f.name, s, f.what, f.min, f.max)
	}
	if (n < int64(f.min) || n > int64(f.max)) && !(n == 0 && f.zeroIsDefault) {
		return fmt.Errorf("--%s %d is out of range (%s: %d to %d)", f.name, n, f.what, f.min, f.max)
	}
	f.value = int(n)
	return nil
}

// sizeFlag is a byte size flag, read by parseSize.
type sizeFlag struct {
	name  string
	value uint64
}

func (f *sizeFlag) String() string {
	if f.value == 0 {
		return ""
	}
	return strconv.FormatUint(f.value, 10)
}

func (f *sizeFlag) Type() string { return "SIZE" }

func (f *sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return fmt.Errorf("--%s: %v", f.name, err)
	}
	f.value = n
	return nil
}

// Positional argument counts, as usage errors that say what the command
// takes.
func args(min, max int) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if len(a) >= min && len(a) <= max {
			return nil
		}
		if max == 0 {
			return usageErrorf("%s takes no arguments, got %q", c.CommandPath(), a)
		}
		what := "too many arguments"
		if len(a) < min {
			what = "too few arguments"
		}
		return usageErrorf("%s: %s: usage: %s", c.CommandPath(), what, c.UseLine())
	}
}

// formatFlag is --format: the artifact (or archive) layout, one of the
// binding's format names, checked here so that a typo lists the values.
type formatFlag struct{ value string }

// formats are --format's values, the default first.
var formats = []string{m.FormatMsbV063, m.FormatMsbV0614}

func (f *formatFlag) String() string { return f.value }
func (f *formatFlag) Type() string   { return "FORMAT" }

func (f *formatFlag) Set(s string) error {
	if !slices.Contains(formats, s) {
		return fmt.Errorf("--format %q is not a format: use %s (the default) or %s", s, formats[0], formats[1])
	}
	f.value = s
	return nil
}
