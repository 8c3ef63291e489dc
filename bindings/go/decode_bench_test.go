package microsnap

import (
	"fmt"
	"testing"

	"github.com/go-json-experiment/json"
)

// BenchmarkDecodeList10000 times the binding's own share of List: reading
// a 10,000-handle snapshot_list result (as the library writes it) into the
// handles List returns, without the library call.
func BenchmarkDecodeList10000(b *testing.B) {
	body := listingBody(b, 10_000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var r handleListResult
		err := decodeResult("snapshot_list", body, &r)
		list := r.Snapshots
		if err != nil || len(list) != 10_000 {
			b.Fatalf("%d handles: %v", len(list), err)
		}
	}
}

// listingBody is a snapshot_list result of n handles shaped like the bench
// home's: one image, a distinct name, path and label each.
func listingBody(tb testing.TB, n int) []byte {
	tb.Helper()
	const size = 1 << 20
	r := struct {
		Snapshots []handleJSON `json:"snapshots"`
	}{make([]handleJSON, n)}
	for i := range r.Snapshots {
		name := fmt.Sprintf("s-%05d", i)
		r.Snapshots[i] = handleJSON{
			Digest:              fmt.Sprintf("sha256:%064x", i),
			Name:                optional[string]{name, true},
			ImageRef:            "alpine:3.20",
			ImageManifestDigest: "sha256:57c8c28cbc9f978928355a7d57a117f2f2c39036bb63e3ecae2d4901b2dd3753",
			Format:              "raw",
			Fstype:              "ext4",
			SizeBytes:           optional[uint64]{size, true},
			Path:                "/home/user/.microsnap/snapshots/" + name,
			CreatedAt:           "2026-11-28T17:38:40.623333353+00:00",
			CreatedAtUnixNanos:  1795887520623333353 + int64(i),
			Labels:              labels{[]string{"seq", fmt.Sprint(i)}},
			ArtifactFormat:      "msb-v0.6.3",
		}
	}
	body, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}
