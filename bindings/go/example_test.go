package microsnap_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	m "github.com/microsnap/microsnap/bindings/go"
)

// exampleHomeDir makes a temporary home directory holding the test image.
func exampleHomeDir() (dir string, cleanup func()) {
	dir, err := os.MkdirTemp("", "microsnap-example-")
	if err != nil {
		log.Fatal(err)
	}
	out, err := exec.Command("python3", fixtureScript, filepath.Join(dir, "images"), testImage).CombinedOutput()
	if err != nil {
		log.Fatalf("building the image fixture: %v\n%s", err, out)
	}
	return dir, func() { os.RemoveAll(dir) }
}

// The reference page's "Typical flow", end to end on a temporary home:
// run a sandbox, stop it, snapshot it under a bare name, and boot a fresh
// sandbox from the snapshot.
func Example_typicalFlow() {
	dir, cleanup := exampleHomeDir()
	defer cleanup()
	old, hadOld := os.LookupEnv("MICROSNAP_HOME")
	os.Setenv("MICROSNAP_HOME", dir) // the package-level API's home
	defer func() {
		if hadOld {
			os.Setenv("MICROSNAP_HOME", old)
		} else {
			os.Unsetenv("MICROSNAP_HOME")
		}
	}()
	ctx := context.Background()

	sb, err := m.CreateSandbox(ctx, "baseline", m.WithImage("alpine:3.20"), m.WithUpperSize(64<<20))
	if err != nil {
		log.Fatal(err)
	}

	// 1. stop the sandbox; snapshots are disk-only
	_ = sb.Stop(ctx)
	_ = sb.Close()

	// 2. snapshot it under a bare name
	snap, err := m.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{
		Name:            "after-pip-install",
		RecordIntegrity: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("snapshot:", filepath.Base(snap.Path()), snap.ImageRef(), snap.Format(), snap.SizeBytes())

	// 3. boot a fresh sandbox from the snapshot
	sb2, err := m.CreateSandbox(ctx, "worker",
		m.WithSnapshot("after-pip-install"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer sb2.Close()
	info, err := sb2.Info(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("worker:", info.State(), *info.FromSnapshot() == snap.Digest())

	handles, err := m.Snapshot.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range handles {
		fmt.Println("indexed:", *h.Name(), h.ImageRef())
	}
	// Output:
	// snapshot: after-pip-install alpine:3.20 raw 67108864
	// worker: running true
	// indexed: after-pip-install alpine:3.20
}

// Working on an explicit home, without touching MICROSNAP_HOME.
func ExampleOpenHome() {
	dir, cleanup := exampleHomeDir()
	defer cleanup()
	ctx := context.Background()

	home, err := m.OpenHome(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer home.Close()

	sb, err := home.CreateSandbox(ctx, "baseline", m.WithImage("alpine:3.20"), m.WithUpperSize(16<<20))
	if err != nil {
		log.Fatal(err)
	}
	_ = sb.Stop(ctx)
	_ = sb.Close()

	h, err := home.GetSandbox(ctx, "baseline")
	if err != nil {
		log.Fatal(err)
	}
	snap, err := h.SnapshotTo(ctx, filepath.Join(dir, "srv", "baseline"))
	if err != nil {
		log.Fatal(err)
	}
	n, err := home.Snapshot.Reindex(ctx, filepath.Join(dir, "srv"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("indexed %d snapshots\n", n)
	fmt.Println(*snap.SourceSandbox(), h.State())
	// Output:
	// indexed 1 snapshots
	// baseline stopped
}

// Verify recomputes recorded integrity; errors.Is tells a changed upper
// from other failures.
func ExampleSnapshotArtifact_Verify() {
	dir, cleanup := exampleHomeDir()
	defer cleanup()
	ctx := context.Background()
	home, err := m.OpenHome(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer home.Close()
	sb, err := home.CreateSandbox(ctx, "baseline", m.WithImage("alpine:3.20"), m.WithUpperSize(16<<20))
	if err != nil {
		log.Fatal(err)
	}
	_ = sb.Stop(ctx)
	_ = sb.Close()
	snap, err := home.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "v", RecordIntegrity: true})
	if err != nil {
		log.Fatal(err)
	}

	report, err := snap.Verify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(report.Upper.Kind, report.Upper.Algorithm, report.Upper.Digest == snap.IntegrityDigest())

	os.WriteFile(filepath.Join(snap.Path(), snap.UpperFile()), []byte("tampered"), 0o644)
	_, err = snap.Verify(ctx)
	fmt.Println(errors.Is(err, m.ErrIntegrityMismatch))
	// Output:
	// verified microsnap-merkle-sha256-v1 true
	// true
}

// Progress reports arrive through the context; cancelling the context
// stops the operation, and the error matches both context.Canceled and
// ErrCancelled.
func ExampleContextWithProgress() {
	dir, cleanup := exampleHomeDir()
	defer cleanup()
	home, err := m.OpenHome(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer home.Close()
	sb, err := home.CreateSandbox(context.Background(), "baseline", m.WithImage("alpine:3.20"), m.WithUpperSize(16<<20))
	if err != nil {
		log.Fatal(err)
	}
	if f, err := os.OpenFile(sb.UpperPath(), os.O_WRONLY, 0); err == nil {
		f.WriteAt(make([]byte, 1<<20), 0) // some data to copy
		f.Close()
	}
	_ = sb.Stop(context.Background())
	_ = sb.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = m.ContextWithProgress(ctx, func(p m.Progress) {
		if p.Phase == "copy" && p.Done > 0 {
			cancel() // give up mid-copy
		}
	})
	_, err = home.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "x"})
	fmt.Println(errors.Is(err, context.Canceled), errors.Is(err, m.ErrCancelled))
	// Output:
	// true true
}

// Move a snapshot between homes: export it with its base image, import it
// elsewhere, and boot a sandbox from it there.
func Example_exportImport() {
	dir, cleanup := exampleHomeDir()
	defer cleanup()
	ctx := context.Background()
	src, err := m.OpenHome(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	sb, err := src.CreateSandbox(ctx, "baseline", m.WithImage("alpine:3.20"), m.WithUpperSize(16<<20))
	if err != nil {
		log.Fatal(err)
	}
	_ = sb.Stop(ctx)
	_ = sb.Close()
	snap, err := src.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "after-pip-install", RecordIntegrity: true})
	if err != nil {
		log.Fatal(err)
	}

	archive := filepath.Join(dir, "snap.tar.zst")
	if err := src.Snapshot.Export(ctx, "after-pip-install", archive, m.SnapshotExportOptions{WithParents: true, WithImage: true}); err != nil {
		log.Fatal(err)
	}

	elsewhere, err := m.OpenHome(filepath.Join(dir, "elsewhere"))
	if err != nil {
		log.Fatal(err)
	}
	defer elsewhere.Close()
	h, err := elsewhere.Snapshot.Import(ctx, archive, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Digest() == snap.Digest(), h.ImageRef())

	worker, err := elsewhere.CreateSandbox(ctx, "worker", m.WithSnapshot(h.Digest()))
	if err != nil {
		log.Fatal(err)
	}
	defer worker.Close()
	fmt.Println(worker.Name())
	// Output:
	// true alpine:3.20
	// worker
}
