package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// A blank disk gets a GPT with ecs-data (70%) and ecs-volatile (the rest), both ext4,
// listed in fstab and mounted; sgdisk, blkid and e2fsck accept the result, and a second
// run changes nothing.
func TestFreshDisk(t *testing.T) {
	requireDisks(t)
	dev := testtool.LoopDisk(t, 512)
	root := testRoot(t)
	opts := Options{Root: root, Storage: twoVolumes(dev, false), Devices: []string{dev}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
	res := ensure(t, opts)
	for _, want := range []string{
		"partitioned " + dev + ": GPT with ecs-data (358 MiB), ecs-volatile (152 MiB)",
		"made ext4 filesystem ecs-data on " + dev + "p1",
		"made ext4 filesystem ecs-volatile on " + dev + "p2",
		"added to /etc/fstab: LABEL=ecs-data /data ext4 defaults,nofail 0 2",
		"added to /etc/fstab: LABEL=ecs-volatile /volatile ext4 defaults,nofail 0 2",
		"created /data/postgresql (owner postgres, mode 0755)",
	} {
		if !hasAction(res, want) {
			t.Errorf("no action %q in\n%s", want, strings.Join(res.Actions, "\n"))
		}
	}
	if want := []string{"mounted " + dev + "p1 (ecs-data) on /data", "mounted " + dev + "p2 (ecs-volatile) on /volatile"}; !slices.Equal(res.Mounted, want) {
		t.Errorf("mounted %q, want %q", res.Mounted, want)
	}
	ensureUnchanged(t, opts)

	// A boot on which systemd did not mount them (its wait for the device timed
	// out): the agent mounts them, and that changes nothing (issue 10, item 10).
	for _, v := range []string{"/data", "/volatile"} {
		if out, err := exec.Command("umount", filepath.Join(opts.Root, v)).CombinedOutput(); err != nil {
			t.Fatalf("umount %s: %v\n%s", v, err, out)
		}
	}
	if res := ensure(t, opts); res.Changed() || len(res.Mounted) != 2 {
		t.Errorf("mounting what fstab names counted as a change: actions %q, mounted %q", res.Actions, res.Mounted)
	}

	if out := sh(t, "sgdisk", "-v", dev); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	for i, want := range []struct{ name, first, size string }{
		{DataLabel, "First sector: 2048 ", "Partition size: 733184 sectors"},
		{VolatileLabel, "First sector: 735232 ", "Partition size: 311296 sectors"},
	} {
		out := sh(t, "sgdisk", "-i", string(rune('1'+i)), dev)
		for _, s := range []string{"Partition name: '" + want.name + "'", want.first, want.size, "Linux filesystem"} {
			if !strings.Contains(out, s) {
				t.Errorf("sgdisk -i %d: no %q in\n%s", i+1, s, out)
			}
		}
	}
	for i, label := range []string{DataLabel, VolatileLabel} {
		part := dev + "p" + string(rune('1'+i))
		if got := blkidValue(t, part, "LABEL"); got != label {
			t.Errorf("%s: label %q, want %s", part, got, label)
		}
		ok, mdev, err := mountedAt(filepath.Join(root, strings.TrimPrefix(label, "ecs-")))
		want, _ := deviceNumber(part)
		if err != nil || !ok || mdev != want {
			t.Errorf("%s not mounted on /%s: %v %v", part, label, ok, err)
		}
	}
	fstab, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
	if want := "LABEL=ecs-data /data ext4 defaults,nofail 0 2\nLABEL=ecs-volatile /volatile ext4 defaults,nofail 0 2\n"; string(fstab) != want {
		t.Errorf("fstab:\n%s\nwant:\n%s", fstab, want)
	}
	unmount(t, root)
	fsck(t, dev+"p1")
	fsck(t, dev+"p2")
}

// Two disks, one per volume, and a swap partition: mkswap labels it, fstab uses it.
func TestTwoDisksAndSwap(t *testing.T) {
	requireDisks(t)
	a, b := testtool.LoopDisk(t, 128), testtool.LoopDisk(t, 256)
	root := testRoot(t)
	st := env.Storage{Setup: env.StorageSetup{Disks: []env.Disk{
		{Device: a, Partitions: []env.Partition{{Label: DataLabel, Size: env.Size{Rest: true}, Format: "ext4"}}},
		{Device: b, Partitions: []env.Partition{
			{Label: VolatileLabel, Size: env.Size{MiB: 200}, Format: "ext4"},
			{Label: "ecs-swap", Size: env.Size{Rest: true}, Format: "swap"},
		}},
	}}}
	opts := Options{Root: root, Storage: st, Devices: []string{a, b}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
	res := ensure(t, opts)
	if !hasAction(res, "made swap filesystem ecs-swap on "+b+"p2") || !hasAction(res, "added to /etc/fstab: LABEL=ecs-swap none swap sw,nofail 0 0") {
		t.Errorf("actions:\n%s", strings.Join(res.Actions, "\n"))
	}
	if got := blkidValue(t, b+"p2", "TYPE"); got != "swap" {
		t.Errorf("%sp2 is %q, want swap", b, got)
	}
	if out := sh(t, "sgdisk", "-i", "2", b); !strings.Contains(out, "Linux swap") {
		t.Errorf("sgdisk -i 2:\n%s", out)
	}
	ensureUnchanged(t, opts)
	unmount(t, root)
	fsck(t, a+"p1")
	fsck(t, b+"p1")
}

// Filesystems already labelled ecs-data and ecs-volatile are used as they are, even on a
// disk whose entry says wipe: true: nothing is partitioned or formatted, data survives.
func TestExistingLabelsReused(t *testing.T) {
	requireDisks(t)
	dev := testtool.LoopDisk(t, 256)
	sh(t, "sgdisk", "-n1:0:+100M", "-c1:mine", "-n2:0:0", "-c2:other", dev)
	sh(t, "partx", "-u", dev)
	sh(t, "mkfs.ext4", "-q", "-L", DataLabel, dev+"p1")
	sh(t, "mkfs.ext4", "-q", "-L", VolatileLabel, dev+"p2")
	mnt := t.TempDir()
	sh(t, "mount", dev+"p1", mnt)
	write(t, filepath.Join(mnt, "keep.txt"), "precious")
	sh(t, "umount", mnt)
	uuids := blkidValue(t, dev+"p1", "UUID") + blkidValue(t, dev+"p2", "UUID")

	root := testRoot(t)
	opts := Options{Root: root, Storage: twoVolumes(dev, true), Devices: []string{dev}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
	res := ensure(t, opts)
	if hasAction(res, "partitioned") || hasAction(res, "wiped") || hasAction(res, "made") {
		t.Errorf("touched the disk:\n%s", strings.Join(res.Actions, "\n"))
	}
	if b, err := os.ReadFile(filepath.Join(root, "data/keep.txt")); err != nil || string(b) != "precious" {
		t.Errorf("data/keep.txt: %q, %v", b, err)
	}
	if got := blkidValue(t, dev+"p1", "UUID") + blkidValue(t, dev+"p2", "UUID"); got != uuids {
		t.Errorf("filesystems were remade")
	}
	ensureUnchanged(t, opts)
}

// foreign makes a disk carry something that is not ours.
var foreign = []struct {
	name, found string
	make        func(t *testing.T, dev string)
}{
	{"ext4 without our label", "ext4 at 0x438 labelled other", func(t *testing.T, dev string) {
		sh(t, "mkfs.ext4", "-q", "-L", "other", dev)
	}},
	{"MBR", "dos at 0x1fe", func(t *testing.T, dev string) {
		testtool.Require(t, "sfdisk")
		cmd := "label: dos\n,64M,L\n"
		shIn(t, cmd, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", dev)
	}},
	{"GPT the kernel knows", "gpt at 0x200", func(t *testing.T, dev string) {
		sh(t, "sgdisk", "-n1:0:+20M", "-n2:0:+20M", "-n3:0:0", dev)
		sh(t, "partx", "-a", dev)
	}},
	{"unknown bytes at the end", "non-zero data in its first or last MiB", func(t *testing.T, dev string) {
		f, err := os.OpenFile(dev, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		size, _ := f.Seek(0, 2)
		if _, err := f.WriteAt([]byte("not nothing"), size-4096); err != nil {
			t.Fatal(err)
		}
	}},
}

// A disk with anything on it is left byte for byte as it was unless its entry says
// wipe: true, and the error names the device and what is on it.
func TestForeignDiskLeftAlone(t *testing.T) {
	requireDisks(t)
	for _, tc := range foreign {
		t.Run(tc.name, func(t *testing.T) {
			dev := testtool.LoopDisk(t, 128)
			tc.make(t, dev)
			before := digest(t, dev)
			opts := Options{Root: testRoot(t), Storage: twoVolumes(dev, false), Devices: []string{dev}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
			res, err := Ensure(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), dev+" is not empty ("+tc.found) || !strings.Contains(err.Error(), "wipe: true") {
				t.Errorf("error %v, want one naming %s and %q", err, dev, tc.found)
			}
			if res.Changed() {
				t.Errorf("actions: %v", res.Actions)
			}
			if digest(t, dev) != before {
				t.Errorf("%s was written to", dev)
			}
		})
	}
}

// With wipe: true the same disks are converted, and nothing of the old content shows.
func TestForeignDiskWiped(t *testing.T) {
	requireDisks(t)
	for _, tc := range foreign {
		t.Run(tc.name, func(t *testing.T) {
			dev := testtool.LoopDisk(t, 128)
			tc.make(t, dev)
			root := testRoot(t)
			opts := Options{Root: root, Storage: twoVolumes(dev, true), Devices: []string{dev}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
			res := ensure(t, opts)
			if !hasAction(res, "wiped "+dev+" (it held "+tc.found) {
				t.Errorf("actions:\n%s", strings.Join(res.Actions, "\n"))
			}
			ensureUnchanged(t, opts)
			sigs, err := signatures(context.Background(), dev)
			if err != nil || len(sigs) != 3 || !strings.HasPrefix(sigs[0], "gpt at 0x200") {
				t.Errorf("signatures after wipe: %v %v", sigs, err)
			}
			unmount(t, root)
			fsck(t, dev+"p1")
			fsck(t, dev+"p2")
		})
	}
}

// A disk that holds an ecs-data filesystem is never repartitioned, wipe or not.
func TestDiskWithOurDataNotRepartitioned(t *testing.T) {
	requireDisks(t)
	dev := testtool.LoopDisk(t, 128)
	sh(t, "mkfs.ext4", "-q", "-L", DataLabel, dev)
	before := digest(t, dev)
	opts := Options{Root: testRoot(t), Storage: twoVolumes(dev, true), Devices: []string{dev}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
	_, err := Ensure(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), dev+" holds ecs-data on "+dev) {
		t.Errorf("error %v", err)
	}
	if digest(t, dev) != before {
		t.Errorf("%s was written to", dev)
	}
}

// partitionOnly runs setup's first step alone, as a run killed right after it would.
func partitionOnly(t *testing.T, opts Options) {
	t.Helper()
	e, err := newEnsurer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	plan, err := e.planDisk(ctx, opts.Storage.Setup.Disks[0], map[string][]fsInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.partition(ctx, plan); err != nil {
		t.Fatal(err)
	}
}

// Runs killed after partitioning, inside mkfs, or while writing the GPT are finished
// by the next run.
func TestInterruptedSetupConverges(t *testing.T) {
	requireDisks(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dev string)
		want   []string
	}{
		{"after partitioning", func(*testing.T, string) {}, []string{"made ext4 filesystem ecs-data", "made ext4 filesystem ecs-volatile"}},
		{"inside mkfs", func(t *testing.T, dev string) {
			sh(t, "mkfs.ext4", "-q", "-L", pendingLabel, dev+"p1")
		}, []string{"made ext4 filesystem ecs-data", "made ext4 filesystem ecs-volatile"}},
		{"before the primary GPT", func(t *testing.T, dev string) {
			f, err := os.OpenFile(dev, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 512), 512); err != nil {
				t.Fatal(err)
			}
		}, []string{"repaired the primary GPT of", "made ext4 filesystem ecs-data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := testtool.LoopDisk(t, 128)
			root := testRoot(t)
			opts := Options{Root: root, Storage: twoVolumes(dev, false), Devices: []string{dev}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
			partitionOnly(t, opts)
			tc.damage(t, dev)
			res := ensure(t, opts)
			for _, w := range tc.want {
				if !hasAction(res, w) {
					t.Errorf("no action %q in\n%s", w, strings.Join(res.Actions, "\n"))
				}
			}
			if hasAction(res, "partitioned") || hasAction(res, "wiped") {
				t.Errorf("partitioned again:\n%s", strings.Join(res.Actions, "\n"))
			}
			ensureUnchanged(t, opts)
			if out := sh(t, "sgdisk", "-v", dev); !strings.Contains(out, "No problems found") {
				t.Errorf("sgdisk -v:\n%s", out)
			}
			if got := blkidValue(t, dev+"p1", "LABEL"); got != DataLabel {
				t.Errorf("p1 label %q", got)
			}
			unmount(t, root)
			fsck(t, dev+"p1")
			fsck(t, dev+"p2")
		})
	}
}

// A setup disk outside Options.Devices is refused before anything is read from it.
func TestSetupDiskOutsideDevices(t *testing.T) {
	requireDisks(t)
	a, b := testtool.LoopDisk(t, 64), testtool.LoopDisk(t, 64)
	opts := Options{Root: testRoot(t), Storage: twoVolumes(b, false), Devices: []string{a}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
	_, err := Ensure(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), b+" is not one of the devices") {
		t.Errorf("error %v", err)
	}
}

// BenchmarkEnsureTwoDisks is the whole first run on two blank 10 GiB sparse disks:
// partition, mkfs, fstab, mount, directory layout.
func BenchmarkEnsureTwoDisks(b *testing.B) {
	requireDisks(b)
	dir := b.TempDir()
	b.StopTimer()
	for range b.N {
		da, detachA := testtool.AttachLoop(b, dir, 10<<10)
		db, detachB := testtool.AttachLoop(b, dir, 10<<10)
		root := testRoot(b)
		st := env.Storage{Setup: env.StorageSetup{Disks: []env.Disk{
			{Device: da, Partitions: []env.Partition{{Label: DataLabel, Size: env.Size{Rest: true}, Format: "ext4"}}},
			{Device: db, Partitions: []env.Partition{{Label: VolatileLabel, Size: env.Size{Rest: true}, Format: "ext4"}}},
		}}}
		opts := Options{Root: root, Storage: st, Devices: []string{da, db}, Mount: mountCommand, Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
		b.StartTimer()
		res := ensure(b, opts)
		b.StopTimer()
		if !hasAction(res, "mounted "+db+"p1 (ecs-volatile) on /volatile") {
			b.Fatalf("actions:\n%s", strings.Join(res.Actions, "\n"))
		}
		unmount(b, root)
		if err := errors.Join(detachA(), detachB()); err != nil {
			b.Fatal(err)
		}
	}
}
