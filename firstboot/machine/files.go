package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

// File is a file the agent owns: its whole content, mode and owner.
type File struct {
	Path  string      // absolute on the machine
	Data  []byte      // the whole content
	Mode  os.FileMode // 0644 when zero
	Owner string      // "user", "user:group" or "uid"; "" is root
	// Check, when set, validates the new content before it replaces the file: it gets
	// the path of a complete candidate file next to the target. An error leaves the
	// old file in place. Under a root other than "/" the checker must look up the paths
	// the file names inside the root (Machine.Path).
	Check func(ctx context.Context, m *Machine, candidate string) error
}

// WriteFile makes f's path hold f's content, mode and owner, writing only what differs,
// atomically (a reader sees the old or the new file). It reports whether anything
// changed; every change is reported on the machine's output.
func (m *Machine) WriteFile(ctx context.Context, f File) (bool, error) {
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	uid, gid, err := m.owner(f.Owner)
	if err != nil {
		return false, fmt.Errorf("%s: owner: %w", f.Path, err)
	}
	p := m.Path(f.Path)
	cur, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	// A symlink is replaced by the file even when it points at the same content: the
	// file is ours, not whatever the link's target becomes later.
	if err == nil && bytes.Equal(cur, f.Data) && !isSymlink(p) {
		did, err := ensureAttrs(f.Path, p, mode, uid, gid)
		if did != "" {
			m.Out.Detail("%s", did)
		}
		return did != "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	// The candidate is complete, with its final mode and owner, before anyone checks
	// or sees it; the rename then replaces the old file in one step.
	tmp, err := atomicfile.Create(p, atomicfile.Options{Perm: mode})
	if err != nil {
		return false, err
	}
	defer tmp.Abort()
	if _, err := tmp.Write(f.Data); err != nil {
		return false, err
	}
	if err := tmp.Chown(uid, gid); err != nil {
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		return false, err
	}
	if f.Check != nil {
		if err := f.Check(ctx, m, tmp.Name()); err != nil {
			return false, fmt.Errorf("%s: rejected, the old file stays: %w", f.Path, err)
		}
	}
	if err := tmp.Commit(); err != nil {
		return false, err
	}
	m.Out.Detail("wrote %s", f.Path)
	return true, nil
}

// ensureAttrs fixes the mode and owner of an existing file or directory and says
// what it changed ("" when nothing).
func ensureAttrs(name, p string, mode os.FileMode, uid, gid int) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	var did []string
	if fi.Mode().Perm() != mode {
		if err := os.Chmod(p, mode); err != nil {
			return "", err
		}
		did = append(did, fmt.Sprintf("changed the mode of %s to %04o", name, mode))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != uid || int(st.Gid) != gid) {
		if err := os.Lchown(p, uid, gid); err != nil {
			return "", err
		}
		did = append(did, fmt.Sprintf("changed the owner of %s to %d:%d", name, uid, gid))
	}
	return strings.Join(did, "; "), nil
}

// Dir is a directory the agent owns.
type Dir struct {
	Path  string
	Owner string      // as File.Owner
	Mode  os.FileMode // 0755 when made if zero; left as it is after
}

// EnsureDir makes d with its owner and mode, or corrects them, and says what it did
// ("" when nothing). Missing parents are made as mkdir -p makes them.
func (m *Machine) EnsureDir(d Dir) (string, error) {
	uid, gid, err := m.owner(d.Owner)
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", d.Path, err)
	}
	p := m.Path(d.Path)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		mode := d.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.Mkdir(p, mode); err != nil {
			return "", err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return "", err
		}
		if err := os.Chmod(p, mode); err != nil { // not the umask's
			return "", err
		}
		return fmt.Sprintf("created %s (owner %s, mode %04o)", d.Path, ownerName(d.Owner), mode), nil
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", d.Path)
	}
	if d.Mode == 0 {
		d.Mode = fi.Mode().Perm()
	}
	return ensureAttrs(d.Path, p, d.Mode, uid, gid)
}

func isSymlink(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// EnsureLink makes path a symbolic link to target, replacing a link or file that is
// there (never a directory), and says what it did ("" when nothing).
func (m *Machine) EnsureLink(target, path string) (string, error) {
	p := m.Path(path)
	if cur, err := os.Readlink(p); err == nil && cur == target {
		return "", nil
	}
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return "", fmt.Errorf("%s is a directory, not a link", path)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	// A new link beside the old path, then one rename: never a moment without it.
	tmp := p + ".appliance-new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return fmt.Sprintf("linked %s to %s", path, target), nil
}

// Remove deletes the file at path if it exists, reporting it.
func (m *Machine) Remove(path string) (bool, error) {
	err := os.Remove(m.Path(path))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m.Out.Detail("removed %s", path)
	return true, nil
}

func (m *Machine) owner(owner string) (int, int, error) {
	if owner == "" || owner == "root" || owner == "root:root" {
		return 0, 0, nil // also in a tree without etc/passwd
	}
	return m.Accounts().Resolve(owner)
}

func ownerName(owner string) string {
	if owner == "" {
		return "root"
	}
	return owner
}

// Localize is text (a configuration to check on the host) with the machine paths it
// names moved into the root, when the machine is not the running system.
func (m *Machine) Localize(text []byte, paths ...string) []byte {
	if m.Live() {
		return text
	}
	for _, p := range paths {
		if p != "" {
			text = bytes.ReplaceAll(text, []byte(p), []byte(m.Path(p)))
		}
	}
	return text
}

// Scratch writes files (name → content) into a new temporary directory (0700) for a
// checker to run its tool on, and returns it with the function that removes it.
func Scratch(files map[string][]byte) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", "appliance-check-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			remove()
			return "", nil, err
		}
	}
	return dir, remove, nil
}
