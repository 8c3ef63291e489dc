package microsnap

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// refHandle is the handle object as encoding/json reads it: the reference
// the hand-written decoder is checked against.
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
}

// asRef converts a decoded handle to the reference shape.
func asRef(h *SnapshotHandle) refHandle {
	return refHandle{
		Digest: h.Digest(), Name: h.Name(), ParentDigest: h.ParentDigest(), ImageRef: h.ImageRef(),
		ImageManifestDigest: h.ImageManifestDigest(), Format: h.Format(), Fstype: h.Fstype(),
		SizeBytes: h.SizeBytes(), Path: h.Path(),
		CreatedAtUnixNanos: h.h.CreatedAtUnixNanos, Labels: h.Labels(), ChildCount: h.ChildCount(),
	}
}

// decodeList runs the List decoder on body.
func decodeList(body string) ([]*SnapshotHandle, error) {
	l := handleList{}
	err := l.decodeRaw([]byte(body))
	return l.handles, err
}

// refDecode reads a listing with encoding/json, member by member with exact
// names (encoding/json alone would also match names case-insensitively).
func refDecode(body []byte) ([]refHandle, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	var objects []map[string]json.RawMessage
	if err := json.Unmarshal(top["snapshots"], &objects); err != nil {
		return nil, err
	}
	out := make([]refHandle, len(objects))
	for i, obj := range objects {
		v := reflect.ValueOf(&out[i]).Elem()
		for f := 0; f < v.NumField(); f++ {
			name := v.Type().Field(f).Tag.Get("json")
			if err := json.Unmarshal(obj[name], v.Field(f).Addr().Interface()); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		if out[i].Labels == nil {
			out[i].Labels = map[string]string{}
		}
	}
	return out, nil
}

// checkAgainstReference decodes body with both decoders and fails unless
// both accept it and agree.
func checkAgainstReference(t *testing.T, body string) []*SnapshotHandle {
	t.Helper()
	got, err := decodeList(body)
	if err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	ref, err := refDecode([]byte(body))
	if err != nil {
		t.Fatalf("reference decode %q: %v", body, err)
	}
	if len(got) != len(ref) {
		t.Fatalf("%d handles, reference %d", len(got), len(ref))
	}
	for i, h := range got {
		ref[i].CreatedAt = "" // checked, not kept: CreatedAt() reads the nanoseconds
		if g := asRef(h); !reflect.DeepEqual(g, ref[i]) {
			t.Errorf("handle %d:\n got %s\nwant %s", i, show(g), show(ref[i]))
		}
	}
	return got
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A handle as the library writes it (docs/abi.md).
const libraryHandle = `{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",` +
	`"name":"base","parent_digest":null,"image_ref":"alpine:3.20",` +
	`"image_manifest_digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222",` +
	`"format":"raw","fstype":"ext4","size_bytes":4294967296,"path":"/h/snapshots/base",` +
	`"created_at":"2026-11-28T17:38:40.623333353+00:00","created_at_unix_nanos":1795887520623333353,` +
	`"labels":{"a":"1","stage":"post-deps"},"child_count":2}`

func withMember(name, value string) string {
	return strings.Replace(libraryHandle, `"child_count":2`, `"child_count":2,"`+name+`":`+value, 1)
}

func replaceMember(name, value string) string {
	i := strings.Index(libraryHandle, `"`+name+`":`)
	if i < 0 {
		panic(name)
	}
	rest := libraryHandle[i:]
	end := strings.IndexAny(rest[len(name)+3:], ",}")
	if rest[len(name)+3] == '{' { // labels: up to its closing brace
		end = strings.Index(rest, "}") + 1 - (len(name) + 3)
	}
	return libraryHandle[:i] + `"` + name + `":` + value + rest[len(name)+3+end:]
}

func TestHandleListDecodesLibraryOutput(t *testing.T) {
	list := checkAgainstReference(t, `{"snapshots":[`+libraryHandle+`,`+libraryHandle+`]}`)
	h := list[0]
	if *h.Name() != "base" || h.ParentDigest() != nil || *h.SizeBytes() != 4294967296 || h.ChildCount() != 2 ||
		h.CreatedAt().UnixNano() != 1795887520623333353 || h.Labels()["stage"] != "post-deps" {
		t.Errorf("handle %s", show(asRef(h)))
	}
	// Handles share nothing mutable: each accessor hands out a copy.
	*list[0].Name() = "changed"
	list[0].Labels()["a"] = "changed"
	if *list[0].Name() != "base" || list[0].Labels()["a"] != "1" {
		t.Error("a returned pointer or map reached into the handle")
	}
	if l, err := decodeList(`{"snapshots":[]}`); err != nil || len(l) != 0 {
		t.Errorf("empty list: %v %v", l, err)
	}
}

func TestHandleListAcceptsWhatJSONAllows(t *testing.T) {
	for _, body := range []string{
		// Escapes of every kind, raw multi-byte UTF-8, a surrogate pair.
		`{"snapshots":[` + replaceMember("path", `"/h/sn\"ap\\s\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00 é€😀"`) + `]}`,
		// Escaped member names take the general path.
		`{"snapshots":[` + strings.Replace(libraryHandle, `"digest"`, `"dig\u0065st"`, 1) + `]}`,
		// Whitespace between every token.
		" { \"snapshots\" : [ " + strings.NewReplacer(`,"`, " ,\n\"", `":`, "\"\t:\r ").Replace(libraryHandle) + " ] } \n",
		// Members in another order, nulls where nullable, no labels.
		`{"snapshots":[{"child_count":0,"labels":{},"size_bytes":null,"name":null,"parent_digest":"sha256:ab",` +
			`"created_at_unix_nanos":-9223372036854775808,"created_at":"","path":"/p","fstype":"","format":"qcow2",` +
			`"image_manifest_digest":"","image_ref":"","digest":"d"}]}`,
		// Unknown members of every type are skipped, at both levels.
		`{"version":[1,{"a":[true,false,null]},-0.5e+10,"x"],"snapshots":[` +
			withMember("future", `{"n":[1.25E-3,0,-7],"s":"\u0041"}`) + `],"more":{}}`,
		// Extreme integers.
		`{"snapshots":[` + replaceMember("size_bytes", "18446744073709551615") + `]}`,
		`{"snapshots":[` + replaceMember("created_at_unix_nanos", "9223372036854775807") + `]}`,
		// Labels out of order (checked for duplicates another way), and escaped keys.
		`{"snapshots":[` + replaceMember("labels", `{"z":"1","a":"2","m\u00e9":"3","":""}`) + `]}`,
	} {
		checkAgainstReference(t, body)
	}
}

func TestHandleListRefusesMalformedInput(t *testing.T) {
	list := func(h string) string { return `{"snapshots":[` + h + `]}` }
	cases := map[string]string{
		"empty":                   ``,
		"not an object":           `[]`,
		"no snapshots":            `{}`,
		"snapshots twice":         `{"snapshots":[],"snapshots":[]}`,
		"snapshots not an array":  `{"snapshots":{}}`,
		"snapshots null":          `{"snapshots":null}`,
		"trailing data":           `{"snapshots":[]} x`,
		"two values":              `{"snapshots":[]}{}`,
		"trailing comma":          `{"snapshots":[` + libraryHandle + `,]}`,
		"missing comma":           `{"snapshots":[` + libraryHandle + libraryHandle + `]}`,
		"handle not an object":    list(`"x"`),
		"unquoted name":           `{snapshots:[]}`,
		"missing colon":           `{"snapshots" []}`,
		"missing member":          list(strings.Replace(libraryHandle, `"fstype":"ext4",`, ``, 1)),
		"duplicate member":        list(withMember("digest", `"again"`)),
		"duplicate escaped name":  list(withMember("dig\\u0065st", `"again"`)),
		"null digest":             list(replaceMember("digest", "null")),
		"null labels":             list(replaceMember("labels", "null")),
		"null child_count":        list(replaceMember("child_count", "null")),
		"number as string":        list(replaceMember("path", "12")),
		"string as number":        list(replaceMember("child_count", `"2"`)),
		"bool as number":          list(replaceMember("child_count", "true")),
		"fraction":                list(replaceMember("child_count", "2.0")),
		"exponent":                list(replaceMember("size_bytes", "1e3")),
		"negative unsigned":       list(replaceMember("child_count", "-1")),
		"negative zero unsigned":  list(replaceMember("child_count", "-0")),
		"leading zero":            list(replaceMember("child_count", "02")),
		"plus sign":               list(replaceMember("created_at_unix_nanos", "+1")),
		"u64 overflow":            list(replaceMember("size_bytes", "18446744073709551616")),
		"i64 overflow":            list(replaceMember("created_at_unix_nanos", "9223372036854775808")),
		"i64 underflow":           list(replaceMember("created_at_unix_nanos", "-9223372036854775809")),
		"bare minus":              list(replaceMember("created_at_unix_nanos", "-")),
		"label not a string":      list(replaceMember("labels", `{"a":1}`)),
		"labels an array":         list(replaceMember("labels", `["a"]`)),
		"duplicate label":         list(replaceMember("labels", `{"a":"1","a":"2"}`)),
		"duplicate label unorder": list(replaceMember("labels", `{"b":"1","a":"2","b":"3"}`)),
		"control character":       list(replaceMember("path", "\"/a\x01b\"")),
		"raw newline":             list(replaceMember("path", "\"/a\nb\"")),
		"bad escape":              list(replaceMember("path", `"/a\x"`)),
		"short unicode escape":    list(replaceMember("path", `"\u12"`)),
		"non-hex unicode escape":  list(replaceMember("path", `"\u12G4"`)),
		"lone high surrogate":     list(replaceMember("path", `"\ud83d"`)),
		"lone low surrogate":      list(replaceMember("path", `"\ude00"`)),
		"high then non-low":       list(replaceMember("path", `"\ud83d\u0041"`)),
		"invalid UTF-8":           list(replaceMember("path", "\"/a\xffb\"")),
		"truncated UTF-8":         list(replaceMember("path", "\"/a\xe2\x82\"")),
		"overlong UTF-8":          list(replaceMember("path", "\"/a\xc0\xafb\"")),
		"UTF-8 surrogate":         list(replaceMember("path", "\"\xed\xa0\x80\"")),
		"bad literal":             list(replaceMember("name", "nul")),
		"unknown bad literal":     list(withMember("x", "tru")),
		"unknown bad number":      list(withMember("x", "1.")),
		"unknown bad exponent":    list(withMember("x", "1e")),
		"unknown leading zero":    list(withMember("x", "00")),
		"unknown unclosed":        list(withMember("x", `{"a":1`)),
		"unknown too deep":        list(withMember("x", strings.Repeat("[", 100)+strings.Repeat("]", 100))),
		"NUL after value":         "{\"snapshots\":[]}\x00",
	}
	for name, body := range cases {
		if l, err := decodeList(body); err == nil {
			t.Errorf("%s: accepted %q as %d handles", name, body, len(l))
		}
	}
}

// Every proper prefix of a valid listing is refused, wherever it is cut.
func TestHandleListRefusesEveryTruncation(t *testing.T) {
	body := `{"snapshots":[` + replaceMember("path", `"/a\u00e9\ud83d\ude00é"`) + `]}`
	checkAgainstReference(t, body)
	for n := 0; n < len(body); n++ {
		if _, err := decodeList(body[:n]); err == nil {
			t.Errorf("accepted the %d-byte prefix %q", n, body[:n])
		}
	}
}

func TestHandleUnmarshalJSON(t *testing.T) {
	var r struct {
		Head handleJSON `json:"head"`
	}
	if err := json.Unmarshal([]byte(`{"head":`+libraryHandle+`}`), &r); err != nil {
		t.Fatal(err)
	}
	h := &SnapshotHandle{h: r.Head}
	if h.Digest() != "sha256:1111111111111111111111111111111111111111111111111111111111111111" ||
		*h.Name() != "base" || h.Labels()["a"] != "1" || h.ChildCount() != 2 {
		t.Errorf("handle %s", show(asRef(h)))
	}
	for _, bad := range []string{
		strings.Replace(libraryHandle, `"name":"base",`, ``, 1),
		replaceMember("child_count", "-1"),
		`null`,
	} {
		var hj handleJSON
		if err := json.Unmarshal([]byte(bad), &hj); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestDecodeErrorsSayWhere(t *testing.T) {
	_, err := decodeList(`{"snapshots":[` + replaceMember("child_count", `"2"`) + `]}`)
	if err == nil || !strings.Contains(err.Error(), `"child_count"`) || !strings.Contains(err.Error(), "at byte") {
		t.Errorf("error %v", err)
	}
	err = decodeResult("snapshot_list", []byte(`{`), &handleList{})
	if e, ok := err.(*Error); !ok || e.Code != CodeInternal || !strings.Contains(e.Message, "snapshot_list: unreadable result") {
		t.Errorf("decodeResult error %#v", err)
	}
}

func TestInt64Limits(t *testing.T) {
	for text, want := range map[string]int64{
		"0": 0, "-0": 0, "7": 7, "-7": -7,
		"9223372036854775807": math.MaxInt64, "-9223372036854775808": math.MinInt64,
	} {
		s := jsonScanner{b: []byte(text)}
		if got, err := s.int64(); err != nil || got != want || s.end() != nil {
			t.Errorf("%s: %d %v", text, got, err)
		}
	}
}

// FuzzHandleList checks the decoder against encoding/json on arbitrary
// input: it never panics, and whatever it accepts encoding/json accepts too
// and reads the same way.
func FuzzHandleList(f *testing.F) {
	f.Add(`{"snapshots":[` + libraryHandle + `]}`)
	f.Add(`{"snapshots":[` + replaceMember("labels", `{"b":"1","a":"\u00e9"}`) + `]}`)
	f.Add(`{"snapshots":[],"x":[1,-2.5e3,{"y":null}]}`)
	f.Add(`{"snapshots":[` + replaceMember("path", `"\ud83d\ude00\n"`) + `]}`)
	f.Fuzz(func(t *testing.T, body string) {
		if _, err := decodeList(body); err != nil {
			return
		}
		if !json.Valid([]byte(body)) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		checkAgainstReference(t, body)
	})
}
