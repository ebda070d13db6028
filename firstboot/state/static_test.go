package state

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// TestStaticBinary builds testdata/staticprobe with firstboot/static.mk, checks that
// file(1) calls it statically linked, runs it to write a tag, and reads that tag back
// with this (dynamically linked) test: the static agent and the default build share
// one on-disk format.
func TestStaticBinary(t *testing.T) {
	testtool.Require(t, "make", "go", "gcc", "file")
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	tmp := t.TempDir()
	probe := filepath.Join(tmp, "staticprobe")

	build := exec.Command("make", "-s", "-C", root, "-f", "firstboot/static.mk", "static-build",
		"STATIC_LIBDIR="+filepath.Join(tmp, "libs"),
		"STATIC_PKG=./firstboot/state/testdata/staticprobe",
		"STATIC_OUT="+probe,
		// No VCS stamp: the test must not depend on the checkout's git state.
		"STATIC_BUILDFLAGS=-trimpath -buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	out, err = exec.Command("file", "-b", probe).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "statically linked") {
		t.Fatalf("file says %q; want statically linked", out)
	}
	info, err := os.Stat(probe)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("static binary: %.1f MB (%d bytes)", float64(info.Size())/1e6, info.Size())

	dir, addr := filepath.Join(tmp, "state"), testtool.FreeAddress(t)
	ctx := deadline(t, time.Minute)
	run, err := exec.CommandContext(ctx, probe, dir, addr).CombinedOutput()
	if err != nil || strings.TrimSpace(string(run)) != "static" {
		t.Fatalf("running the static binary: %v\n%s", err, run)
	}
	s, err := Open(ctx, dir, Options{Address: addr, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, ok, err := s.Tag(ctx, TagLastRunningAppliance); err != nil || !ok || v != "static" {
		t.Fatalf("tag written by the static binary reads %q %v %v", v, ok, err)
	}
}
