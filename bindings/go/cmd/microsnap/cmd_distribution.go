package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	m "github.com/microsnap/microsnap/bindings/go"
	"github.com/spf13/cobra"
)

// referenceHelp says what a push or pull reference may be.
const referenceHelp = `REF is HOST[:PORT]/REPO[:TAG|@sha256:...] (a registry, HTTPS unless
--plain-http; the first component must be a host: there is no Docker Hub
default), oci:DIR[:TAG] (an OCI image layout directory) or
oci-archive:FILE[:TAG] (a tar of one). No tag means "latest".

Credentials come from --username with --password-stdin (the password is read
from stdin, never from a flag), else docker's config.json (--docker-config F,
else $DOCKER_CONFIG/config.json, else ~/.docker/config.json), else none.
Refused credentials exit 7 (unauthorized); a registry that is down, slow or
answers nonsense exits 8 (registry_error).`

// remoteFlags are the flags push and pull share: how to reach a registry.
type remoteFlags struct {
	opts          m.RemoteOptions
	passwordStdin bool
	jobs          *intFlag
	timeout       *intFlag
}

func addRemoteFlags(c *cobra.Command) *remoteFlags {
	r := &remoteFlags{
		jobs:    &intFlag{name: "jobs", min: 1, max: 64, zeroIsDefault: true, what: "requests in flight"},
		timeout: &intFlag{name: "timeout", min: 1, max: 24 * 3600, zeroIsDefault: true, what: "seconds"},
	}
	f := c.Flags()
	f.BoolVar(&r.opts.PlainHTTP, "plain-http", false, "speak plain HTTP to the registry instead of HTTPS")
	f.StringVar(&r.opts.CAFile, "ca-file", "", "verify the registry's TLS certificate against the CA certificates in the PEM file `F`")
	f.StringVar(&r.opts.Username, "username", "", "log in as `U` (with --password-stdin)")
	f.BoolVar(&r.passwordStdin, "password-stdin", false, "read the password for --username from stdin")
	f.StringVar(&r.opts.DockerConfig, "docker-config", "", "take credentials from docker's config.json `F`")
	f.Var(r.jobs, "jobs", "requests in flight at once, 1 to 64 (default 4)")
	f.Var(r.timeout, "timeout", "fail a request that makes no progress for N seconds (default 30)")
	return r
}

// maxPasswordBytes bounds what --password-stdin reads: a password or token,
// not a stream.
const maxPasswordBytes = 64 << 10

// resolve checks the credential flags and reads the password.
func (r *remoteFlags) resolve(stdin io.Reader) (m.RemoteOptions, error) {
	o := r.opts
	o.MaxInFlight, o.TimeoutSeconds = r.jobs.value, r.timeout.value
	switch {
	case o.Username != "" && !r.passwordStdin:
		return o, usageError("--username needs --password-stdin (a password is never taken from a flag)")
	case r.passwordStdin && o.Username == "":
		return o, usageError("--password-stdin needs --username")
	case !r.passwordStdin:
		return o, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, maxPasswordBytes+1))
	if err != nil {
		return o, usageErrorf("--password-stdin: read stdin: %v", err)
	}
	if len(b) > maxPasswordBytes {
		return o, usageErrorf("--password-stdin: more than %d bytes on stdin", maxPasswordBytes)
	}
	// As docker login --password-stdin: the trailing line end is not part
	// of the password.
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if len(b) == 0 {
		return o, usageError("--password-stdin: stdin is empty")
	}
	o.Password = string(b)
	return o, nil
}

