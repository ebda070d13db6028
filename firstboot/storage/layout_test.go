package storage

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

var ignoreBoth = env.Storage{Ignore: env.StorageIgnore{Data: true, Volatile: true}}

func mkdir(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func owner(t *testing.T, path string) (int, int, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode().Perm()
}

func readlink(t *testing.T, path string) string {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil {
		t.Errorf("%v", err)
	}
	return l
}

// leftovers lists the names a relocation works under that are still there.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var l []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		for _, s := range []string{relocatingSuffix, partialSuffix} {
			if strings.HasSuffix(p, s) {
				l = append(l, p)
			}
		}
		return nil
	})
	return l
}

// Ignored volumes are plain directories; the table's directories get their owners and
// modes (fixed where wrong), the services' state moves behind symlinks with the units
// stopped around the move, fstab loses our stale entry and keeps the rest, and a second
// run changes nothing.
func TestIgnoredVolumesLayoutAndRelocations(t *testing.T) {
	testtool.RequireRoot(t)
	root := testRoot(t)
	write(t, filepath.Join(root, "etc/fstab"), "# static file system information\nUUID=1234 / ext4 errors=remount-ro 0 1\nLABEL=ecs-data /data ext4 defaults,nofail 0 2\n")
	mkdir(t, filepath.Join(root, "var/lib/postgresql"), 0o755, 105, 109)
	write(t, filepath.Join(root, "var/lib/postgresql/15/main/PG_VERSION"), "15\n")
	mkdir(t, filepath.Join(root, "var/lib/docker"), 0o710, 0, 0)
	mkdir(t, filepath.Join(root, "app"), 0o755, 1000, 1000)
	write(t, filepath.Join(root, "app/etc/env.yml"), "#cloud-config\n")
	mkdir(t, filepath.Join(root, "data/ecs-ca"), 0o755, 0, 0) // wrong owner and mode
	svc := &recorder{}
	opts := Options{Root: root, Storage: ignoreBoth, Services: svc, Dirs: testDirs, Relocations: testRelocations}
	res := ensure(t, opts)
	t.Logf("actions:\n%s", strings.Join(res.Actions, "\n"))

	for _, d := range testDirs {
		uid, gid, mode := owner(t, filepath.Join(root, d.Path))
		want := map[string][2]int{"root": {0, 0}, "app": {1000, 1000}, "postgres": {105, 109}, "1000": {1000, 1000}, "472": {472, 472}}[d.Owner]
		wantMode := d.Mode
		if wantMode == 0 {
			wantMode = 0o755
		}
		switch d.Path {
		case "/volatile/docker":
			wantMode = 0o710 // the moved directory keeps its own mode
		}
		if uid != want[0] || gid != want[1] || mode != wantMode {
			t.Errorf("%s: %d:%d %04o, want %d:%d %04o", d.Path, uid, gid, mode, want[0], want[1], wantMode)
		}
	}
	for src, dst := range map[string]string{
		"var/lib/postgresql": "../../data/postgresql", "var/lib/docker": "../../volatile/docker",
		"app/etc": "../data/etc", "app/ecs-cache": "../volatile/ecs-cache", "app/ecs-storage-vault": "../data/ecs-storage-vault",
	} {
		if got := readlink(t, filepath.Join(root, src)); got != dst {
			t.Errorf("%s links to %q, want %s", src, got, dst)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "root/.cache/duplicity")); !os.IsNotExist(err) {
		t.Errorf("root/.cache/duplicity made without its parent: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "data/postgresql/15/main/PG_VERSION")); err != nil || string(b) != "15\n" {
		t.Errorf("PG_VERSION: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "data/etc/env.yml")); err != nil || string(b) != "#cloud-config\n" {
		t.Errorf("data/etc/env.yml: %q %v", b, err)
	}
	wantCalls := []string{
		"stop cadvisor.service", "stop docker.socket", "stop docker.service",
		"start docker.service", "start docker.socket", "start cadvisor.service",
		"stop postgresql.service", "start postgresql.service",
	}
	if !slices.Equal(svc.calls, wantCalls) {
		t.Errorf("services: %v, want %v", svc.calls, wantCalls)
	}
	fstab, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
	if want := "# static file system information\nUUID=1234 / ext4 errors=remount-ro 0 1\n"; string(fstab) != want {
		t.Errorf("fstab:\n%s", fstab)
	}
	if l := leftovers(t, root); len(l) > 0 {
		t.Errorf("left over: %v", l)
	}
	for _, want := range []string{"changed the mode of /data/ecs-ca to 0700; changed the owner of /data/ecs-ca to 1000:1000", "moved /var/lib/postgresql to /data/postgresql", "linked /var/lib/postgresql to /data/postgresql", "removed from /etc/fstab: LABEL=ecs-data"} {
		if !hasAction(res, want) {
			t.Errorf("no action %q", want)
		}
	}
	svc.calls = nil
	ensureUnchanged(t, opts)
	if len(svc.calls) > 0 {
		t.Errorf("second run: services %v", svc.calls)
	}
}

// mountTmpfs puts a separate filesystem on dir, so relocations onto it must copy.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "mount", "-t", "tmpfs", "tmpfs", dir)
	t.Cleanup(func() { sh(t, "umount", dir) })
}

// A relocation across filesystems copies with everything kept: owners, modes,
// symlinks, hard links.
func TestRelocationAcrossFilesystems(t *testing.T) {
	testtool.RequireRoot(t)
	testtool.Require(t, "mount", "umount", "cp")
	root := testRoot(t)
	mountTmpfs(t, filepath.Join(root, "data"))
	pg := filepath.Join(root, "var/lib/postgresql")
	mkdir(t, filepath.Join(pg, "15/main"), 0o700, 105, 109)
	write(t, filepath.Join(pg, "15/main/PG_VERSION"), "15\n")
	if err := os.Chown(filepath.Join(pg, "15/main/PG_VERSION"), 105, 109); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(pg, "15/main/PG_VERSION"), filepath.Join(pg, "15/hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("main/PG_VERSION", filepath.Join(pg, "15/symlink")); err != nil {
		t.Fatal(err)
	}
	res := ensure(t, Options{Root: root, Storage: ignoreBoth, Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations})
	if !hasAction(res, "moved /var/lib/postgresql to /data/postgresql") {
		t.Errorf("actions:\n%s", strings.Join(res.Actions, "\n"))
	}
	dst := filepath.Join(root, "data/postgresql/15")
	if uid, gid, mode := owner(t, filepath.Join(dst, "main")); uid != 105 || gid != 109 || mode != 0o700 {
		t.Errorf("15/main: %d:%d %04o", uid, gid, mode)
	}
	if uid, _, _ := owner(t, filepath.Join(dst, "main/PG_VERSION")); uid != 105 {
		t.Errorf("PG_VERSION owner %d", uid)
	}
	a, _ := os.Stat(filepath.Join(dst, "main/PG_VERSION"))
	b, _ := os.Stat(filepath.Join(dst, "hardlink"))
	if !os.SameFile(a, b) {
		t.Errorf("hard link not kept")
	}
	if got := readlink(t, filepath.Join(dst, "symlink")); got != "main/PG_VERSION" {
		t.Errorf("symlink: %q", got)
	}
	if got := readlink(t, pg); got != "../../data/postgresql" {
		t.Errorf("source links to %q", got)
	}
	if l := leftovers(t, root); len(l) > 0 {
		t.Errorf("left over: %v", l)
	}
}

// Each state a killed relocation can leave is finished by the next run.
func TestInterruptedRelocationConverges(t *testing.T) {
	testtool.RequireRoot(t)
	testtool.Require(t, "mount", "umount", "cp")
	for _, tc := range []struct {
		name     string
		state    func(t *testing.T, root string)
		services bool
	}{
		{"source renamed away", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "var/lib/postgresql.relocating/PG_VERSION"), "15\n")
		}, true},
		{"copy half written", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "var/lib/postgresql.relocating/PG_VERSION"), "15\n")
			write(t, filepath.Join(root, "data/postgresql.partial/PG_VERS"), "1")
		}, true},
		{"moved, not linked", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "var/lib/postgresql.relocating/PG_VERSION"), "15\n")
			write(t, filepath.Join(root, "data/postgresql/PG_VERSION"), "15\n")
		}, true},
		{"linked, old copy left", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "var/lib/postgresql.relocating/PG_VERSION"), "15\n")
			write(t, filepath.Join(root, "data/postgresql/PG_VERSION"), "15\n")
			if err := os.Symlink("../../data/postgresql", filepath.Join(root, "var/lib/postgresql")); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testRoot(t)
			mountTmpfs(t, filepath.Join(root, "data"))
			tc.state(t, root)
			svc := &recorder{}
			opts := Options{Root: root, Storage: ignoreBoth, Services: svc, Dirs: testDirs, Relocations: testRelocations}
			res := ensure(t, opts)
			t.Logf("actions:\n%s", strings.Join(res.Actions, "\n"))
			if got := readlink(t, filepath.Join(root, "var/lib/postgresql")); got != "../../data/postgresql" {
				t.Errorf("source links to %q", got)
			}
			if b, err := os.ReadFile(filepath.Join(root, "data/postgresql/PG_VERSION")); err != nil || string(b) != "15\n" {
				t.Errorf("PG_VERSION: %q %v", b, err)
			}
			if l := leftovers(t, root); len(l) > 0 {
				t.Errorf("left over: %v", l)
			}
			if got := slices.Contains(svc.calls, "stop postgresql.service"); got != tc.services {
				t.Errorf("services: %v", svc.calls)
			}
			ensureUnchanged(t, opts)
		})
	}
}

