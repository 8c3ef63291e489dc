package microsnap

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
)

func TestDecodeErrorEveryCode(t *testing.T) {
	for code, name := range codeNames {
		if code == CodeOK {
			continue
		}
		body := []byte(`{"code":"` + name + `","message":"m"}`)
		err := decodeError(nil, code, body)
		var e *Error
		if !errors.As(err, &e) || e.Code != code || e.Name != name || e.Message != "m" {
			t.Errorf("%s: %#v", name, err)
		}
		if !errors.Is(err, sentinel(code)) {
			t.Errorf("%s does not match its sentinel", name)
		}
	}
	// An internal error (only a library bug produces one) keeps its details.
	err := decodeError(nil, CodeInternal, []byte(`{"code":"internal","message":"panic: boom"}`))
	if !errors.Is(err, ErrInternal) || err.Error() != "microsnap: internal: panic: boom" {
		t.Errorf("internal: %v", err)
	}
	// A cancel while the context is done unwraps to the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = decodeError(ctx, CodeCancelled, []byte(`{"code":"cancelled","message":"cancelled"}`))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Errorf("cancelled: %v", err)
	}
	// The status is authoritative even if the object is unreadable.
	err = decodeError(nil, CodeIO, []byte(`not json`))
	if !errors.Is(err, ErrIO) {
		t.Errorf("unreadable body: %v", err)
	}
	// Details of an unexpected type do not hide the message.
	err = decodeError(nil, CodeHasChildren, []byte(`{"code":"has_children","message":"m","children":"many"}`))
	if e, ok := err.(*Error); !ok || e.Message != "m" {
		t.Errorf("odd details hid the message: %v", err)
	}
}

func TestABIVersionCheck(t *testing.T) {
	if ABIVersion() != SupportedABIVersion || abiError != nil {
		t.Fatalf("loaded ABI %d, package supports %d: %v", ABIVersion(), SupportedABIVersion, abiError)
	}
	if err := checkABI(SupportedABIVersion + 1); !errors.Is(err, ErrIncompatibleLibrary) {
		t.Errorf("checkABI(newer) = %v", err)
	}
	if LibraryVersion() == "" {
		t.Error("LibraryVersion() is empty")
	}
}

// With the progress trampoline not looking at the context, only the
// native cancel token (triggered by runCancellable's goroutine) can stop
// the call: this proves that path on its own.
func TestCancelTokenPathAlone(t *testing.T) {
	monitorChecksContext.Store(false)
	defer monitorChecksContext.Store(true)
	dir := t.TempDir()
	h, err := OpenHome(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	if out, err := exec.Command("python3", "../../tests/fixtures/make_oci_image.py", dir+"/images", "alpine:3.20").CombinedOutput(); err != nil {
		t.Fatalf("fixture: %v %s", err, out)
	}
	bg := context.Background()
	sb, err := h.CreateSandbox(bg, "s", WithImage("alpine:3.20"), WithUpperSize(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(sb.UpperPath(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 32 << 20} {
		if _, err := f.WriteAt(make([]byte, 1<<20), off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("data"), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	_ = sb.Stop(bg)
	_ = sb.Close()

	ctx, cancel := context.WithCancel(bg)
	ctx = ContextWithProgress(ctx, func(p Progress) {
		if p.Done > 0 {
			cancel()
			time.Sleep(50 * time.Millisecond) // let the trigger goroutine fire
		}
	})
	_, err = h.Snapshot.Create(ctx, "s", SnapshotCreateOptions{Name: "x", RecordIntegrity: true})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Fatalf("got %v, want cancelled through the token", err)
	}
}

// Arguments are encoded strictly too: a path that is not UTF-8 is an
// invalid_argument error, not a different path with U+FFFD in it.
func TestArgumentsMustBeUTF8(t *testing.T) {
	_, err := cArgs(map[string]string{"ref": "/a\xffb"})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalidArgument {
		t.Errorf("got %v, want invalid_argument", err)
	}
	// Unset options stay out of the object (omitzero), as before.
	b, err := json.Marshal(snapshotCreateArgs{SourceSandbox: "s", Name: "n"})
	if err != nil || string(b) != `{"source_sandbox":"s","name":"n"}` {
		t.Errorf("create args %s %v", b, err)
	}
	b, err = json.Marshal(exportArgs{Ref: "r", Out: "o"})
	if err != nil || string(b) != `{"ref":"r","out":"o"}` {
		t.Errorf("export args %s %v", b, err)
	}
}
