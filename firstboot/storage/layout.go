package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/ethikkom/ecs-appliance/firstboot/accounts"
	"golang.org/x/sys/unix"
)

// dirSpec is a directory the appliance's services keep their state in (the original's
// salt/appliance/storage/setup.sls).
type dirSpec struct {
	path  string
	owner string      // user and group of that name, or a number for both ids
	mode  os.FileMode // 0: 0755 when made, left as it is after
}

var dirs = []dirSpec{
	{"/volatile/docker", "root", 0},
	{"/volatile/ecs-backup-test", "app", 0},
	{"/volatile/ecs-cache", "1000", 0},
	{"/volatile/redis", "1000", 0},
	{"/volatile/prometheus", "1000", 0},
	{"/volatile/alertmanager", "1000", 0},
	{"/volatile/grafana", "472", 0}, // the grafana image's uid
	{"/volatile/duplicity", "root", 0},
	{"/data/etc", "app", 0},
	{"/data/ecs-ca", "1000", 0o700},
	{"/data/ecs-gpg", "1000", 0o700},
	{"/data/ecs-pgdump", "app", 0},
	{"/data/ecs-storage-vault", "1000", 0},
	{"/data/postgresql", "postgres", 0},
}

// relocation moves a service's state from the root filesystem onto a volume and leaves
// a symlink behind.
type relocation struct {
	source, target string
	units          []string // stopped around the move
}

var relocations = []relocation{
	{"/var/lib/docker", "/volatile/docker", []string{"cadvisor.service", "docker.socket", "docker.service"}},
	{"/app/ecs-cache", "/volatile/ecs-cache", nil},
	{"/app/prometheus", "/volatile/prometheus", nil},
	{"/app/alertmanager", "/volatile/alertmanager", nil},
	{"/app/grafana", "/volatile/grafana", nil},
	{"/root/.cache/duplicity", "/volatile/duplicity", nil},
	{"/var/lib/postgresql", "/data/postgresql", []string{"postgresql.service"}},
	{"/app/etc", "/data/etc", nil},
	{"/app/ecs-ca", "/data/ecs-ca", nil},
	{"/app/ecs-gpg", "/data/ecs-gpg", nil},
	{"/app/ecs-storage-vault", "/data/ecs-storage-vault", nil},
}

// Suffixes of the names a relocation works under, next to source and target, so an
// interrupted one is recognised and finished.
const (
	relocatingSuffix = ".relocating" // the source, renamed away while it is moved
	partialSuffix    = ".partial"    // the target's copy while it is written
	origSuffix       = ".orig"       // a source kept because the target already had data
)

// layout makes the directories of the table with their owners and modes.
func (e *ensurer) layout() error {
	ids := accounts.Load(e.path("/"))
	for _, d := range dirs {
		uid, gid, err := ids.Resolve(d.owner)
		if err != nil {
			return fmt.Errorf("owner of %s: %w", d.path, err)
		}
		p := e.path(d.path)
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			mode := d.mode
			if mode == 0 {
				mode = 0o755
			}
			if err := os.Mkdir(p, mode); err != nil {
				return err
			}
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
			if err := os.Chmod(p, mode); err != nil { // not the umask's
				return err
			}
			e.did("created %s (owner %s, mode %04o)", d.path, d.owner, mode)
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", d.path)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid || int(st.Gid) != gid {
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
			e.did("changed the owner of %s to %s (%d:%d)", d.path, d.owner, uid, gid)
		}
		if d.mode != 0 && fi.Mode().Perm() != d.mode {
			if err := os.Chmod(p, d.mode); err != nil {
				return err
			}
			e.did("changed the mode of %s to %04o", d.path, d.mode)
		}
	}
	return nil
}

// relocate runs the relocations of the table.
func (e *ensurer) relocate(ctx context.Context) error {
	for _, r := range relocations {
		if err := e.relocateOne(ctx, r); err != nil {
			return fmt.Errorf("relocating %s to %s: %w", r.source, r.target, err)
		}
	}
	return nil
}

