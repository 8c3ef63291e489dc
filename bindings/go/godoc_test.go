package microsnap

import (
	"bytes"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The snapshot functions are methods of an unexported type (the
// microsandbox SDK spells its API Snapshot.Create), so go doc does not list
// them; the doc comment of the Snapshot variable does, signature and
// documentation of each. This test keeps that list equal to the methods.
func TestSnapshotDocListsEveryMethod(t *testing.T) {
	pkg := parsePackage(t)
	var factory *doc.Type
	for _, typ := range pkg.Types {
		if typ.Name == "snapshotFactory" {
			factory = typ
		}
	}
	if factory == nil {
		t.Fatal("no snapshotFactory type")
	}
	var snapshotDoc string
	for _, v := range factory.Vars {
		if len(v.Names) == 1 && v.Names[0] == "Snapshot" {
			snapshotDoc = v.Doc
		}
	}
	if snapshotDoc == "" {
		t.Fatal("the Snapshot variable has no doc comment")
	}

	var want strings.Builder
	methods := 0
	for _, fn := range factory.Methods {
		if !ast.IsExported(fn.Name) {
			continue
		}
		methods++
		decl := *fn.Decl
		decl.Doc, decl.Body = nil, nil
		decl.Recv = &ast.FieldList{List: []*ast.Field{{Type: ast.NewIdent("snapshotFactory")}}}
		var sig bytes.Buffer
		if err := printer.Fprint(&sig, token.NewFileSet(), &decl); err != nil {
			t.Fatal(err)
		}
		want.WriteString("\n\t" + sig.String() + "\n\n" + fn.Doc)
	}
	if methods < 9 {
		t.Fatalf("found %d exported methods of snapshotFactory, want Create, Open, Get, List, ListDir, Remove, Reindex, Export, Import", methods)
	}
	if !strings.Contains(words(snapshotDoc), words(want.String())) {
		t.Errorf("the Snapshot variable's doc comment does not list the methods as they are; end it with:\n%s",
			"//"+strings.ReplaceAll(strings.TrimRight(want.String(), "\n"), "\n", "\n// "))
	}
}

// The error codes show their values in go doc: literals, not C.MSNAP_*.
func TestGoDocShowsCodeValues(t *testing.T) {
	pkg := parsePackage(t)
	consts := pkg.Consts
	for _, typ := range pkg.Types {
		consts = append(consts, typ.Consts...)
	}
	codes := 0
	for _, c := range consts {
		var text bytes.Buffer
		if err := printer.Fprint(&text, token.NewFileSet(), c.Decl); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text.String(), "C.") {
			t.Errorf("go doc shows a cgo name:\n%s", text.String())
		}
		codes += len(codeValue.FindAllString(text.String(), -1))
	}
	if codes != len(codeNames) {
		t.Errorf("go doc shows %d Code constants with a value, the package has %d codes", codes, len(codeNames))
	}
}

var codeValue = regexp.MustCompile(`\sCode\s+=\s+[0-9]+`)

// parsePackage reads the package's documentation as go doc does.
func parsePackage(t *testing.T) *doc.Package {
	t.Helper()
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/microsnap/microsnap/bindings/go", doc.AllDecls)
	if err != nil {
		t.Fatal(err)
	}
	return pkg
}

// words is text with every run of white space made one space, so that
// reflowing a comment does not matter.
func words(text string) string { return strings.Join(strings.Fields(text), " ") }
