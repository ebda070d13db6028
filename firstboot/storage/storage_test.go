package storage

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// layout aligns to 1 MiB, sizes percentages on the whole disk, gives the last
// partition the rest short of the backup GPT, and refuses what does not fit.
func TestLayout(t *testing.T) {
	parts := func(sizes ...env.Size) []env.Partition {
		var l []env.Partition
		for i, s := range sizes {
			l = append(l, env.Partition{Label: "p" + string(rune('1'+i)), Size: s, Format: "ext4"})
		}
		return l
	}
	const gib = 1 << 30
	for _, tc := range []struct {
		name   string
		size   int64
		sector int64
		parts  []env.Partition
		want   [][2]uint64 // start, end sectors
		err    string
	}{
		{"70% and rest of 10 GiB", 10 * gib, 512, parts(env.Size{Percent: 70}, env.Size{Rest: true}),
			[][2]uint64{{2048, 2048 + 7168*2048 - 1}, {2048 + 7168*2048, 2048 + (7168+3070)*2048 - 1}}, ""},
		{"MiB then rest", 1 * gib, 512, parts(env.Size{MiB: 100}, env.Size{Rest: true}),
			[][2]uint64{{2048, 2048 + 100*2048 - 1}, {2048 + 100*2048, 2048 + (100+922)*2048 - 1}}, ""},
		{"4 KiB sectors", 1 * gib, 4096, parts(env.Size{Rest: true}),
			[][2]uint64{{256, 256 + 1022*256 - 1}}, ""},
		{"100% does not fit", 1 * gib, 512, parts(env.Size{Percent: 100}), nil, "partition p1 (size 100%) does not fit on the disk of 1024 MiB"},
		{"too many MiB", 1 * gib, 512, parts(env.Size{MiB: 1 << 62}), nil, "does not fit"},
		{"nothing left", 1 * gib, 512, parts(env.Size{MiB: 1022}, env.Size{Rest: true}), nil, "partition p2 (size rest) does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := layout(tc.size, tc.sector, tc.parts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range tab.Partitions {
				if p.Index != i+1 || p.Name != tc.parts[i].Label || p.Type != gpt.LinuxFilesystem || [2]uint64{p.Start, p.End} != tc.want[i] {
					t.Errorf("partition %d: %d %q %d-%d, want %d-%d", i, p.Index, p.Name, p.Start, p.End, tc.want[i][0], tc.want[i][1])
				}
				if p.Start*uint64(tc.sector)%mib != 0 || p.Size%mib != 0 {
					t.Errorf("partition %d not MiB aligned", i)
				}
			}
		})
	}
}

func TestParseBlkid(t *testing.T) {
	out := "DEVNAME=/dev/vdb1\nLABEL=ecs-data\nUUID=1\nTYPE=ext4\n\nDEVNAME=/dev/vdc\nPTTYPE=gpt\n\nDEVNAME=/dev/sr0\nLABEL=my\\ disk\nTYPE=iso9660\n"
	got := parseBlkid(out)
	want := []fsInfo{{"/dev/vdb1", "ext4", "ecs-data"}, {"/dev/vdc", "", ""}, {"/dev/sr0", "iso9660", "my disk"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %v, want %v", i, got[i], want[i])
		}
	}
}

