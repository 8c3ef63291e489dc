package microsnap_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

func TestListAndImportImages(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	digest := makeImage(t, filepath.Join(src, "layout"), "demo:1")
	h := newHome(t)

	before, err := h.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	added, err := h.ImportImages(ctx, filepath.Join(src, "layout"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0].Ref != "demo:1" || added[0].ManifestDigest != digest {
		t.Fatalf("added %+v, want demo:1 %s", added, digest)
	}
	after, err := h.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+1 {
		t.Fatalf("images %d -> %d", len(before), len(after))
	}
	var found *m.Image
	for i := range after {
		if after[i].Ref == "demo:1" {
			found = &after[i]
		}
	}
	if found == nil || found.ManifestDigest != digest || found.Layers != 1 || found.Size == 0 {
		t.Fatalf("listed %+v", after)
	}
	if _, err := h.ImportImages(ctx, filepath.Join(src, "missing"), ""); !errors.Is(err, m.ErrImageNotFound) {
		t.Fatalf("missing layout: %v", err)
	}
}
