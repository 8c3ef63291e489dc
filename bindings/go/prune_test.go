package microsnap_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	m "github.com/microsnap/microsnap/bindings/go"
)

// prunedNames and keptReasons read a report by bare name.
func prunedNames(r *m.SnapshotPruneReport) []string {
	var names []string
	for _, s := range r.Removed {
		names = append(names, *s.Name)
	}
	return names
}

func keptReasons(r *m.SnapshotPruneReport) map[string][]string {
	kept := map[string][]string{}
	for _, s := range r.Kept {
		kept[*s.Name] = s.Reasons
	}
	return kept
}

// A chain base -> child (child made through sandbox "worker", still there)
// and three more snapshots of "baseline": s1, s2, s3.
func pruneHome(t *testing.T) *m.Home {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 3)
	must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: "base", Labels: map[string]string{"ci": "1"}}))(t)
	sb := must(h.CreateSandbox(ctx, "worker", m.WithSnapshot("base")))(t)
	_ = sb.Stop(ctx)
	_ = sb.Close()
	must(h.Snapshot.Create(ctx, "worker", m.SnapshotCreateOptions{Name: "child"}))(t)
	for _, n := range []string{"s1", "s2", "s3"} {
		time.Sleep(5 * time.Millisecond)
		must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: n, Labels: map[string]string{"ci": "1"}}))(t)
	}
	return h
}

func TestSnapshotPruneKeepLastLineageAndDryRun(t *testing.T) {
	ctx := context.Background()
	h := pruneHome(t)
	opts := m.SnapshotPruneOptions{KeepLast: 1, DryRun: true}
	dry := must(h.Snapshot.Prune(ctx, opts))(t)
	if !dry.DryRun {
		t.Error("DryRun false in a dry run's report")
	}
	if got := prunedNames(dry); !reflect.DeepEqual(got, []string{"s1", "s2"}) {
		t.Errorf("dry run would remove %v, want [s1 s2]", got)
	}
	want := map[string][]string{
		"s3":    {"keep_last"},
		"child": {"keep_last"},
		"base":  {"has_children:child", "used_by_sandbox:worker"},
	}
	if got := keptReasons(dry); !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if len(must(h.Snapshot.List(ctx))(t)) != 5 {
		t.Fatal("a dry run removed something")
	}

	opts.DryRun = false
	r := must(h.Snapshot.Prune(ctx, opts))(t)
	if r.DryRun || !reflect.DeepEqual(prunedNames(r), prunedNames(dry)) {
		t.Errorf("the real run removed %v, the dry run said %v", prunedNames(r), prunedNames(dry))
	}
	var sum uint64
	for _, s := range r.Removed {
		if s.AllocatedBytes == 0 || s.AllocatedBytes >= smallUpper {
			t.Errorf("%s: %d allocated bytes for a sparse %d-byte upper", *s.Name, s.AllocatedBytes, smallUpper)
		}
		if s.Group == nil || *s.Group != "baseline" || !strings.HasPrefix(s.Digest, "sha256:") {
			t.Errorf("removed entry %+v", s)
		}
		if _, err := os.Stat(s.Path); !os.IsNotExist(err) {
			t.Errorf("%s still on disk: %v", s.Path, err)
		}
		sum += s.AllocatedBytes
	}
	if r.BytesFreed != sum {
		t.Errorf("BytesFreed %d, the entries sum to %d", r.BytesFreed, sum)
	}
	names := []string{}
	for _, hd := range must(h.Snapshot.List(ctx))(t) {
		names = append(names, *hd.Name())
	}
	if !reflect.DeepEqual(names, []string{"s3", "child", "base"}) {
		t.Errorf("left %v", names)
	}
}

func TestSnapshotPruneLabelsOlderThanForceAndProgress(t *testing.T) {
	ctx := context.Background()
	h := pruneHome(t)
	if err := h.RemoveSandbox(ctx, "worker"); err != nil {
		t.Fatal(err)
	}
	// Nothing is an hour old yet.
	r := must(h.Snapshot.Prune(ctx, m.SnapshotPruneOptions{OlderThan: "1h"}))(t)
	if len(r.Removed) != 0 || len(r.Kept) != 5 {
		t.Fatalf("older than 1h removed %v", prunedNames(r))
	}
	// Everything older than 0s and labelled ci=1 goes; child (unlabelled)
	// keeps base unless forced.
	opts := m.SnapshotPruneOptions{OlderThan: "0s", Labels: map[string]string{"ci": "1"}}
	r = must(h.Snapshot.Prune(ctx, opts))(t)
	if got := keptReasons(r); !reflect.DeepEqual(got, map[string][]string{
		"child": {"not_selected"}, "base": {"has_children:child"},
	}) {
		t.Errorf("kept %v", got)
	}
	var phases []string
	opts.Force = true
	r = must(h.Snapshot.Prune(m.ContextWithProgress(ctx, func(p m.Progress) {
		phases = append(phases, p.Phase)
	}), opts))(t)
	if !reflect.DeepEqual(prunedNames(r), []string{"base"}) {
		t.Errorf("forced prune removed %v", prunedNames(r))
	}
	if len(phases) == 0 || phases[0] != "prune" {
		t.Errorf("progress phases %v, want prune", phases)
	}
}

func TestSnapshotPruneRefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	h := pruneHome(t)
	for _, c := range []struct {
		opts m.SnapshotPruneOptions
		want string
	}{
		{m.SnapshotPruneOptions{}, "give a retention rule"},
		{m.SnapshotPruneOptions{Labels: map[string]string{"ci": "1"}}, "labels only choose"},
		{m.SnapshotPruneOptions{OlderThan: "7"}, "older_than: invalid duration \"7\""},
		{m.SnapshotPruneOptions{KeepWithin: "1y"}, "keep_within: invalid duration"},
		{m.SnapshotPruneOptions{KeepLast: -1}, "keep_last"},
		{m.SnapshotPruneOptions{KeepLast: 1, GroupBy: "host"}, "label:KEY"},
	} {
		_, err := h.Snapshot.Prune(ctx, c.opts)
		if !errors.Is(err, m.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want invalid_argument with %q", c.opts, err, c.want)
		}
	}
	if n := len(must(h.Snapshot.List(ctx))(t)); n != 5 {
		t.Errorf("refused prunes left %d snapshots, want 5", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Snapshot.Prune(cancelled, m.SnapshotPruneOptions{KeepLast: 1}); !errors.Is(err, m.ErrCancelled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}

// GroupBy "label:KEY" applies KeepLast to each value of the label.
func TestSnapshotPruneGroupByLabel(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "baseline", 4)
	for _, c := range [][2]string{{"x1", "x"}, {"y1", "y"}, {"x2", "x"}, {"y2", "y"}} {
		time.Sleep(5 * time.Millisecond)
		must(h.Snapshot.Create(ctx, "baseline", m.SnapshotCreateOptions{Name: c[0], Labels: map[string]string{"tier": c[1]}}))(t)
	}
	r := must(h.Snapshot.Prune(ctx, m.SnapshotPruneOptions{KeepLast: 1, GroupBy: "label:tier"}))(t)
	if got := prunedNames(r); !reflect.DeepEqual(got, []string{"x1", "y1"}) {
		t.Errorf("removed %v, want [x1 y1]", got)
	}
	for _, s := range r.Removed {
		if s.Group == nil || *s.Group != (*s.Name)[:1] {
			t.Errorf("%s in group %v", *s.Name, s.Group)
		}
	}
}