// fstab keeps other lines and their order, replaces a wrong entry for our mount
// points in place, drops a duplicate, appends what is missing, keeps the file's
// mode, and leaves a correct file alone.
func TestFstab(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "etc/fstab")
	write(t, path, "# comment\nUUID=1 / ext4 defaults 0 1\nLABEL=ecs-data /data ext4 defaults 0 0\n/dev/sdz1 /data xfs defaults 0 0\n\ntmpfs /tmp tmpfs defaults 0 0\n")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := newEnsurer(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	fss := map[string]fsInfo{"ecs-swap": {"/dev/x", "swap", "ecs-swap"}}
	if err := e.fstab(context.Background(), fss); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# comment\nUUID=1 / ext4 defaults 0 1\nLABEL=ecs-data /data ext4 defaults,nofail 0 2\n\ntmpfs /tmp tmpfs defaults 0 0\n" +
		"LABEL=ecs-volatile /volatile ext4 defaults,nofail 0 2\nLABEL=ecs-swap none swap sw,nofail 0 0\n"
	if string(got) != want {
		t.Errorf("fstab:\n%s\nwant:\n%s", got, want)
	}
	if len(e.actions) != 4 {
		t.Errorf("actions: %q", e.actions)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	e.actions = nil
	if err := e.fstab(context.Background(), fss); err != nil || len(e.actions) != 0 {
		t.Errorf("second run: %v %q", err, e.actions)
	}
}

// Without a way to make a missing label, the error says what to change in env.yml.
func TestMissingLabelErrors(t *testing.T) {
	requireDisks(t)
	dev := testtool.LoopDisk(t, 16)
	for _, tc := range []struct {
		name string
		st   env.Storage
		want string
	}{
		{"no setup", env.Storage{Ignore: env.StorageIgnore{Data: true}},
			"no filesystem labelled ecs-volatile found (probed " + dev + "), and appliance.storage.setup.disks makes none: add a disk with a partition labelled ecs-volatile, or set appliance.storage.ignore.volatile: true"},
		{"original's schema", env.Storage{Setup: env.StorageSetup{
			Parted: map[string]env.PartedDisk{dev: {Type: "gpt", Parts: []env.PartedPart{{Name: "data", Start: "1MiB", End: "100%"}}}},
			Format: map[string]env.FormatEntry{dev + "p1": {FSType: "ext4", Options: []string{"-L ecs-data"}}},
		}}, "appliance.storage.setup uses the original's parted/format schema, which this appliance does not run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Ensure(context.Background(), Options{Root: testRoot(t), Storage: tc.st, Devices: []string{dev}, Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant %q", err, tc.want)
			}
			if res.Changed() {
				t.Errorf("actions %v", res.Actions)
			}
		})
	}
}

// Filesystems on whole disks (no partition table) are used too; a mount point that
// has files on the root filesystem is not mounted over.
func TestWholeDiskFilesystemsAndBusyMountPoint(t *testing.T) {
	requireDisks(t)
	a, b := testtool.LoopDisk(t, 64), testtool.LoopDisk(t, 64)
	sh(t, "mkfs.ext4", "-q", "-L", DataLabel, a)
	sh(t, "mkfs.ext4", "-q", "-L", VolatileLabel, b)
	root := testRoot(t)
	write(t, filepath.Join(root, "data/old.txt"), "hidden if mounted over")
	opts := Options{Root: root, Devices: []string{a, b}, Mount: mounter(t), Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
	_, err := Ensure(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "not mounting ecs-data on /data: the directory holds 1 entries on the root filesystem (e.g. old.txt)") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/fstab")); !os.IsNotExist(err) {
		t.Errorf("fstab written before the refusal: %v", err)
	}
	if err := os.Remove(filepath.Join(root, "data/old.txt")); err != nil {
		t.Fatal(err)
	}
	res := ensure(t, opts)
	if want := []string{"mounted " + a + " (ecs-data) on /data", "mounted " + b + " (ecs-volatile) on /volatile"}; !slices.Equal(res.Mounted, want) {
		t.Errorf("mounted %q, want %q", res.Mounted, want)
	}
	ensureUnchanged(t, opts)
}

// Two filesystems with one label make LABEL= ambiguous: refused.
func TestDuplicateLabel(t *testing.T) {
	requireDisks(t)
	a, b := testtool.LoopDisk(t, 16), testtool.LoopDisk(t, 16)
	sh(t, "mkfs.ext4", "-q", "-L", DataLabel, a)
	sh(t, "mkfs.ext4", "-q", "-L", DataLabel, b)
	_, err := Ensure(context.Background(), Options{Root: testRoot(t), Storage: env.Storage{Ignore: env.StorageIgnore{Volatile: true}}, Devices: []string{a, b}, Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations})
	if err == nil || !strings.Contains(err.Error(), "2 filesystems are labelled ecs-data ("+a+", "+b+")") {
		t.Errorf("error %v", err)
	}
}
