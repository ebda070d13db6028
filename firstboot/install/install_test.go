package install

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// TestApplyIsIdempotent installs a manifest into a tree, checks the result, then
// applies it again and checks that nothing changed, not even a modification time.
func TestApplyIsIdempotent(t *testing.T) {
	root := t.TempDir()
	staged := filepath.Join(t.TempDir(), "file-001")
	if err := os.WriteFile(staged, []byte("server {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// What an image build finds: a stock link to replace by a file, one to remove.
	if err := os.MkdirAll(filepath.Join(root, "etc/nginx/sites-enabled"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"etc/nginx/sites-enabled/default", "etc/nginx/sites-enabled/appliance"} {
		if err := os.Symlink("/etc/nginx/sites-available/default", filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	mf := &Manifest{Steps: []Step{
		{Dir: "/app/etc", Mode: 0o750},
		{File: "/etc/nginx/sites-enabled/appliance", Source: staged, Mode: 0o640},
		{Link: "/etc/localtime", Target: "/usr/share/zoneinfo/Europe/Vienna"},
		{Absent: "/etc/nginx/sites-enabled/default"},
	}}
	var out bytes.Buffer
	m, err := machine.New(root, &out)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Apply(context.Background(), m, mf)
	if err != nil || n != 4 {
		t.Fatalf("first apply: %d changes, %v\n%s", n, err, &out)
	}
	if fi, err := os.Stat(filepath.Join(root, "app/etc")); err != nil || fi.Mode().Perm() != 0o750 || !fi.IsDir() {
		t.Errorf("/app/etc: %v %v", fi, err)
	}
	site := filepath.Join(root, "etc/nginx/sites-enabled/appliance")
	if fi, err := os.Lstat(site); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Errorf("the site is not a 0640 file in place of the link: %v %v", fi, err)
	}
	if got, _ := os.Readlink(filepath.Join(root, "etc/localtime")); got != "/usr/share/zoneinfo/Europe/Vienna" {
		t.Errorf("/etc/localtime links to %q", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/nginx/sites-enabled/default")); err == nil {
		t.Error("the default site is still there")
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(site, old, old); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if n, err := Apply(context.Background(), m, mf); err != nil || n != 0 || out.Len() != 0 {
		t.Errorf("second apply: %d changes, %v\n%s", n, err, &out)
	}
	if fi, _ := os.Stat(site); !fi.ModTime().Equal(old) {
		t.Error("the second apply rewrote an unchanged file")
	}
	// A mode changed by hand is put back, and reported.
	if err := os.Chmod(site, 0o666); err != nil {
		t.Fatal(err)
	}
	if n, err := Apply(context.Background(), m, mf); err != nil || n != 1 || !strings.Contains(out.String(), "mode of /etc/nginx/sites-enabled/appliance") {
		t.Errorf("mode repair: %d changes, %v\n%s", n, err, &out)
	}
}

func TestApplyErrorsNameTheStep(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := machine.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		step Step
		want string
	}{
		{Step{File: "/etc/x", Source: filepath.Join(root, "missing")}, "step 1: /etc/x: open"},
		{Step{Link: "/etc/dir", Target: "/x"}, "step 1: /etc/dir is a directory, not a link"},
		{Step{File: "/etc/y", Source: "/dev/null", Owner: "nobody-here"}, "step 1: /etc/y: owner"},
		{Step{}, "step 1: empty step"},
	} {
		_, err := Apply(context.Background(), m, &Manifest{Steps: []Step{tc.step}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.step, err, tc.want)
		}
	}
}

func TestReadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, []byte(`{"steps": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Read of a broken manifest: %v", err)
	}
	good, _ := json.Marshal(Manifest{Steps: []Step{{Dir: "/x", Mode: 0o700}}})
	if err := os.WriteFile(p, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if mf, err := Read(p); err != nil || len(mf.Steps) != 1 || mf.Steps[0].Mode != 0o700 {
		t.Errorf("Read: %+v, %v", mf, err)
	}
}
