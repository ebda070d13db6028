// Package atomicfile writes files so that readers see either the old content or the
// complete new content, never a half-written file: data goes to a temporary file in
// the target's directory (created with the final mode, so secrets are never readable
// by others), is synced, and is renamed over the target.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrExists is returned by Create with NoOverwrite when the target exists.
var ErrExists = errors.New("file exists")

// Options control how Write and Create treat the target.
type Options struct {
	Perm        os.FileMode // mode of the new file; 0600 when zero
	NoOverwrite bool        // fail with ErrExists instead of replacing the target
}

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, opt Options) error {
	return Write(path, opt, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write atomically replaces path with what fill writes. If fill fails, the target is
// untouched and the temporary file removed.
func Write(path string, opt Options, fill func(w io.Writer) error) error {
	f, err := Create(path, opt)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	return f.Commit()
}

// File is a pending atomic write; Commit publishes it, Abort discards it.
type File struct {
	*os.File
	target string
	opt    Options
	done   bool
}

// Create starts an atomic write of path. The temporary file is an *os.File so
// libraries that need a seekable file (ISO writers, …) can fill it.
func Create(path string, opt Options) (*File, error) {
	if opt.Perm == 0 {
		opt.Perm = 0o600
	}
	if opt.NoOverwrite {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s: %w", path, ErrExists)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	// CreateTemp makes 0600 files; widen only if asked, narrowing is never needed.
	if err := f.Chmod(opt.Perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, target: path, opt: opt}, nil
}

// Commit syncs and renames the temporary file onto the target.
func (f *File) Commit() error { return CommitAll(f) }

// CommitAll publishes files as one change, so that a failure publishes none of them:
// every temporary file is synced and closed and every target checked first, and only
// then are they renamed into place, one after the other. Renames within a directory
// do not fail for ordinary reasons (a full disk, a directory in the way), so the set
// is replaced together or, on an error before the renames, not at all; either way no
// temporary file is left.
func CommitAll(files ...*File) error {
	for _, f := range files {
		if f.done {
			return errors.New("atomicfile: already committed or aborted")
		}
	}
	// Aborting does nothing to the files already published.
	defer func() {
		for _, f := range files {
			f.Abort()
		}
	}()
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		st, err := os.Lstat(f.target)
		switch {
		case err == nil && st.IsDir():
			return fmt.Errorf("%s is a directory", f.target)
		case err == nil && f.opt.NoOverwrite:
			return fmt.Errorf("%s: %w", f.target, ErrExists)
		}
	}
	var published []string
	for _, f := range files {
		if err := f.publish(); err != nil {
			if len(published) > 0 {
				return fmt.Errorf("%w (already replaced: %s)", err, strings.Join(published, ", "))
			}
			return err
		}
		f.done = true
		published = append(published, f.target)
	}
	synced := map[string]bool{}
	for _, f := range files {
		if dir := filepath.Dir(f.target); !synced[dir] {
			synced[dir] = true
			if err := syncDir(dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish moves the closed temporary file onto the target.
func (f *File) publish() error {
	tmp := f.Name()
	if !f.opt.NoOverwrite {
		return os.Rename(tmp, f.target)
	}
	// Link fails if the target appeared meanwhile; rename would replace it.
	if err := os.Link(tmp, f.target); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", f.target, ErrExists)
		}
		return err
	}
	os.Remove(tmp) // the target holds the data now; a stray link only wastes a name
	return nil
}

// Abort removes the temporary file; after Commit it does nothing.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
