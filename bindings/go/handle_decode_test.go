package microsnap

import (
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
)

// A handle as the library writes it (docs/abi.md).
const libraryHandle = `{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",` +
	`"name":"base","parent_digest":null,"image_ref":"alpine:3.20",` +
	`"image_manifest_digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222",` +
	`"format":"raw","fstype":"ext4","size_bytes":4294967296,"path":"/h/snapshots/base",` +
	`"created_at":"2026-11-28T17:38:40.623333353+00:00","created_at_unix_nanos":1795887520623333353,` +
	`"labels":{"a":"1","stage":"post-deps"},"child_count":2,"artifact_format":"msb-v0.6.3"}`

// refHandle is the handle as the json package's reflection reads it: the
// reference the member-by-member decoder is checked against.
type refHandle struct {
	Digest              string            `json:"digest"`
	Name                *string           `json:"name"`
	ParentDigest        *string           `json:"parent_digest"`
	ImageRef            string            `json:"image_ref"`
	ImageManifestDigest string            `json:"image_manifest_digest"`
	Format              string            `json:"format"`
	Fstype              string            `json:"fstype"`
	SizeBytes           *uint64           `json:"size_bytes"`
	Path                string            `json:"path"`
	CreatedAt           string            `json:"created_at"`
	CreatedAtUnixNanos  int64             `json:"created_at_unix_nanos"`
	Labels              map[string]string `json:"labels"`
	ChildCount          uint64            `json:"child_count"`
	ArtifactFormat      string            `json:"artifact_format"`
}

func asRef(h *SnapshotHandle) refHandle {
	return refHandle{
		Digest: h.Digest(), Name: h.Name(), ParentDigest: h.ParentDigest(), ImageRef: h.ImageRef(),
		ImageManifestDigest: h.ImageManifestDigest(), Format: h.Format(), Fstype: h.Fstype(),
		SizeBytes: h.SizeBytes(), Path: h.Path(), CreatedAt: h.h.CreatedAt,
		CreatedAtUnixNanos: h.CreatedAt().UnixNano(), Labels: h.Labels(), ChildCount: h.ChildCount(),
		ArtifactFormat: h.ArtifactFormat(),
	}
}

func decodeList(body string) ([]*SnapshotHandle, error) {
	var r handleListResult
	if err := decodeResult("snapshot_list", []byte(body), &r); err != nil {
		return nil, err
	}
	return r.handles(nil)
}

func withMember(name, value string) string {
	return strings.Replace(libraryHandle, `"child_count":2`, `"child_count":2,"`+name+`":`+value, 1)
}

func replaceMember(name, value string) string {
	i := strings.Index(libraryHandle, `"`+name+`":`)
	rest := libraryHandle[i+len(name)+3:]
	end := strings.IndexAny(rest, ",}")
	if rest[0] == '{' { // labels: up to its closing brace
		end = strings.Index(rest, "}") + 1
	}
	return libraryHandle[:i] + `"` + name + `":` + value + rest[end:]
}

// handleMembers spells the json tags of handleJSON's fields, in order.
func TestHandleMembersAreTheTags(t *testing.T) {
	typ := reflect.TypeFor[handleJSON]()
	if typ.NumField() != len(handleMembers) {
		t.Fatalf("%d fields, %d members", typ.NumField(), len(handleMembers))
	}
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("json"); tag != handleMembers[i] {
			t.Errorf("field %d is tagged %q, handleMembers has %q", i, tag, handleMembers[i])
		}
	}
}

// What the decoder accepts, it reads as reflection does.
func TestHandleDecodeAgreesWithReflection(t *testing.T) {
	for _, handle := range []string{
		libraryHandle,
		replaceMember("path", `"/h/sn\"ap\\s\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00 é€😀"`),
		strings.Replace(libraryHandle, `"digest"`, `"dig\u0065st"`, 1),
		" { " + strings.NewReplacer(`,"`, " ,\n\"", `":`, "\"\t:\r ").Replace(libraryHandle[1:]),
		`{"artifact_format":"msb-v0.6.14","child_count":0,"labels":{},"size_bytes":null,"name":null,"parent_digest":"sha256:ab",` +
			`"created_at_unix_nanos":-9223372036854775808,"created_at":"","path":"/p","fstype":"","format":"qcow2",` +
			`"image_manifest_digest":"","image_ref":"","digest":"d"}`,
		withMember("future", `{"n":[1.25E-3,0,-7],"s":"\u0041"}`),
		replaceMember("size_bytes", "18446744073709551615"),
		replaceMember("created_at_unix_nanos", "9223372036854775807"),
		replaceMember("labels", `{"z":"1","a":"2","m\u00e9":"3","":""}`),
	} {
		list, err := decodeList(`{"snapshots":[` + handle + `,` + handle + `]}`)
		if err != nil {
			t.Errorf("decode %s: %v", handle, err)
			continue
		}
		var ref refHandle
		if err := json.Unmarshal([]byte(handle), &ref); err != nil {
			t.Fatalf("reference decode %s: %v", handle, err)
		}
		if ref.Labels == nil {
			ref.Labels = map[string]string{}
		}
		for _, h := range list {
			if got := asRef(h); !reflect.DeepEqual(got, ref) {
				t.Errorf("decoded %s\n got %+v\nwant %+v", handle, got, ref)
			}
		}
		var one handleJSON // Get and Import read a handle alone
		if err := json.Unmarshal([]byte(handle), &one); err != nil || !reflect.DeepEqual(asRef(&SnapshotHandle{h: one}), ref) {
			t.Errorf("alone %s: %v", handle, err)
		}
	}
	// Each handle's accessors hand out copies.
	list, _ := decodeList(`{"snapshots":[` + libraryHandle + `]}`)
	*list[0].Name() = "changed"
	list[0].Labels()["a"] = "changed"
	if *list[0].Name() != "base" || list[0].Labels()["a"] != "1" {
		t.Error("a returned pointer or map reached into the handle")
	}
}

