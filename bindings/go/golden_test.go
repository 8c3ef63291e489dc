package microsnap

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// goldenDir holds one file per result the library returns, written by the
// Rust tests (tests/ffi/golden.rs): {"out": <result or error object>, "status": N}.
const goldenDir = "../../tests/golden"

// goldenTypes names, for each golden file, the type this package decodes
// that result into. A golden file missing here fails the test: a result the
// Rust side added needs its Go type. Results the binding does not keep
// ({} of a remove) decode into struct{}, which still refuses any member.
var goldenTypes = map[string]func() any{
	"context_open":                  func() any { return new(homeOpened) },
	"error_has_children":            func() any { return new(errorObject) },
	"error_image_prune_unknown_pin": func() any { return new(errorObject) },
	"home_usage":                    func() any { return new(Usage) },
	"image_prune":                   func() any { return new(ImagePruneReport) },
	"image_prune_dry_run":           func() any { return new(ImagePruneReport) },
	"error_integrity_mismatch":      func() any { return new(errorObject) },
	"error_invalid_archive":         func() any { return new(errorObject) },
	"error_snapshot_not_found":      func() any { return new(errorObject) },
	"error_push_bad_reference":      func() any { return new(errorObject) },
	"error_unknown_field":           func() any { return new(errorObject) },
	"image_list":                    func() any { return new(imageListResult) },
	"sandbox_create":                func() any { return new(sandboxJSON) },
	"sandbox_create_from_snapshot":  func() any { return new(sandboxJSON) },
	"sandbox_get":                   func() any { return new(sandboxJSON) },
	"sandbox_info":                  func() any { return new(sandboxJSON) },
	"sandbox_list":                  func() any { return new(sandboxListResult) },
	"sandbox_remove":                func() any { return new(struct{}) },
	"sandbox_stop":                  func() any { return new(sandboxJSON) },
	"sandbox_stop_fork":             func() any { return new(sandboxJSON) },
	"snapshot_create":               func() any { return new(artifactJSON) },
	"snapshot_create_child":         func() any { return new(artifactJSON) },
	"snapshot_export":               func() any { return new(SnapshotExportReport) },
	"snapshot_get":                  func() any { return new(handleJSON) },
	"snapshot_import":               func() any { return new(importResult) },
	"snapshot_list":                 func() any { return new(handleListResult) },
	"snapshot_list_dir":             func() any { return new(listDirResult) },
	"snapshot_open":                 func() any { return new(artifactJSON) },
	"snapshot_prune":                func() any { return new(SnapshotPruneReport) },
	"snapshot_pull":                 func() any { return new(pullResult) },
	"snapshot_push":                 func() any { return new(SnapshotPushReport) },
	"snapshot_reindex":              func() any { return new(reindexResult) },
	"snapshot_remove":               func() any { return new(struct{}) },
	"snapshot_verify":               func() any { return new(SnapshotVerifyReport) },
}

// strict is the golden files' reading: the runtime's (decodeResult) plus
// unknown members rejected, so that a member the library writes and this
// package has no field for is an error.
var strict = json.RejectUnknownMembers(true)

// Every golden result decodes strictly into this package's type for it;
// every field of those types appears in some golden file (a member renamed
// or dropped in Rust fails too); null appears only where the Go field is a
// pointer; and each error file's status is the code its object names.
func TestGoldenResultsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	cov := newCoverage()
	found := map[string]bool{}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		found[name] = true
		newResult, ok := goldenTypes[name]
		if !ok {
			t.Errorf("%s: no Go type for this result; add the type the binding decodes it into to goldenTypes", path)
			continue
		}
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var file struct {
			Out    jsontext.Value `json:"out"`
			Status int32          `json:"status"`
		}
		if err := json.Unmarshal(text, &file, strict); err != nil {
			t.Errorf("%s: not a golden file: %v", path, err)
			continue
		}
		result := newResult()
		if err := json.Unmarshal(file.Out, result, strict); err != nil {
			t.Errorf("%s: does not decode strictly into %T: %v", path, result, err)
			continue
		}
		if err := cov.walk(reflect.TypeOf(result).Elem(), file.Out, name); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if e, isError := result.(*errorObject); isError {
			if got := Code(file.Status).String(); got != e.Code {
				t.Errorf("%s: status %d is %s in this package, the object says %q", path, file.Status, got, e.Code)
			}
		} else if file.Status != 0 {
			t.Errorf("%s: a result with status %d", path, file.Status)
		}
	}
	for name := range goldenTypes {
		if !found[name] {
			t.Errorf("goldenTypes names %s, but %s has no %s.json", name, goldenDir, name)
		}
	}
	for _, missing := range cov.unseen() {
		t.Errorf("%s never appears in a golden file: the library does not write it (renamed or removed?)", missing)
	}
}

