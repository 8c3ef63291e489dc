package microsnap_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	m "github.com/microsnap/microsnap/bindings/go"
)

// The two registry codes from real calls against loopback servers: one
// that refuses every credential (unauthorized), and a port nobody listens
// on (registry_error). The password never shows in the error.
func TestRegistryErrorsFromRealCalls(t *testing.T) {
	ctx := context.Background()
	h := newHome(t)
	stoppedSandbox(t, h, "base", 1)
	must(h.Snapshot.Create(ctx, "base", m.SnapshotCreateOptions{Name: "s"}))(t)
	const password = "hunter2-secret"

	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	}))
	defer refusing.Close()
	host := strings.TrimPrefix(refusing.URL, "http://")
	creds := m.RemoteOptions{PlainHTTP: true, Username: "ci", Password: password, TimeoutSeconds: 5}
	_, err := h.Snapshot.Push(ctx, "s", host+"/sandboxes/s:v1", m.SnapshotPushOptions{RemoteOptions: creds})
	checkRegistryError(t, "push to a registry that refuses", err, m.ErrUnauthorized, password)
	_, err = h.Snapshot.Pull(ctx, host+"/sandboxes/s:v1", "", m.SnapshotPullOptions{RemoteOptions: creds})
	checkRegistryError(t, "pull from a registry that refuses", err, m.ErrUnauthorized, password)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	_, err = h.Snapshot.Pull(ctx, closed+"/sandboxes/s:v1", "", m.SnapshotPullOptions{RemoteOptions: creds})
	checkRegistryError(t, "pull from a closed port", err, m.ErrRegistryError, password)
	_, err = h.Snapshot.Push(ctx, "s", closed+"/sandboxes/s:v1", m.SnapshotPushOptions{RemoteOptions: creds})
	checkRegistryError(t, "push to a closed port", err, m.ErrRegistryError, password)
	if list := must(h.Snapshot.List(ctx))(t); len(list) != 1 {
		t.Errorf("%d snapshots after failed pulls, want 1", len(list))
	}
}

func checkRegistryError(t *testing.T, what string, err error, want *m.Error, secret string) {
	t.Helper()
	var me *m.Error
	if !errors.Is(err, want) || !errors.As(err, &me) {
		t.Errorf("%s: got %v, want %v", what, err, want.Code)
		return
	}
	for _, other := range allSentinels {
		if other != want && errors.Is(err, other) {
			t.Errorf("%s: %v also matches %v", what, err, other.Code)
		}
	}
	if strings.Contains(me.Error(), secret) || strings.Contains(me.Message, secret) {
		t.Errorf("%s: the password is in the error: %v", what, err)
	}
}
