package chroot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// Env is the whole environment of commands run in the root: nothing of the build
// host's environment (tokens, proxies meant for the host) leaks in.
var Env = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"DEBIAN_FRONTEND=noninteractive",
	"DEBCONF_NONINTERACTIVE_SEEN=true",
	// systemctl edits unit symlinks offline instead of looking for a manager.
	"SYSTEMD_OFFLINE=1",
}

// Communicator is a Packer communicator that runs commands and moves files in a
// root prepared by Enter. Commands run as root with /bin/sh -c; file operations run
// inside the root too, so symlinks there resolve as they will on the booted system.
type Communicator struct {
	Root string
}

var _ packersdk.Communicator = (*Communicator)(nil)

// Communicator returns a communicator for the session's root.
func (s *Session) Communicator() *Communicator { return &Communicator{Root: s.Root} }

// command builds a process that runs argv[0] inside the root.
func (c *Communicator) command(argv ...string) *exec.Cmd {
	cmd := &exec.Cmd{
		Path: argv[0], // resolved after the chroot, inside the root
		Args: argv,
		Env:  Env,
		Dir:  "/",
		SysProcAttr: &syscall.SysProcAttr{
			Chroot:  c.Root,
			Setpgid: true, // so cancelling kills the whole process group
		},
	}
	return cmd
}

// Start runs remote.Command with /bin/sh -c inside the root and reports its exit
// status on remote when it ends. Cancelling ctx kills the command's process group.
func (c *Communicator) Start(ctx context.Context, remote *packersdk.RemoteCmd) error {
	cmd := c.command("/bin/sh", "-c", remote.Command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = remote.Stdin, remote.Stdout, remote.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chroot %s: %w", c.Root, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	go func() {
		err := cmd.Wait()
		close(done)
		status := 0
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			status = exit.ExitCode()
			if status < 0 { // killed by a signal
				status = 128 + int(exit.Sys().(syscall.WaitStatus).Signal())
			}
		case err != nil:
			status = packersdk.CmdDisconnect
		}
		remote.SetExited(status)
	}()
	return nil
}

// run runs argv inside the root with the given stdin and stdout and fails with its
// stderr when it exits non-zero.
func (c *Communicator) run(stdin io.Reader, stdout io.Writer, argv ...string) error {
	cmd := c.command(argv...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s in %s: %w: %s", strings.Join(argv[:min(len(argv), 3)], " "), c.Root, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Run runs a shell command inside the root and returns its standard output.
func (c *Communicator) Run(script string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	err := c.run(nil, &out, append([]string{"/bin/sh", "-c", script, "sh"}, args...)...)
	return out.Bytes(), err
}

// Upload writes r to dst inside the root, with fi's permissions when given. Like scp,
// it does not create missing parent directories.
func (c *Communicator) Upload(dst string, r io.Reader, fi *os.FileInfo) error {
	mode := "0644"
	if fi != nil {
		mode = fmt.Sprintf("%04o", (*fi).Mode().Perm())
	}
	return c.run(r, io.Discard, "/bin/sh", "-c", `cat > "$1" && chmod "$2" "$1"`, "sh", dst, mode)
}

// Download copies the file src inside the root to w.
func (c *Communicator) Download(src string, w io.Writer) error {
	return c.run(nil, w, "/bin/cat", "--", src)
}

// UploadDir copies the local directory src into dst inside the root, owned by root.
// As with rsync, "dir" creates dst/dir and "dir/" copies only its contents. exclude
// holds glob patterns matched against each path relative to src and its base name.
func (c *Communicator) UploadDir(dst, src string, exclude []string) error {
	base := src
	prefix := ""
	if !strings.HasSuffix(src, "/") {
		prefix = filepath.Base(src)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, base, prefix, exclude)) }()
	err := c.run(pr, io.Discard, "/bin/sh", "-c", `mkdir -p "$1" && exec tar -x -f - --no-same-owner -C "$1"`, "sh", dst)
	pr.CloseWithError(err) // unblocks writeTar if tar died early
	return err
}

// DownloadDir copies the contents of src inside the root into the local directory dst
// (created if missing). exclude works as for UploadDir.
func (c *Communicator) DownloadDir(src, dst string, exclude []string) error {
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- c.run(nil, pw, "/bin/tar", "-c", "-f", "-", "-C", src, ".")
		pw.Close()
	}()
	xerr := extractTar(pr, dst, exclude)
	if xerr == nil {
		_, _ = io.Copy(io.Discard, pr) // tar pads its output past the end marker
	}
	pr.CloseWithError(xerr)
	return errors.Join(<-errc, xerr)
}

func excluded(rel string, exclude []string) bool {
	for _, pat := range exclude {
		if m, _ := filepath.Match(pat, rel); m {
			return true
		}
		if m, _ := filepath.Match(pat, filepath.Base(rel)); m {
			return true
		}
	}
	return false
}

func writeTar(w io.Writer, src, prefix string, exclude []string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && excluded(rel, exclude) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		if name == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func extractTar(r io.Reader, dst string, exclude []string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rel := filepath.Clean(hdr.Name)
		if rel == "." || excluded(rel, exclude) {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("refusing %q from the root: outside the target directory", hdr.Name)
		}
		p := filepath.Join(dst, rel)
		// Never write through a symlink that an earlier entry created.
		if err := noSymlinkBetween(dst, filepath.Dir(p)); err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|syscall.O_NOFOLLOW, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(p)
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
		}
	}
}

func noSymlinkBetween(base, dir string) error {
	rel, err := filepath.Rel(base, dir)
	if err != nil || rel == "." {
		return err
	}
	p := base
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("refusing to write below symlink %s", p)
		}
	}
	return nil
}
