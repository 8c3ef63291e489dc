package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCommand writes the manual pages, one per command (microsnap.1,
// microsnap-snapshot-create.1, ...), from the same command tree --help
// prints, so the pages cannot drift from the CLI. `make install` runs it;
// the pages are not kept in the repository. Hidden: it is a build step,
// not something users run.
func manCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the manual pages (section 1) into DIR",
		Hidden: true,
		Args:   args(1, 1),
		RunE: func(c *cobra.Command, argv []string) error {
			dir := argv[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			header := &doc.GenManHeader{
				Title:   "MICROSNAP",
				Section: "1",
				Source:  "microsnap " + cliVersion,
				Manual:  "microsnap manual",
			}
			root := c.Root()
			// The tree is walked from the root; this command is hidden, so
			// it gets no page of its own. No "generated on <date>" footer:
			// the same tree gives the same pages.
			for _, cmd := range allCommandsOf(root) {
				cmd.DisableAutoGenTag = true
			}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			return nil
		},
	}
}

func allCommandsOf(c *cobra.Command) []*cobra.Command {
	all := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		all = append(all, allCommandsOf(sub)...)
	}
	return all
}