func TestHandleDecodeRefusesMalformedInput(t *testing.T) {
	list := func(h string) string { return `{"snapshots":[` + h + `]}` }
	cases := map[string]string{
		"empty":                  ``,
		"not an object":          `[]`,
		"snapshots twice":        `{"snapshots":[],"snapshots":[]}`,
		"snapshots not an array": `{"snapshots":{}}`,
		"snapshots null":         `{"snapshots":null}`,
		"trailing data":          `{"snapshots":[]} x`,
		"trailing comma":         list(libraryHandle + `,`),
		"missing comma":          list(libraryHandle + libraryHandle),
		"handle not an object":   list(`"x"`),
		"missing member":         list(strings.Replace(libraryHandle, `"fstype":"ext4",`, ``, 1)),
		"missing last member":    list(strings.Replace(libraryHandle, `,"artifact_format":"msb-v0.6.3"`, ``, 1)),
		"null artifact_format":   list(replaceMember("artifact_format", "null")),
		"artifact_format twice":  list(withMember("artifact_format", `"msb-v0.6.14"`)),
		"duplicate member":       list(withMember("digest", `"again"`)),
		"duplicate escaped name": list(withMember("dig\\u0065st", `"again"`)),
		"null digest":            list(replaceMember("digest", "null")),
		"null labels":            list(replaceMember("labels", "null")),
		"null child_count":       list(replaceMember("child_count", "null")),
		"number as string":       list(replaceMember("path", "12")),
		"string as number":       list(replaceMember("child_count", `"2"`)),
		"bool as number":         list(replaceMember("child_count", "true")),
		"fraction":               list(replaceMember("child_count", "2.0")),
		"exponent":               list(replaceMember("size_bytes", "1e3")),
		"negative unsigned":      list(replaceMember("child_count", "-1")),
		"negative zero unsigned": list(replaceMember("child_count", "-0")),
		"leading zero":           list(replaceMember("child_count", "02")),
		"u64 overflow":           list(replaceMember("size_bytes", "18446744073709551616")),
		"i64 overflow":           list(replaceMember("created_at_unix_nanos", "9223372036854775808")),
		"i64 underflow":          list(replaceMember("created_at_unix_nanos", "-9223372036854775809")),
		"i64 fraction":           list(replaceMember("created_at_unix_nanos", "-1.5")),
		"label not a string":     list(replaceMember("labels", `{"a":1}`)),
		"labels an array":        list(replaceMember("labels", `["a"]`)),
		"duplicate label":        list(replaceMember("labels", `{"a":"1","a":"2"}`)),
		"duplicate label later":  list(replaceMember("labels", `{"b":"1","a":"2","b":"3"}`)),
		"no snapshots":           `{}`,
		"control character":      list(replaceMember("path", "\"/a\x01b\"")),
		"bad escape":             list(replaceMember("path", `"/a\x"`)),
		"lone surrogate":         list(replaceMember("path", `"\ud83d"`)),
		"invalid UTF-8":          list(replaceMember("path", "\"/a\xffb\"")),
		"bad literal":            list(replaceMember("name", "nul")),
		"unknown bad number":     list(withMember("x", "1.")),
		"unknown unclosed":       list(withMember("x", `{"a":1`)),
	}
	for name, body := range cases {
		if l, err := decodeList(body); err == nil {
			t.Errorf("%s: accepted %q as %d handles", name, body, len(l))
		}
	}
	// Every proper prefix of a listing is refused, wherever it is cut.
	body := list(replaceMember("path", `"/a\u00e9\ud83d\ude00é"`))
	for n := range len(body) {
		if _, err := decodeList(body[:n]); err == nil {
			t.Errorf("accepted the %d-byte prefix %q", n, body[:n])
		}
	}
	// An error says which member, and decodeResult makes it an internal one.
	_, err := decodeList(list(replaceMember("child_count", `"2"`)))
	if e, ok := err.(*Error); !ok || e.Code != CodeInternal || !strings.Contains(e.Message, `"child_count"`) ||
		!strings.Contains(e.Message, "snapshot_list: unreadable result") {
		t.Errorf("error %#v", err)
	}
	// Unknown members are refused when the golden tests ask.
	var one handleJSON
	if err := json.Unmarshal([]byte(withMember("future", "1")), &one, strict); err == nil {
		t.Error("an unknown member decoded strictly")
	}
}

// The pool shares a repeated artifact_format between a listing's handles;
// a change of format from one handle to the next is still read as sent.
func TestHandleDecodeArtifactFormatPerHandle(t *testing.T) {
	v0614 := replaceMember("artifact_format", `"msb-v0.6.14"`)
	escaped := replaceMember("artifact_format", `"msb-v0.6.1\u0034"`)
	list, err := decodeList(`{"snapshots":[` + strings.Join([]string{libraryHandle, v0614, v0614, libraryHandle, escaped}, ",") + `]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"msb-v0.6.3", "msb-v0.6.14", "msb-v0.6.14", "msb-v0.6.3", "msb-v0.6.14"}
	for i, h := range list {
		if h.ArtifactFormat() != want[i] {
			t.Errorf("handle %d: ArtifactFormat() = %q, want %q", i, h.ArtifactFormat(), want[i])
		}
	}
}