// relocateOne moves source into the (empty) target and links source to it. Each step
// leaves a state the next run recognises: source renamed to source.relocating (same
// directory, atomic), moved onto the target by one rename or by a copy to
// target.partial renamed over the target, then the symlink, then the old copy removed.
// A target that already holds data (a reused data disk) wins: the source is kept as
// source.orig.
func (e *ensurer) relocateOne(ctx context.Context, r relocation) error {
	src, dst := e.path(r.source), e.path(r.target)
	moving := src + relocatingSuffix
	if fi, err := os.Lstat(dst); err != nil || !fi.IsDir() {
		return nil // only onto a target directory, as in the original
	}
	sfi, serr := os.Lstat(src)
	if serr != nil && !os.IsNotExist(serr) {
		return serr
	}
	_, merr := os.Lstat(moving)
	pending := merr == nil
	srcExists := serr == nil
	if srcExists && sfi.Mode()&os.ModeSymlink != 0 {
		return e.removeMoved(r, moving)
	}
	if srcExists && !sfi.IsDir() {
		return fmt.Errorf("%s is not a directory", r.source)
	}
	if srcExists && pending {
		return fmt.Errorf("both %s and %s exist: an interrupted relocation's source was made again; merge them by hand", r.source, r.source+relocatingSuffix)
	}
	if !srcExists && !pending {
		return e.link(r, src)
	}

	stopped, err := e.services.Stop(ctx, r.units)
	if err != nil {
		return err
	}
	for _, u := range stopped {
		e.did("stopped %s", u)
	}
	empty, err := isEmpty(dst)
	if err != nil {
		return err
	}
	switch {
	case srcExists && !empty:
		keep := src + origSuffix
		if _, err := os.Lstat(keep); err == nil {
			return fmt.Errorf("%s already holds data and %s exists: cannot keep %s aside", r.target, r.source+origSuffix, r.source)
		}
		if err := os.Rename(src, keep); err != nil {
			return err
		}
		e.did("kept %s as %s: %s already holds data", r.source, r.source+origSuffix, r.target)
	case srcExists:
		if err := os.Rename(src, moving); err != nil {
			return err
		}
		fallthrough
	case empty:
		if err := moveOnto(ctx, moving, dst); err != nil {
			return err
		}
		e.did("moved %s to %s", r.source, r.target)
	}
	if err := e.link(r, src); err != nil {
		return err
	}
	if err := e.removeMoved(r, moving); err != nil {
		return err
	}
	if len(stopped) > 0 {
		start := slices.Clone(stopped)
		slices.Reverse(start)
		if err := e.services.Start(ctx, start); err != nil {
			return err
		}
		for _, u := range start {
			e.did("started %s", u)
		}
	}
	return nil
}

// link makes source a symlink to the target (as seen from the machine's root), when
// source's directory exists.
func (e *ensurer) link(r relocation, src string) error {
	if _, err := os.Lstat(src); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Dir(src)); err != nil {
		return nil // nothing there would use it
	}
	if err := os.Symlink(r.target, src); err != nil {
		return err
	}
	e.did("linked %s to %s", r.source, r.target)
	return nil
}

// removeMoved deletes what is left of a moved source once the symlink is in place.
func (e *ensurer) removeMoved(r relocation, moving string) error {
	if _, err := os.Lstat(moving); os.IsNotExist(err) {
		return nil
	}
	if err := os.RemoveAll(moving); err != nil {
		return err
	}
	e.did("removed %s, the old copy of %s", r.source+relocatingSuffix, r.target)
	return nil
}

// moveOnto replaces the empty directory dst with src: a rename on one filesystem, else
// a copy (cp -a keeps owners, modes, times, links, xattrs and device nodes) to
// dst.partial, flushed to disk and renamed over dst.
func moveOnto(ctx context.Context, src, dst string) error {
	err := replaceDir(src, dst)
	if err == nil || !errors.Is(err, unix.EXDEV) {
		return err
	}
	partial := dst + partialSuffix
	if err := os.RemoveAll(partial); err != nil { // a killed run's
		return err
	}
	if _, err := run(ctx, "cp", "-a", "--no-target-directory", src, partial); err != nil {
		return err
	}
	if err := syncFS(partial); err != nil {
		return err
	}
	return replaceDir(partial, dst)
}

// replaceDir renames src over the empty directory dst, atomically; os.Rename refuses
// to replace a directory.
func replaceDir(src, dst string) error {
	if err := unix.Rename(src, dst); err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}
