package appliance

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sshcomm "github.com/hashicorp/packer-plugin-sdk/sdk-internals/communicator/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// The test target: a Debian root filesystem bootstrapped with mmdebstrap, reached over
// SSH from a throwaway sshd on 127.0.0.1 that chroots root's sessions into it. This
// machine's own configuration is never touched.

const testSuite = "trixie" // the default base, debian-trixie

// bootstrapRoot makes a minimal Debian root and prepares it as a builder would: services
// are kept from starting (they would bind ports of this machine) and /proc is mounted.
func bootstrapRoot(t *testing.T) string {
	t.Helper()
	testtool.RequireRoot(t)
	testtool.Require(t, "mmdebstrap")
	mirror := hostMirror(t)
	root, err := os.MkdirTemp(chrootParent(t), "ecs-provision-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(filepath.Join(root, "proc"), syscall.MNT_DETACH)
		_ = os.RemoveAll(root)
	})
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.Command("mmdebstrap", "--variant=minbase", "--include=ca-certificates", testSuite, root, mirror).CombinedOutput()
	if err != nil {
		t.Fatalf("mmdebstrap %s: %v\n%s", testSuite, err, out)
	}
	t.Logf("bootstrapped %s from %s in %s", testSuite, mirror, time.Since(start).Round(time.Second))
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("proc", filepath.Join(root, "proc"), "proc", 0, ""); err != nil {
		t.Fatal(err)
	}
	return root
}

// chrootParent is a directory sshd accepts above a ChrootDirectory: every component
// owned by root and writable by nobody else (so not /tmp).
func chrootParent(t *testing.T) string {
	for _, dir := range []string{os.TempDir(), "/run"} {
		if rootOwnedPath(dir) {
			return dir
		}
	}
	t.Fatal("no root-owned, non-world-writable directory for the test chroot")
	return ""
}

func rootOwnedPath(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// hostMirror is the Debian mirror this machine's apt uses (never a hard-coded host).
func hostMirror(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, entry := range strings.Split(string(data), "\n\n") {
			var uri string
			main := false
			for _, line := range strings.Split(entry, "\n") {
				if v, ok := strings.CutPrefix(line, "URIs:"); ok {
					uri = strings.Fields(v)[0]
				}
				if v, ok := strings.CutPrefix(line, "Suites:"); ok {
					for _, s := range strings.Fields(v) {
						main = main || !strings.Contains(s, "-")
					}
				}
			}
			if uri != "" && main && !strings.Contains(uri, "security") {
				return uri
			}
		}
	}
	if f, err := os.Open("/etc/apt/sources.list"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 3 && fields[0] == "deb" && !strings.Contains(fields[2], "-") {
				return fields[1]
			}
		}
	}
	testtool.Missing(t, "no Debian mirror in this machine's apt sources")
	return ""
}

// sshTarget is a throwaway sshd chrooting root into a directory.
type sshTarget struct {
	Addr    string
	Port    int
	KeyFile string // the client's private key (OpenSSH PEM)
	signer  ssh.Signer
	hostKey ssh.PublicKey
}

func startSSHD(t *testing.T, root string) *sshTarget {
	t.Helper()
	paths := testtool.Require(t, "sshd", "ssh-keygen")
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command(paths[1], "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "client_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testtool.FreeAddress(t)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	// internal-sftp: the chroot has no scp or sftp-server of its own.
	cfg := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile none
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile %s
StrictModes no
ChrootDirectory %s
Subsystem sftp internal-sftp
LogLevel ERROR
`, port, hostKey, filepath.Join(dir, "authorized_keys"), root)
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd insists on its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(paths[0], "-D", "-e", "-f", cfgFile)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	// Session processes outlive the listener until the client hangs up, holding the pipe.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && log.Len() > 0 {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pubData, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
	if err != nil {
		t.Fatal(err)
	}
	return &sshTarget{Addr: addr, Port: port, KeyFile: keyFile, signer: signer, hostKey: hk}
}

// Communicator is Packer's own SSH communicator connected to the target.
func (s *sshTarget) Communicator(t *testing.T) *sshcomm.Config {
	return &sshcomm.Config{
		SSHConfig: &ssh.ClientConfig{
			User:            "root",
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
			HostKeyCallback: ssh.FixedHostKey(s.hostKey),
		},
		Connection:             func() (net.Conn, error) { return net.Dial("tcp", s.Addr) },
		UseSftp:                true,
		DisableAgentForwarding: true,
		HandshakeTimeout:       10 * time.Second,
	}
}

// snapshot records every entry of the root except the API filesystems and scratch
// space: type, mode, owner, size, link target and the modification time of files, so a
// rewrite with the same content shows too.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	skip := map[string]bool{"proc": true, "sys": true, "dev": true, "run": true, "tmp": true}
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && skip[rel] {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			desc += fmt.Sprintf(" %d %d", fi.Size(), fi.ModTime().UnixNano())
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func diffSnapshots(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, fmt.Sprintf("changed %s: %s => %s", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	return d
}

// inRoot runs a command chrooted into root.
func inRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chroot %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