func snapshotPush(e *env) *cobra.Command {
	var o m.SnapshotPushOptions
	c := &cobra.Command{
		Use:   "push NAME|PATH REF",
		Short: "Send a snapshot to a registry or OCI layout",
		Long: `Send a snapshot to REF: its disk as 64 KiB chunks in packs, only the chunks REF
does not hold already (a parent pushed before shares its chunks), then the
manifest, last, so an interrupted push leaves no manifest that names a
missing blob and a re-run sends nothing twice.

--with-parents pushes the whole chain, each ancestor tagged
sha256-<hex of its digest>. --since PARENT (oci-archive: only) writes only
what the local snapshot PARENT does not hold; pulling that file needs
PARENT locally.

` + referenceHelp + "\n\n" + refHelp,
		Args: args(2, 2),
	}
	c.Flags().BoolVar(&o.WithParents, "with-parents", false, "push the snapshot's parent chain too")
	c.Flags().StringVar(&o.Since, "since", "", "oci-archive: only: leave out what the local snapshot `PARENT` holds")
	remote := addRemoteFlags(c)
	c.RunE = func(c *cobra.Command, pos []string) error {
		var err error
		if o.RemoteOptions, err = remote.resolve(e.stdin); err != nil {
			return err
		}
		home, err := e.openHome()
		if err != nil {
			return err
		}
		r, err := home.Snapshot.Push(e.withProgress(e.ctx), pos[0], pos[1], o)
		e.done()
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, r)
		}
		fmt.Fprintf(e.stdout, "pushed %s to %s\n  manifest %s\n  digest   %s\n", pos[0], r.Reference, r.ManifestDigest, r.SnapshotDigest)
		fmt.Fprintf(e.stdout, "  chunks   %d: %d uploaded, %d already there (%s)\n  sent     %s\n",
			r.ChunksTotal, r.ChunksUploaded, r.ChunksReused, humanBytes(r.BytesReused), humanBytes(r.BytesUploaded))
		if len(r.Snapshots) > 1 {
			fmt.Fprintf(e.stdout, "  chain    %d snapshots, root first:\n", len(r.Snapshots))
			for _, s := range r.Snapshots {
				fmt.Fprintf(e.stdout, "    %s %s\n", s.SnapshotDigest, strings.Join(s.Tags, ","))
			}
		}
		return nil
	}
	return c
}

// pullView is what `snapshot pull --json` prints: the library's result,
// the head as the other commands print a handle.
type pullView struct {
	Head   handleView            `json:"head"`
	Report *m.SnapshotPullReport `json:"report"`
}

func snapshotPull(e *env) *cobra.Command {
	var dest string
	var o m.SnapshotPullOptions
	c := &cobra.Command{
		Use:   "pull REF",
		Short: "Fetch a snapshot from a registry or OCI layout",
		Long: `Fetch a snapshot from REF into DIR (default: the home's snapshots directory),
named after REF's tag (or --name), checking every chunk and the snapshot's
digest and recorded integrity, and index it. Chunks a local snapshot
already has are copied, not downloaded. Pulling a snapshot that is already
there does nothing and says so; a name a different snapshot has is refused
(exit 4). A failed or interrupted pull leaves nothing behind.

--with-parents pulls the chain too and records the lineage; without it the
head alone is complete.

` + referenceHelp,
		Args: args(1, 1),
	}
	c.Flags().StringVar(&dest, "dest", "", "pull into `DIR` (default: the home's snapshots directory)")
	c.Flags().StringVar(&o.Name, "name", "", "install the snapshot as DIR/`NAME` instead of the tag's name")
	c.Flags().BoolVar(&o.WithParents, "with-parents", false, "pull the snapshot's parent chain too")
	remote := addRemoteFlags(c)
	c.RunE = func(c *cobra.Command, pos []string) error {
		if c.Flags().Changed("name") {
			if err := bareName(o.Name); err != nil {
				return err
			}
		}
		var err error
		if o.RemoteOptions, err = remote.resolve(e.stdin); err != nil {
			return err
		}
		home, err := e.openHome()
		if err != nil {
			return err
		}
		h, r, err := home.Snapshot.PullWithReport(e.withProgress(e.ctx), pos[0], dest, o)
		e.done()
		if err != nil {
			return err
		}
		if e.json {
			return printJSON(e.stdout, pullView{viewHandle(h), r})
		}
		if r.AlreadyPresent {
			fmt.Fprintf(e.stdout, "%s is already at %s: nothing pulled\n  digest %s\n", pos[0], h.Path(), h.Digest())
			return nil
		}
		fmt.Fprintf(e.stdout, "pulled %s as %s\n  digest   %s\n", pos[0], h.Path(), h.Digest())
		fmt.Fprintf(e.stdout, "  chunks   %d: %d downloaded, %d copied locally (%s)\n  received %s\n",
			r.ChunksTotal, r.ChunksDownloaded, r.ChunksReused, humanBytes(r.BytesCopiedLocally), humanBytes(r.BytesDownloaded))
		return nil
	}
	return c
}

// bareName refuses a --name that is not a bare snapshot name.
func bareName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/:") || strings.HasPrefix(name, ".") {
		return usageErrorf("--name %q is not a bare snapshot name", name)
	}
	return nil
}

// stdinOf is where --password-stdin reads: the process's stdin.
func stdinOf() io.Reader { return os.Stdin }
