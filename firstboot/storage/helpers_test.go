package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// requireDisks skips or fails (under CI) a test that needs loop devices and the tools.
func requireDisks(t testing.TB) {
	t.Helper()
	testtool.RequireRoot(t)
	testtool.Require(t, "sgdisk", "blkid", "e2fsck", "partx", "losetup", "mkfs.ext4", "mkswap", "tune2fs", "wipefs", "mount", "umount")
}

func sh(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testRoot makes a root directory with the users the layout names.
func testRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	write(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\npostgres:x:105:109::/var/lib/postgresql:/bin/bash\napp:x:1000:1000::/app:/bin/bash\n")
	write(t, filepath.Join(root, "etc/group"), "root:x:0:\npostgres:x:109:\napp:x:1000:\n")
	return root
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mounter mounts for real and unmounts at cleanup, before the loop devices go.
func mounter(t testing.TB) MountFunc {
	return func(ctx context.Context, device, target, fstype string) error {
		if err := mountCommand(ctx, device, target, fstype); err != nil {
			return err
		}
		t.Cleanup(func() { exec.Command("umount", target).Run() })
		return nil
	}
}

// recorder is a Services that remembers what it was asked to do.
type recorder struct{ calls []string }

func (r *recorder) Stop(_ context.Context, units []string) ([]string, error) {
	for _, u := range units {
		r.calls = append(r.calls, "stop "+u)
	}
	return units, nil
}

func (r *recorder) Start(_ context.Context, units []string) error {
	for _, u := range units {
		r.calls = append(r.calls, "start "+u)
	}
	return nil
}

// twoVolumes is setup for one disk: ecs-data 70%, ecs-volatile the rest.
func twoVolumes(dev string, wipe bool) env.Storage {
	return env.Storage{Setup: env.StorageSetup{Disks: []env.Disk{{
		Device: dev, Wipe: wipe,
		Partitions: []env.Partition{
			{Label: DataLabel, Size: env.Size{Percent: 70}, Format: "ext4"},
			{Label: VolatileLabel, Size: env.Size{Rest: true}, Format: "ext4"},
		},
	}}}}
}

func ensure(t testing.TB, opts Options) *Result {
	t.Helper()
	res, err := Ensure(context.Background(), opts)
	if err != nil {
		t.Fatalf("Ensure: %v\nactions so far:\n%s", err, strings.Join(res.Actions, "\n"))
	}
	return res
}

// ensureUnchanged runs Ensure again and expects nothing to happen.
func ensureUnchanged(t testing.TB, opts Options) {
	t.Helper()
	if res := ensure(t, opts); res.Changed() {
		t.Errorf("second run changed:\n%s", strings.Join(res.Actions, "\n"))
	}
}

func hasAction(res *Result, prefix string) bool {
	return slices.ContainsFunc(res.Actions, func(a string) bool { return strings.HasPrefix(a, prefix) })
}

// blkidValue is one blkid -p tag of a device.
func blkidValue(t testing.TB, dev, tag string) string {
	t.Helper()
	out, _ := exec.Command("blkid", "-p", "-s", tag, "-o", "value", dev).Output()
	return strings.TrimSpace(string(out))
}

// digest hashes a whole device, to prove it was not written.
func digest(t testing.TB, dev string) string {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// unmount unmounts the volumes under root, for e2fsck.
func unmount(t testing.TB, root string) {
	t.Helper()
	for _, m := range []string{"data", "volatile"} {
		p := filepath.Join(root, m)
		if ok, _, _ := mountedAt(p); ok {
			sh(t, "umount", p)
		}
	}
}

// fsck checks a filesystem read-only and fails the test on any problem.
func fsck(t testing.TB, dev string) {
	t.Helper()
	sh(t, "e2fsck", "-fn", dev)
}

// shIn is sh with standard input.
func shIn(t testing.TB, stdin, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// testDirs and testRelocations are a stack's layout as the services declare it: the
// original's table (salt/appliance/storage/setup.sls).
var (
	testDirs = []machine.Dir{
		{Path: "/volatile/docker", Owner: "root"},
		{Path: "/volatile/ecs-cache", Owner: "1000"},
		{Path: "/volatile/grafana", Owner: "472"},
		{Path: "/volatile/duplicity", Owner: "root"},
		{Path: "/data/etc", Owner: "app"},
		{Path: "/data/ecs-ca", Owner: "1000", Mode: 0o700},
		{Path: "/data/ecs-storage-vault", Owner: "1000"},
		{Path: "/data/postgresql", Owner: "postgres"},
	}
	testRelocations = []services.Relocation{
		{Source: "/var/lib/docker", Target: "/volatile/docker", Units: []string{"cadvisor.service", "docker.socket", "docker.service"}},
		{Source: "/app/ecs-cache", Target: "/volatile/ecs-cache"},
		{Source: "/root/.cache/duplicity", Target: "/volatile/duplicity"},
		{Source: "/var/lib/postgresql", Target: "/data/postgresql", Units: []string{"postgresql.service"}},
		{Source: "/app/etc", Target: "/data/etc"},
		{Source: "/app/ecs-storage-vault", Target: "/data/ecs-storage-vault"},
	}
)
