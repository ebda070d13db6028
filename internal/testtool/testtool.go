// Package testtool lets tests depend on real Debian tools (gpg, zbarimg, blkid, …):
// under CI (CI=true) a missing tool fails the test, elsewhere it skips it, so a green
// CI run always means the tool really ran.
package testtool

import (
	"os"
	"os/exec"
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
