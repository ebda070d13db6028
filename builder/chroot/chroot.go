// Package chroot prepares a root filesystem directory for running package scripts and
// Packer provisioners in it (proc, sys, a private /dev, /run, working DNS, services kept
// from starting) and takes all of it down again, so a build leaves nothing mounted.
package chroot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ethikkom/ecs-appliance/internal/mountinfo"
)

// Session is a prepared root. Close undoes everything Enter did.
type Session struct {
	Root string

	mounts   []string       // mount points in the order they were mounted
	restores []func() error // file changes to undo, in the order they were made
	closed   bool
}

// policyRC makes invoke-rc.d refuse to start or restart any service in the root
// (Debian policy §9.3.3): package postinsts must not start daemons on the build host.
const policyRC = "#!/bin/sh\n# Written by the ecs-image builder while it runs commands in this root.\nexit 101\n"

// Enter mounts the pseudo filesystems into root, copies the build host's resolver
// configuration in and installs a policy-rc.d. On error nothing is left behind.
func Enter(root string) (s *Session, err error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s = &Session{Root: abs}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
			s = nil
		}
	}()
	// A fresh /dev on tmpfs instead of a bind of the host's: scripts in the root see
	// only the harmless nodes, and nothing can propagate back to the host's /dev.
	steps := []func() error{
		func() error { return s.mount("proc", "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "") },
		func() error {
			return s.mount("sysfs", "sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		},
		func() error { return s.mount("tmpfs", "dev", "tmpfs", unix.MS_NOSUID, "mode=0755,size=16m") },
		s.populateDev,
		func() error {
			return s.mount("devpts", "dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
		},
		func() error { return s.mount("tmpfs", "dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777") },
		// An empty /run hides no host sockets, so systemctl and systemd-run inside find
		// no running systemd and cannot start units on the build host.
		func() error { return s.mount("tmpfs", "run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755") },
		func() error { return os.MkdirAll(filepath.Join(abs, "run/lock"), 0o1777) },
		func() error {
			host, err := os.ReadFile("/etc/resolv.conf")
			if err != nil {
				return fmt.Errorf("reading the build host's resolver configuration: %w", err)
			}
			return s.replaceFile("etc/resolv.conf", host, 0o644)
		},
		func() error { return s.replaceFile("usr/sbin/policy-rc.d", []byte(policyRC), 0o755) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (s *Session) mount(source, target, fstype string, flags uintptr, data string) error {
	dir := filepath.Join(s.Root, target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(source, dir, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, dir, err)
	}
	s.mounts = append(s.mounts, dir)
	return nil
}

func (s *Session) populateDev() error {
	dev := filepath.Join(s.Root, "dev")
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		if err := unix.Mknod(filepath.Join(dev, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", n.name, err)
		}
		// mknod honours the umask; the nodes must be world-writable like the real ones.
		if err := os.Chmod(filepath.Join(dev, n.name), 0o666); err != nil {
			return err
		}
	}
	links := map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// replaceFile puts data at rel inside the root and registers the undo: the original
// (file, symlink or nothing) comes back unless something in the root replaced our
// version in the meantime, e.g. a package that manages resolv.conf itself.
func (s *Session) replaceFile(rel string, data []byte, mode fs.FileMode) error {
	p := filepath.Join(s.Root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var undo func() error
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		undo = func() error { return os.Remove(p) }
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		undo = func() error { return replaceWith(p, func(tmp string) error { return os.Symlink(target, tmp) }) }
	case fi.Mode().IsRegular():
		old, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		undo = func() error { return writeAtomic(p, old, fi.Mode().Perm()) }
	default:
		return fmt.Errorf("%s is neither a file nor a symlink", p)
	}
	if err := writeAtomic(p, data, mode); err != nil {
		return err
	}
	s.restores = append(s.restores, func() error {
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			return nil // replaced inside the root: that change wins
		}
		if now, err := os.ReadFile(p); err != nil || !bytes.Equal(now, data) {
			return nil
		}
		return undo()
	})
	return nil
}

func writeAtomic(p string, data []byte, mode fs.FileMode) error {
	return replaceWith(p, func(tmp string) error {
		if err := os.WriteFile(tmp, data, mode); err != nil {
			return err
		}
		return os.Chmod(tmp, mode)
	})
}

// replaceWith creates tmp next to p and renames it over p: a symlink at p is replaced,
// never followed out of the root.
func replaceWith(p string, create func(tmp string) error) error {
	tmp := p + ".ecs-image-tmp"
	_ = os.Remove(tmp)
	if err := create(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Close stops every process still running inside the root, restores the files Enter
// replaced and unmounts everything, innermost first. It is safe to call twice.
func (s *Session) Close() error {
	if s == nil || s.closed {
		return nil
	}
	s.closed = true
	errs := []error{killInside(s.Root)}
	for i := len(s.restores) - 1; i >= 0; i-- {
		errs = append(errs, s.restores[i]())
	}
	for i := len(s.mounts) - 1; i >= 0; i-- {
		errs = append(errs, unmount(s.Root, s.mounts[i]))
	}
	return errors.Join(errs...)
}

func unmount(root, dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		// A process that escaped the kill (forked meanwhile): kill again, then detach so
		// the mount is gone from the namespace even if the process lingers.
		_ = killInside(root)
		if err = unix.Unmount(dir, 0); err != nil {
			err = unix.Unmount(dir, unix.MNT_DETACH)
		}
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// killInside SIGKILLs every process whose root directory is root or below it and
// waits (briefly) for them to go.
func killInside(root string) error {
	for attempt := 0; attempt < 50; attempt++ {
		pids := processesInside(root)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("processes still running in %s: %v", root, processesInside(root))
}

func processesInside(root string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		r, err := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		if err == nil && (r == root || strings.HasPrefix(r, root+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// MountsUnder lists the mount points at or below dir.
func MountsUnder(dir string) ([]string, error) {
	mounts, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	return out, nil
}

// Sweep kills every process inside root and unmounts everything mounted below it,
// deepest first: the safety net after a tool that mounts on its own (mmdebstrap,
// debootstrap) was interrupted.
func Sweep(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	errs := []error{killInside(abs)}
	mounts, err := MountsUnder(abs)
	if err != nil {
		return err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		errs = append(errs, unmount(abs, m))
	}
	return errors.Join(errs...)
}
