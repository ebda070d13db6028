package convert

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/filesum"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func TestCheck(t *testing.T) {
	if err := Check([]string{"raw", "qcow2", "vmdk", "vhdx"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"vdi"}, {"raw", "raw"}} {
		if err := Check(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestConvert converts a small sparse raw image to every format and checks each with
// qemu-img's own reader and sha256sum against SHA256SUMS.
func TestConvert(t *testing.T) {
	testtool.Require(t, "qemu-img", "sha256sum")
	dir := t.TempDir()
	raw := filepath.Join(t.TempDir(), "work.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("data in the middle"), 16<<20)
	f.Truncate(64 << 20)
	f.Close()

	outs, err := Convert(context.Background(), raw, dir, "appliance", Names())
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 4 || outs[0].Format != "raw" {
		t.Fatalf("%+v", outs)
	}
	sums := map[string]string{}
	for _, o := range outs {
		out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", o.Format, filepath.Join(dir, "appliance.raw"), o.Path).CombinedOutput()
		if err != nil {
			t.Errorf("%s differs from raw: %v %s", o.Format, err, out)
		}
		if sums[filepath.Base(o.Path)], err = filesum.SHA256(o.Path); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := Allocated(filepath.Join(dir, "appliance.raw")); err != nil || a >= 64<<20 {
		t.Errorf("raw image not sparse: %d allocated, %v", a, err)
	}
	if err := WriteSums(dir, sums); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || strings.Count(string(out), ": OK") != 4 {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
}
