package storage

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ethikkom/ecs-appliance/internal/mountinfo"
)

// mountPoint makes the volume's directory and reports whether fs must be mounted on
// it; it runs before fstab is written, so that an entry never points at a directory
// it must not be mounted on.
func (e *ensurer) mountPoint(v volume, fs fsInfo) (bool, error) {
	dir := e.path(v.mount)
	fi, err := os.Lstat(dir)
	switch {
	case os.IsNotExist(err):
		if err := os.Mkdir(dir, 0o755); err != nil {
			return false, err
		}
		e.did("created %s", v.mount)
	case err != nil:
		return false, err
	case !fi.IsDir():
		return false, fmt.Errorf("%s is not a directory", v.mount)
	}
	if v.ignore {
		return false, nil
	}
	want, err := deviceNumber(fs.Device)
	if err != nil {
		return false, err
	}
	mounted, dev, err := mountedAt(dir)
	if err != nil {
		return false, err
	}
	if mounted {
		if dev != want {
			return false, fmt.Errorf("%s is a mount of device %d:%d, not of %s (%s)", v.mount, unix.Major(dev), unix.Minor(dev), fs.Device, v.label)
		}
		return false, nil
	}
	// Mounting over files would hide them: they are the admin's to move.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("not mounting %s on %s: the directory holds %d entries on the root filesystem (e.g. %s); move them away first", v.label, v.mount, len(entries), entries[0].Name())
	}
	return true, nil
}

// mountVolume mounts the volume's filesystem.
func (e *ensurer) mountVolume(ctx context.Context, v volume, fs fsInfo) error {
	if err := e.mount(ctx, fs.Device, e.path(v.mount), fs.Type); err != nil {
		return fmt.Errorf("mounting %s (%s) on %s: %w", fs.Device, v.label, v.mount, err)
	}
	e.mounted = append(e.mounted, fmt.Sprintf("mounted %s (%s) on %s", fs.Device, v.label, v.mount))
	return nil
}

// mountCommand is the production MountFunc.
func mountCommand(ctx context.Context, device, target, fstype string) error {
	_, err := run(ctx, "mount", "-t", fstype, device, target)
	return err
}

func deviceNumber(dev string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", dev, err)
	}
	return st.Rdev, nil
}

// mountedAt reports whether dir is a mount point and the device of the topmost mount.
func mountedAt(dir string) (bool, uint64, error) {
	mounts, err := mountinfo.Read()
	if err != nil {
		return false, 0, err
	}
	var found bool
	var dev uint64
	for _, m := range mounts {
		if m.Point == dir {
			// Later lines are mounted over earlier ones.
			found, dev = true, unix.Mkdev(m.Major, m.Minor)
		}
	}
	return found, dev, nil
}