// A target that already holds data (a new root on an old data disk) wins: the
// source is kept aside, not merged and not lost.
func TestRelocationOntoDataKeepsBoth(t *testing.T) {
	testtool.RequireRoot(t)
	root := testRoot(t)
	write(t, filepath.Join(root, "data/postgresql/PG_VERSION"), "13\n")
	write(t, filepath.Join(root, "var/lib/postgresql/PG_VERSION"), "15\n")
	opts := Options{Root: root, Storage: ignoreBoth, Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations}
	res := ensure(t, opts)
	if !hasAction(res, "kept /var/lib/postgresql as /var/lib/postgresql.orig: /data/postgresql already holds data") {
		t.Errorf("actions:\n%s", strings.Join(res.Actions, "\n"))
	}
	for p, want := range map[string]string{"data/postgresql/PG_VERSION": "13\n", "var/lib/postgresql.orig/PG_VERSION": "15\n"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	if got := readlink(t, filepath.Join(root, "var/lib/postgresql")); got != "../../data/postgresql" {
		t.Errorf("source links to %q", got)
	}
	ensureUnchanged(t, opts)
}

// An interrupted relocation whose source came back is not guessed at.
func TestRelocationBothCopiesRefused(t *testing.T) {
	testtool.RequireRoot(t)
	root := testRoot(t)
	write(t, filepath.Join(root, "var/lib/postgresql.relocating/PG_VERSION"), "15\n")
	write(t, filepath.Join(root, "var/lib/postgresql/PG_VERSION"), "15\n")
	_, err := Ensure(context.Background(), Options{Root: root, Storage: ignoreBoth, Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations})
	if err == nil || !strings.Contains(err.Error(), "merge them by hand") {
		t.Errorf("error %v", err)
	}
}

// Owners named in the table must exist on the machine.
func TestUnknownOwner(t *testing.T) {
	testtool.RequireRoot(t)
	root := testRoot(t)
	write(t, filepath.Join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n")
	_, err := Ensure(context.Background(), Options{Root: root, Storage: ignoreBoth, Services: &recorder{}, Dirs: testDirs, Relocations: testRelocations})
	if err == nil || !strings.Contains(err.Error(), "owner of /data/postgresql: no user postgres in /etc/passwd") {
		t.Errorf("error %v", err)
	}
}