// The test above must fail on what it is there to catch.
func TestGoldenCheckCatchesDrift(t *testing.T) {
	type withNewField struct {
		artifactJSON
		Encrypted bool `json:"encrypted"`
	}
	artifact := `{"path":"/p","digest":"d","artifact_format":"msb-v0.6.3","schema":1,"format":"raw","fstype":"ext4","image_ref":"i",` +
		`"image_manifest_digest":"m","parent":null,"created_at":"t","labels":{},"upper_file":"u",` +
		`"size_bytes":1,"integrity":null,"source_sandbox":null}`
	// A member added in Rust and forgotten in Go.
	added := strings.Replace(artifact, `"path":"/p"`, `"path":"/p","encrypted":true`, 1)
	if err := json.Unmarshal([]byte(added), new(artifactJSON), strict); err == nil {
		t.Error("an unknown member decoded strictly")
	}
	if err := json.Unmarshal([]byte(added), new(artifactJSON)); err != nil {
		t.Errorf("the runtime reading refused an unknown member: %v", err)
	}
	// A member Go expects that Rust no longer writes.
	cov := newCoverage()
	if err := cov.walk(reflect.TypeOf(withNewField{}), jsontext.Value(artifact), "t"); err != nil {
		t.Fatal(err)
	}
	if unseen := cov.unseen(); len(unseen) != 1 || !strings.HasSuffix(unseen[0], ".encrypted") {
		t.Errorf("unseen = %v, want the encrypted field alone", unseen)
	}
	// Null where the Go field is not a pointer.
	nulled := strings.Replace(artifact, `"fstype":"ext4"`, `"fstype":null`, 1)
	if err := newCoverage().walk(reflect.TypeOf(artifactJSON{}), jsontext.Value(nulled), "t"); err == nil {
		t.Error("null for a string field passed")
	}
}

// coverage records which JSON member of which Go struct type the golden
// files hold, to find fields no file has.
type coverage struct {
	fields map[reflect.Type][]string        // every struct type walked: its member names
	seen   map[reflect.Type]map[string]bool // the members some file had
}

func newCoverage() *coverage {
	return &coverage{fields: map[reflect.Type][]string{}, seen: map[reflect.Type]map[string]bool{}}
}

// walk checks value (JSON text) against t, recording the members present.
func (c *coverage) walk(t reflect.Type, value jsontext.Value, at string) error {
	nullable := t.Kind() == reflect.Pointer || t.Implements(nullableType)
	if string(value) == "null" {
		if !nullable {
			return fmt.Errorf("%s: null for %s, which is not nullable (only a pointer or an optional is)", at, t)
		}
		return nil
	}
	if t.Kind() != reflect.Pointer && nullable {
		return nil // an optional's value: the strict decode checked its type
	}
	switch t.Kind() {
	case reflect.Pointer:
		return c.walk(t.Elem(), value, at)
	case reflect.Slice:
		var elems []jsontext.Value
		if err := json.Unmarshal(value, &elems); err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
		for i, e := range elems {
			if err := c.walk(t.Elem(), e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		var members map[string]jsontext.Value
		if err := json.Unmarshal(value, &members); err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
		for k, v := range members {
			if err := c.walk(t.Elem(), v, at+"."+k); err != nil {
				return err
			}
		}
	case reflect.Struct:
		var members map[string]jsontext.Value
		if err := json.Unmarshal(value, &members); err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
		fields := jsonFields(t)
		if _, ok := c.fields[t]; !ok {
			c.seen[t] = map[string]bool{}
			for name := range fields {
				c.fields[t] = append(c.fields[t], name)
			}
		}
		for name, ft := range fields {
			v, ok := members[name]
			if !ok {
				continue
			}
			c.seen[t][name] = true
			if err := c.walk(ft, v, at+"."+name); err != nil {
				return err
			}
		}
	}
	return nil
}

// nullableType is implemented by optional, the handle's nullable members.
var nullableType = reflect.TypeFor[interface{ nullable() }]()

// unseen lists, as "type.member", the fields that no walked value had.
func (c *coverage) unseen() []string {
	var out []string
	for t, names := range c.fields {
		for _, name := range names {
			if !c.seen[t][name] {
				out = append(out, t.String()+"."+name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// jsonFields maps the JSON member names of struct type t to their field
// types, with embedded structs inlined and shadowed by the outer fields, as
// the json package reads them.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	var embedded []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			embedded = append(embedded, f.Type)
		case f.IsExported():
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
	}
	for _, e := range embedded {
		for name, ft := range jsonFields(e) {
			if _, shadowed := fields[name]; !shadowed {
				fields[name] = ft
			}
		}
	}
	return fields
}
