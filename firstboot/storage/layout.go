package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"golang.org/x/sys/unix"
)

// Suffixes of the names a relocation works under, next to source and target, so an
// interrupted one is recognised and finished.
const (
	relocatingSuffix = ".relocating" // the source, renamed away while it is moved
	partialSuffix    = ".partial"    // the target's copy while it is written
	origSuffix       = ".orig"       // a source kept because the target already had data
)

// layout makes the directories the services keep their state in, with their owners
// and modes.
func (e *ensurer) layout() error {
	for _, d := range e.dirs {
		did, err := e.m.EnsureDir(d)
		if err != nil {
			return err
		}
		if did != "" {
			e.did("%s", did)
		}
	}
	return nil
}

// relocate runs the relocations of the table.
func (e *ensurer) relocate(ctx context.Context) error {
	for _, r := range e.relocations {
		if err := e.relocateOne(ctx, r); err != nil {
			return fmt.Errorf("relocating %s to %s: %w", r.Source, r.Target, err)
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
func (e *ensurer) relocateOne(ctx context.Context, r services.Relocation) error {
	src, dst := e.path(r.Source), e.path(r.Target)
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
		return fmt.Errorf("%s is not a directory", r.Source)
	}
	if srcExists && pending {
		return fmt.Errorf("both %s and %s exist: an interrupted relocation's source was made again; merge them by hand", r.Source, r.Source+relocatingSuffix)
	}
	if !srcExists && !pending {
		return e.link(r, src)
	}

	stopped, err := e.services.Stop(ctx, r.Units)
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
			return fmt.Errorf("%s already holds data and %s exists: cannot keep %s aside", r.Target, r.Source+origSuffix, r.Source)
		}
		if err := os.Rename(src, keep); err != nil {
			return err
		}
		e.did("kept %s as %s: %s already holds data", r.Source, r.Source+origSuffix, r.Target)
	case srcExists:
		if err := os.Rename(src, moving); err != nil {
			return err
		}
		fallthrough
	case empty:
		if err := moveOnto(ctx, moving, dst); err != nil {
			return err
		}
		e.did("moved %s to %s", r.Source, r.Target)
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

// link makes source a symlink to the target, when source's directory exists.
func (e *ensurer) link(r services.Relocation, src string) error {
	if _, err := os.Lstat(src); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Dir(src)); err != nil {
		return nil // nothing there would use it
	}
	// Relative, so the link resolves inside the tree also when it is not mounted as /.
	target, err := filepath.Rel(filepath.Dir(r.Source), r.Target)
	if err != nil {
		return err
	}
	if err := os.Symlink(target, src); err != nil {
		return err
	}
	e.did("linked %s to %s", r.Source, r.Target)
	return nil
}

// removeMoved deletes what is left of a moved source once the symlink is in place.
func (e *ensurer) removeMoved(r services.Relocation, moving string) error {
	if _, err := os.Lstat(moving); os.IsNotExist(err) {
		return nil
	}
	if err := os.RemoveAll(moving); err != nil {
		return err
	}
	e.did("removed %s, the old copy of %s", r.Source+relocatingSuffix, r.Target)
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
