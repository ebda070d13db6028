package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/agentconfig"
)

// $ENV_YML is read under the root and beats /app/env.yml; later sources are reported as
// not reached.
func TestEnvFileWins(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "run/active-env.yml"), doc("env-file"))
	writeFile(t, filepath.Join(root, "app/env.yml"), doc("local"))
	opt := options(root, agentconfig.AllSources()...)
	opt.EnvYML = "/run/active-env.yml"
	res := mustFind(t, opt, "env-file", filepath.Join(root, "run/active-env.yml"), doc("env-file"))
	if len(res.Reports) != 7 {
		t.Fatalf("want a report per allowed source:\n%s", reports(res))
	}
	for _, r := range res.Reports[1:] {
		if r.Status != Skipped || r.Reason != "not reached" {
			t.Fatalf("got %q, want skipped: not reached", r)
		}
	}
}

func TestEnvFileProblemsFallThroughToLocal(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app/env.yml"), doc("local"))
	writeFile(t, filepath.Join(root, "empty.yml"), " \n\n")
	cases := []struct {
		envYML string
		status Status
		reason string
	}{
		{"", Absent, "ENV_YML is not set"},
		{"/nonexistent.yml", Absent, "no such file"},
		{"relative.yml", Failed, "ENV_YML must be an absolute path"},
		{"/app", Failed, "not a regular file"},
		{"/empty.yml", Failed, "document is empty"},
	}
	for _, c := range cases {
		opt := options(root, "env-file", "local")
		opt.EnvYML = c.envYML
		res := mustFind(t, opt, "local", filepath.Join(root, "app/env.yml"), doc("local"))
		wantReport(t, res, "env-file", c.status, c.reason)
	}
}

func TestOversizedLocalFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app/env.yml"), doc("big")+strings.Repeat("#", MaxDocumentSize))
	res, err := discover(t, options(root, "local"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	wantReport(t, res, "local", Failed, "larger than 1048576 bytes")
}

// The configured order decides, not the built-in one, and a source that is not listed
// is never tried: its metadata server sees no request.
func TestConfiguredOrderAndAllowedSources(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app/env.yml"), doc("local"))
	iso := filepath.Join(root, "seed.iso")
	makeISO(t, iso, "cidata", map[string]string{"user-data": doc("seed")})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(doc("metadata")))
	}))
	defer srv.Close()

	opt := options(root, "nocloud", "local")
	opt.Config.Endpoints = agentconfig.Endpoints{EC2: srv.URL, GCE: srv.URL, OpenStack: srv.URL}
	opt.Devices = []string{iso}
	res := mustFind(t, opt, "nocloud", iso, doc("seed"))
	if len(res.Reports) != 2 || res.Reports[1].Source != "local" || res.Reports[1].Status != Skipped {
		t.Fatalf("want nocloud found, local skipped, nothing else:\n%s", reports(res))
	}

	opt.Config.Sources = []string{"gce"}
	mustFind(t, opt, "gce", srv.URL+"/computeMetadata/v1/instance/attributes/user-data", doc("metadata"))
	if hits.Load() != 1 {
		t.Fatalf("the metadata server saw %d requests, want 1 (gce only)", hits.Load())
	}

	opt.Config.Sources = []string{"local", "nocloud"}
	mustFind(t, opt, "local", "", doc("local"))
	if hits.Load() != 1 {
		t.Fatalf("a source not listed was tried: %d requests", hits.Load())
	}
}

// With nothing anywhere, the error wraps ErrNotFound and names every source's outcome,
// and every report is printable.
func TestNothingFound(t *testing.T) {
	opt := options(t.TempDir(), agentconfig.AllSources()...)
	res, err := discover(t, opt)
	if !errors.Is(err, ErrNotFound) || res.Document != nil {
		t.Fatalf("got %v, %v; want ErrNotFound", res, err)
	}
	for _, s := range agentconfig.AllSources() {
		if !strings.Contains(err.Error(), s+": ") {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	wantReport(t, res, "local", Absent, "no such file")
	wantReport(t, res, "ec2", Failed, "connection refused")
	if res.String() != "no env.yml found" {
		t.Fatalf("String() = %q", res.String())
	}
}

func TestUnknownSourceAndCancelledContext(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app/env.yml"), doc("local"))
	res, _ := discover(t, options(root, "floppy", "local"))
	wantReport(t, res, "floppy", Failed, "unknown source")
	wantReport(t, res, "local", Found, "")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Discover(ctx, options(root, "local"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	wantReport(t, res, "local", Failed, "not tried")
}

// The summary names the source and digest but never the content.
func TestResultString(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app/env.yml"), doc("local"))
	res := mustFind(t, options(root, "local"), "local", "", doc("local"))
	want := "env.yml from local " + filepath.Join(root, "app/env.yml") + " (" + fmt.Sprint(len(doc("local"))) + " bytes, sha256 " + res.SHA256 + ")"
	if res.String() != want {
		t.Fatalf("String() = %q, want %q", res.String(), want)
	}
}
