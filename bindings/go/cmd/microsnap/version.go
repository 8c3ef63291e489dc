package main

import (
	"fmt"

	m "github.com/microsnap/microsnap/bindings/go"
)

// cliVersion is this command's own version. The CLI ships with the library
// from one source tree, so it carries the crate's version (Cargo.toml);
// version_test.go fails when the two differ.
const cliVersion = "0.1.0"

// versionText is what `microsnap --version` and `microsnap version` print:
// the CLI, the library it loaded and the C ABI that library speaks. A CLI
// run against another install's library shows it here first.
func versionText() string {
	return fmt.Sprintf("microsnap %s\nlibmicrosnap %s (ABI %d)\n", cliVersion, m.LibraryVersion(), m.ABIVersion())
}
