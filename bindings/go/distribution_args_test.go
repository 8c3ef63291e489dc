package microsnap

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
)

// documentedArgs is the set of argument members docs/abi.md's function
// table gives for function.
func documentedArgs(t *testing.T, function string) []string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `"+function+"(") {
			continue
		}
		cells := strings.Split(line, "|")
		args := regexp.MustCompile(`^[^{]*\{([^}]*)\}`).FindStringSubmatch(strings.Trim(cells[2], " `"))
		if args == nil {
			t.Fatalf("%s: no {…} in the args cell %q", function, cells[2])
		}
		var names []string
		for _, m := range regexp.MustCompile(`"([a-z_]+)"`).FindAllStringSubmatch(args[1], -1) {
			names = append(names, m[1])
		}
		slices.Sort(names)
		return names
	}
	t.Fatalf("docs/abi.md has no row for %s", function)
	return nil
}

func memberNames(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

var everyRemoteOption = RemoteOptions{PlainHTTP: true, Username: "u", Password: "p", CAFile: "/ca.pem",
	DockerConfig: "/d.json", MaxInFlight: 2, TimeoutSeconds: 5}

// Every option reaches the library under the member name docs/abi.md gives
// (the library refuses a member it does not know, so a misspelt one would
// fail every call that sets it), and an option left at its zero value is
// not sent, so the library's default applies.
func TestPushPullArgumentsAreTheDocumentedMembers(t *testing.T) {
	push := pushArgs{Ref: "s", Reference: "oci:/l:v1", WithParents: true, Since: "p", remoteArgs: everyRemoteOption.args()}
	if got, want := memberNames(t, push), documentedArgs(t, "msnap_snapshot_push"); !slices.Equal(got, want) {
		t.Errorf("push sends %v, docs/abi.md documents %v", got, want)
	}
	pull := pullArgs{Reference: "oci:/l:v1", Dest: "/d", Name: "n", WithParents: true, remoteArgs: everyRemoteOption.args()}
	if got, want := memberNames(t, pull), documentedArgs(t, "msnap_snapshot_pull"); !slices.Equal(got, want) {
		t.Errorf("pull sends %v, docs/abi.md documents %v", got, want)
	}
	if got := memberNames(t, pushArgs{Ref: "s", Reference: "r"}); !slices.Equal(got, []string{"ref", "reference"}) {
		t.Errorf("a push with no options sends %v", got)
	}
	if got := memberNames(t, pullArgs{Reference: "r"}); !slices.Equal(got, []string{"reference"}) {
		t.Errorf("a pull with no options sends %v", got)
	}
	b, _ := json.Marshal(pushArgs{Ref: "s", Reference: "r", remoteArgs: everyRemoteOption.args()})
	for _, want := range []string{`"plain_http":true`, `"username":"u"`, `"password":"p"`, `"ca_file":"/ca.pem"`,
		`"docker_config":"/d.json"`, `"max_in_flight":2`, `"timeout_seconds":5`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("push arguments %s lack %s", b, want)
		}
	}
}
