// Package testtool lets tests depend on real Debian tools (gpg, zbarimg, blkid, …):
// under CI (CI=true) a missing tool fails the test, elsewhere it skips it, so a green
// CI run always means the tool really ran.
package testtool

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Require returns the path of each named program, failing the test under CI and
// skipping it elsewhere when one is missing.
func Require(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(names))
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			Missing(t, name+" not found on PATH (make test installs it)")
		}
		paths = append(paths, p)
	}
	return paths
}

// Missing reports a missing prerequisite: fatal under CI, a skip elsewhere.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// RequireRoot is Require for tests that need root (loop devices, mounts).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// LoopDisk attaches a sparse image of sizeMiB to a loop device, detached (with any
// partitions partx added) at cleanup.
func LoopDisk(t testing.TB, sizeMiB int64) string {
	t.Helper()
	dev, detach := AttachLoop(t, t.TempDir(), sizeMiB)
	t.Cleanup(func() {
		if err := detach(); err != nil {
			t.Error(err)
		}
	})
	return dev
}

// AttachLoop makes a sparse image of sizeMiB in dir and attaches it to a loop
// device; detach undoes both. For benchmarks that attach disks per iteration.
func AttachLoop(t testing.TB, dir string, sizeMiB int64) (dev string, detach func() error) {
	t.Helper()
	RequireRoot(t)
	Require(t, "losetup", "partx")
	f, err := os.CreateTemp(dir, "disk-*.img")
	if err != nil {
		t.Fatal(err)
	}
	img := f.Name()
	if err := f.Truncate(sizeMiB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev = strings.TrimSpace(string(out))
	return dev, func() error {
		// The kernel keeps partitions added by partx after the loop device is detached.
		exec.Command("partx", "-d", dev).Run()
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
		return os.Remove(img)
	}
}

// RequireFile is Require for data files a test needs (firmware, images).
func RequireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, path+" is missing (make test installs it)")
	}
}

// FreeAddress returns a loopback host:port nobody listens on right now.
func FreeAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
