package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func init() {
	register("image", "ls", "ls", imageList)
	register("image", "import", "import OCI_LAYOUT_DIR_OR_TAR [--ref REF]", imageImport)
}

func imageList(e *env, args []string) error {
	fs := flag.NewFlagSet("image ls", flag.ContinueOnError)
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	images, err := e.home.ListImages(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, images)
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
}

// imageImport adds the images of an OCI layout (a directory, or a tar of
// one as `docker save`-style OCI tools write) to the home's layout.
func imageImport(e *env, args []string) error {
	fs := flag.NewFlagSet("image import", flag.ContinueOnError)
	ref := fs.String("ref", "", "take only this image (or store the only one under this ref)")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	src := pos[0]
	st, err := os.Stat(src)
	if err != nil {
		return usageError(fmt.Sprintf("%s: %v", src, err))
	}
	if !st.IsDir() {
		dir, err := os.MkdirTemp("", "microsnap-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := untarLayout(src, dir); err != nil {
			return usageError(fmt.Sprintf("%s is not an OCI layout tar: %v", src, err))
		}
		src = dir
	}
	images, err := e.home.ImportImages(e.ctx, src, *ref)
	if err != nil {
		return err
	}
	if e.json {
		return printJSON(e.stdout, images)
	}
	for _, img := range images {
		fmt.Fprintf(e.stdout, "imported %s %s\n", img.Ref, img.ManifestDigest)
	}
	return nil
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
