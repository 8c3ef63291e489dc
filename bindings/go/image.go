package microsnap

/*
#include "msnap_go.h"
*/
import "C"

import "context"

// Image is one image of a home's local OCI image layout (<home>/images).
type Image struct {
	// Ref is the org.opencontainers.image.ref.name the layout records, or
	// "" for an unnamed entry.
	Ref string `json:"ref"`
	// ManifestDigest is the digest of the image manifest snapshots pin.
	ManifestDigest string `json:"manifest_digest"`
	// ConfigDigest is the digest of the image config blob.
	ConfigDigest string `json:"config_digest"`
	// Layers is the number of layers.
	Layers int `json:"layers"`
	// Size is the total size of manifest, config and layers in bytes.
	Size uint64 `json:"size"`
}

// ListImages lists the images of this home's local OCI layout.
func (h *Home) ListImages(ctx context.Context) ([]Image, error) {
	var r imageListResult
	err := h.quick(ctx, "image_list", struct{}{}, &r,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_image_list(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	images := make([]Image, len(r.Images))
	for i, img := range r.Images {
		images[i] = img.Image
		if img.Ref != nil {
			images[i].Ref = *img.Ref
		}
	}
	return images, nil
}

// ImportImages copies the images of another OCI image layout directory
// (made by skopeo, umoci, or any OCI tool) into this home's layout,
// checking every blob's digest. With ref != "", only that image is taken
// (or the layout's only image, stored under ref). It returns the refs and
// manifest digests added.
func (h *Home) ImportImages(ctx context.Context, layoutDir, ref string) ([]Image, error) {
	args := map[string]string{"source": layoutDir}
	if ref != "" {
		args["ref"] = ref
	}
	var r imageImportResult
	err := h.quick(ctx, "image_import", args, &r,
		func(out **C.char, native *C.msnap_context, args *C.char) C.int32_t {
			return C.msnap_image_import(out, native, args)
		})
	if err != nil {
		return nil, err
	}
	return r.Images, nil
}

// imageListResult is image_list's result: images whose ref is null for an
// unnamed entry (Image.Ref is "" then).
type imageListResult struct {
	Images []struct {
		Image
		Ref *string `json:"ref"`
	} `json:"images"`
}

// imageImportResult is image_import's result.
type imageImportResult struct {
	Images []Image `json:"images"`
}
