package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"--help"}, &out, &errb); rc != 0 {
		t.Errorf("--help exit %d", rc)
	}
	for _, want := range []string{"--rootfs ROOTFS.tar --ref NAME:TAG", "docker load -i OUT.tar", "-env K=V", "-workdir DIR"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "rootfs.tar")
	f, _ := os.Create(src)
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Close()
	f.Close()
	out := filepath.Join(dir, "out.tar")

	var stdout, stderr bytes.Buffer
	rc := run([]string{"--rootfs", src, "--ref", "ecs-standin-base:trixie", "--env", "LANG=C.UTF-8",
		"--workdir", "/app", "--cmd", `["simple"]`, "-o", out}, &stdout, &stderr)
	if rc != 0 || !strings.HasPrefix(stdout.String(), "sha256:") {
		t.Fatalf("exit %d, stdout %q, stderr %q", rc, stdout.String(), stderr.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ref", "a:b", "-o", out}, "missing --rootfs"},
		{[]string{"--rootfs", src, "--ref", "noTag", "-o", out}, "has no tag"},
		{[]string{"--rootfs", src, "--ref", "a:b", "--cmd", "simple", "-o", out}, "JSON array"},
		{[]string{"--rootfs", src, "--ref", "a:b", "--label", "x", "-o", out}, "want K=V"},
	} {
		stdout.Reset()
		stderr.Reset()
		if rc := run(tc.args, &stdout, &stderr); rc == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, rc, stderr.String(), tc.want)
		}
	}
}
