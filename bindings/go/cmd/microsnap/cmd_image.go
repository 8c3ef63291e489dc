package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func imageCommand(e *env) *cobra.Command {
	return group("image", "List, import and prune the OCI images sandboxes start from", imageList(e), imageImport(e), imagePrune(e))
}

func imageList(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the images of the home's OCI layout",
		Args: args(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			home, err := e.openHome()
			if err != nil {
				return err
			}
			images, err := home.ListImages(e.ctx)
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e.stdout, viewImages(images))
			}
			rows := make([][]string, len(images))
			for i, img := range images {
				ref := img.Ref
				if ref == "" {
					ref = "<none>"
				}
				rows[i] = []string{ref, shortDigest(img.ManifestDigest), fmt.Sprint(img.Layers), humanBytes(img.Size)}
			}
			table(e.stdout, []string{"REF", "MANIFEST", "LAYERS", "SIZE"}, rows)
			return nil
		},
	}
}

// imageImport adds the images of an OCI layout (a directory, or a tar of
// one as `docker save`-style OCI tools write) to the home's layout.
func imageImport(e *env) *cobra.Command {
	var ref string
	c := &cobra.Command{
		Use: "import OCI_LAYOUT_DIR_OR_TAR", Short: "Copy the images of an OCI layout (directory or tar) into the home",
		Long: `Copy the images of an OCI image layout (a directory, or a tar of one, as
skopeo, umoci or docker save write) into the home's layout, checking every
blob's digest.`,
		Args: args(1, 1),
	}
	c.Flags().StringVar(&ref, "ref", "", "take only the image `REF` (or store the layout's only image under REF)")
	c.RunE = func(c *cobra.Command, pos []string) error {
		src := pos[0]
		if err := mustExist(src, "OCI layout"); err != nil {
			return err
		}
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		home, err := e.openHome()
		if err != nil {
			return err
		}
		if !st.IsDir() {
			dir, err := os.MkdirTemp("", "microsnap-image-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if err := untarLayout(src, dir); err != nil {
				return usageErrorf("%s is not an OCI layout tar: %v", src, err)
			}
			src = dir
		}
		images, err := home.ImportImages(e.ctx, src, ref)
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, viewImported(images))
		}
		for _, img := range images {
			fmt.Fprintf(e.stdout, "imported %s %s\n", img.Ref, img.ManifestDigest)
		}
		return nil
	}
	return c
}

// untarLayout extracts the regular files and directories of an OCI layout
// tar into dir, refusing anything that could escape it. The blobs are
// checked by digest on import, so only the paths need guarding here.
func untarLayout(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("unsafe path %q", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported entry %q", h.Name)
		}
	}
}
