package chroot

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// miniRoot builds a tiny root filesystem from the build host's own programs and
// the libraries ldd names for them, so the test needs no network.
func miniRoot(t *testing.T) string {
	t.Helper()
	testtool.RequireRoot(t)
	progs := testtool.Require(t, "sh", "cat", "tar", "chmod", "mkdir", "ls", "sleep", "ldd")
	root := t.TempDir()
	libRE := regexp.MustCompile(`(/\S+\.so[^\s]*)`)
	copyFile := func(src, dst string) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range progs[:len(progs)-1] {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(real, filepath.Join(root, "bin", filepath.Base(p)))
		out, err := exec.Command("ldd", real).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, lib := range libRE.FindAllString(string(out), -1) {
			copyFile(lib, filepath.Join(root, lib))
		}
	}
	for _, d := range []string{"etc", "usr/sbin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func assertNoMounts(t *testing.T, root string) {
	t.Helper()
	m, err := MountsUnder(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) > 0 {
		t.Fatalf("still mounted: %v", m)
	}
}

func TestSessionAndCommunicator(t *testing.T) {
	root := miniRoot(t)
	// The root's own resolv.conf is a symlink, as on Ubuntu: it must come back.
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	s, err := Enter(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.Communicator()

	host, _ := os.ReadFile("/etc/resolv.conf")
	out, err := c.Run("cat /etc/resolv.conf; ls /dev; ls /proc/self >/dev/null && echo proc-ok; /usr/sbin/policy-rc.d; echo policy=$?")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{string(host), "null\n", "urandom\n", "proc-ok", "policy=101"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "sda") || strings.Contains(string(out), "vda") {
		t.Errorf("host block devices visible in the root's /dev:\n%s", out)
	}

	// Start streams output and reports the exit status.
	var stdout bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: "echo hi; exit 3", Stdout: &stdout}
	if err := c.Start(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	if st := cmd.Wait(); st != 3 || stdout.String() != "hi\n" {
		t.Fatalf("exit %d, output %q", st, stdout.String())
	}

	// Upload and Download, with the mode of the local file.
	var fi os.FileInfo = fakeInfo{mode: 0o750}
	if err := c.Upload("/tmp/x.sh", strings.NewReader("#!/bin/sh\necho ran\n"), &fi); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(root, "tmp/x.sh")); err != nil || st.Mode().Perm() != 0o750 {
		t.Fatalf("uploaded file: %v %v", st, err)
	}
	var got bytes.Buffer
	if err := c.Download("/tmp/x.sh", &got); err != nil || !strings.Contains(got.String(), "echo ran") {
		t.Fatalf("download: %q %v", got.String(), err)
	}
	if err := c.Download("/nonexistent", &got); err == nil {
		t.Error("download of a missing file succeeded")
	}

	// UploadDir follows rsync's trailing-slash rule and honours exclude.
	src := t.TempDir()
	for _, f := range []string{"a.txt", "sub/b.txt", "skip.log"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(src, f), []byte(f), 0o600)
	}
	if err := c.UploadDir("/srv/with", src, []string{"*.log"}); err != nil {
		t.Fatal(err)
	}
	if err := c.UploadDir("/srv/contents", src+"/", nil); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"srv/with/" + filepath.Base(src) + "/sub/b.txt": true,
		"srv/with/" + filepath.Base(src) + "/skip.log":  false,
		"srv/contents/a.txt":                            true,
		"srv/contents/skip.log":                         true,
	} {
		if _, err := os.Stat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
	dl := t.TempDir()
	if err := c.DownloadDir("/srv/contents", dl, []string{"a.txt"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dl, "sub/b.txt")); err != nil || string(b) != "sub/b.txt" {
		t.Errorf("downloaded dir: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dl, "a.txt")); err == nil {
		t.Error("excluded file downloaded")
	}

	// A daemon left running by a script must not keep anything mounted.
	if _, err := c.Run("sleep 300 >/dev/null 2>&1 </dev/null & echo started"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoMounts(t, root)
	if target, err := os.Readlink(filepath.Join(root, "etc/resolv.conf")); err != nil || target != "../run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("resolv.conf not restored: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/policy-rc.d")); err == nil {
		t.Error("policy-rc.d left behind")
	}
	if p := processesInside(root); len(p) > 0 {
		t.Errorf("processes left in the root: %v", p)
	}
}

func TestCancelKillsCommand(t *testing.T) {
	root := miniRoot(t)
	s, err := Enter(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := &packersdk.RemoteCmd{Command: "sleep 300"}
	if err := s.Communicator().Start(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	cancel()
	if st := cmd.Wait(); st != 128+9 {
		t.Errorf("exit status %d after cancel, want 137", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoMounts(t, root)
}

func TestEnterFailureUndoes(t *testing.T) {
	root := miniRoot(t)
	// resolv.conf as a directory makes Enter fail after the mounts are made.
	if err := os.MkdirAll(filepath.Join(root, "etc/resolv.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Enter(root); err == nil {
		t.Fatal("Enter succeeded")
	}
	assertNoMounts(t, root)
}

type fakeInfo struct {
	os.FileInfo
	mode os.FileMode
}

func (f fakeInfo) Mode() os.FileMode { return f.mode }
