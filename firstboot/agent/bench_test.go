package agent

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/agent/agenttest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// BenchmarkBootTwoDisks is a whole first boot (no services) with storage made on two
// blank 10 GiB sparse disks: ecs-data on one, ecs-volatile on the other.
func BenchmarkBootTwoDisks(b *testing.B) {
	testtool.Require(b, "mkfs.ext4", "sgdisk", "blkid", "wipefs", "tune2fs", "mount", "umount")
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		dataDev, detachData := testtool.AttachLoop(b, dir, 10<<10)
		volDev, detachVol := testtool.AttachLoop(b, dir, 10<<10)
		root := agenttest.NewRoot(b, func(s string) string {
			i, j := strings.Index(s, "  storage:\n"), strings.Index(s, "  dkim:\n")
			return s[:i] + "  storage:\n    setup:\n      disks:\n" +
				"        - device: " + dataDev + "\n          partitions: [{label: ecs-data}]\n" +
				"        - device: " + volDev + "\n          partitions: [{label: ecs-volatile}]\n" + s[j:]
		})
		b.StartTimer()
		err := Boot(context.Background(), Options{Root: root, Devices: []string{dataDev, volDev}, Until: "prepare", Out: io.Discard})
		b.StopTimer()
		for _, m := range []string{"data", "volatile"} {
			exec.Command("umount", filepath.Join(root, m)).Run()
		}
		if e1, e2 := detachData(), detachVol(); e1 != nil || e2 != nil {
			b.Fatal(e1, e2)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
