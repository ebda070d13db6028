package filesum

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// TestAgreesWithSha256sum: the sum is the one coreutils prints.
func TestAgreesWithSha256sum(t *testing.T) {
	testtool.Require(t, "sha256sum")
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("pdf-as-web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := SHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want, _, _ := strings.Cut(string(out), " "); got != want {
		t.Errorf("SHA256 %s, sha256sum %s", got, want)
	}
	if _, err := SHA256(p + ".missing"); err == nil {
		t.Error("no error for a missing file")
	}
}
