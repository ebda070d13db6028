// Package bootstrap makes the base root filesystem of an image with mmdebstrap (or
// debootstrap where the base needs it), checked against the base's archive keyring,
// and keeps it as a tarball keyed by everything that went into it, so the next build
// of the same base from the same mirror only unpacks it.
package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/ethikkom/ecs-appliance/builder/chroot"
	"github.com/ethikkom/ecs-appliance/builder/mirror"
	"github.com/ethikkom/ecs-appliance/images"
)

// formatVersion changes whenever the way a base is made changes, so old cache
// entries are not reused for a different result.
const formatVersion = 1

// ModulesFile is where the base's initramfs modules are listed inside the root:
// initramfs-tools reads /usr/share/initramfs-tools/modules.d/*, which, unlike
// /etc/initramfs-tools/modules, is no conffile a package upgrade could prompt about.
const ModulesFile = "usr/share/initramfs-tools/modules.d/ecs-image"

// Spec is everything that decides the content of a bootstrapped base.
type Spec struct {
	Base    *images.Base
	Mirrors mirror.Mirrors
	// Keyring overrides the base's keyring file.
	Keyring string
	// Insecure skips the signature check. It is the only way around a missing or
	// wrong keyring and must be asked for explicitly.
	Insecure bool
}

func (s *Spec) keyring() string {
	if s.Keyring != "" {
		return s.Keyring
	}
	return s.Base.Keyring.File
}

// CheckKeyring makes sure the keyring exists and holds every archive key the base
// table names. With Insecure it checks nothing.
func (s *Spec) CheckKeyring() error {
	if s.Insecure {
		return nil
	}
	path := s.keyring()
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("archive keyring for %s: %w (install %s, set keyring to a file with the %s archive keys, or set insecure = true to skip signature checks)",
			s.Base.Name, err, s.Base.Keyring.Package, s.Base.Distribution)
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return fmt.Errorf("archive keyring %s: %w", path, err)
	}
	have := map[string]bool{}
	for _, e := range el {
		have[fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)] = true
		for _, sk := range e.Subkeys {
			have[fmt.Sprintf("%X", sk.PublicKey.Fingerprint)] = true
		}
	}
	for _, fp := range s.Base.Keyring.Fingerprints {
		if !have[fp] {
			return fmt.Errorf("archive keyring %s lacks key %s that %s is signed with", path, fp, s.Base.Name)
		}
	}
	return nil
}

// Lines are the apt source lines of the image: the suite and its updates from the
// archive, the security suite from its archive when one is known.
func (s *Spec) Lines() []string {
	b := s.Base
	comps := strings.Join(b.Components, " ")
	lines := []string{fmt.Sprintf("deb %s %s %s", s.Mirrors.Archive, strings.Join(append([]string{b.Suite}, b.Updates...), " "), comps)}
	if s.Mirrors.Security != "" {
		lines = append(lines, fmt.Sprintf("deb %s %s %s", s.Mirrors.Security, b.SecuritySuite(), comps))
	}
	return lines
}

// Key identifies the cached base: base, tool, mirrors, package set, modules, keyring.
func (s *Spec) Key() (string, error) {
	var keyringSum string
	if !s.Insecure {
		data, err := os.ReadFile(s.keyring())
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		keyringSum = hex.EncodeToString(sum[:])
	}
	id, err := json.Marshal(struct {
		Version  int
		Base     string
		Tool     string
		Lines    []string
		Packages []string
		Modules  []string
		Keyring  string
		Insecure bool
	}{formatVersion, s.Base.Name, s.Base.Bootstrap, s.Lines(), s.Base.BootstrapPackages(), s.Base.InitramfsModules, keyringSum, s.Insecure})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(id)
	return s.Base.Name + "-" + hex.EncodeToString(sum[:8]), nil
}

// Command is the bootstrap tool's command line that fills target.
func (s *Spec) Command(target string) []string {
	b := s.Base
	pkgs := strings.Join(b.BootstrapPackages(), ",")
	if b.Bootstrap == images.Debootstrap {
		argv := []string{"debootstrap", "--variant=minbase", "--arch=amd64",
			"--components=" + strings.Join(b.Components, ","), "--include=" + pkgs}
		if s.Insecure {
			argv = append(argv, "--no-check-gpg")
		} else {
			argv = append(argv, "--keyring="+s.keyring())
		}
		return append(argv, b.Suite, target, s.Mirrors.Archive)
	}
	argv := []string{"mmdebstrap", "--mode=root", "--format=directory", "--variant=minbase",
		"--architectures=amd64", "--include=" + pkgs}
	if s.Insecure {
		argv = append(argv, `--aptopt=Acquire::AllowInsecureRepositories "true"`, `--aptopt=APT::Get::AllowUnauthenticated "true"`)
	} else {
		argv = append(argv, "--keyring="+s.keyring())
	}
	return append(append(argv, b.Suite, target), s.Lines()...)
}

// Result says where a base came from.
type Result struct {
	Key       string
	Tarball   string
	CacheHit  bool
	Duration  time.Duration
	Bootstrap []string // the tool's command line, when it ran
}

// Prepare fills the empty directory root with the base: from the cache when an entry
// for spec exists, else by bootstrapping and then storing the entry. The tool's output
// goes to log.
func Prepare(ctx context.Context, spec *Spec, cacheDir, root string, log io.Writer) (*Result, error) {
	start := time.Now()
	if err := spec.CheckKeyring(); err != nil {
		return nil, err
	}
	key, err := spec.Key()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Key: key, Tarball: filepath.Join(cacheDir, key+".tar")}
	if _, err := os.Stat(res.Tarball); err == nil {
		res.CacheHit = true
		if err := run(ctx, log, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", res.Tarball, "-C", root); err != nil {
			return nil, fmt.Errorf("unpacking cached base %s: %w", res.Tarball, err)
		}
		res.Duration = time.Since(start)
		return res, nil
	}

	res.Bootstrap = spec.Command(root)
	err = run(ctx, log, res.Bootstrap...)
	// The tools mount proc, sys and dev into the target themselves; after a failure or
	// a kill they may not have unmounted them.
	if serr := chroot.Sweep(root); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrapping %s: %w", spec.Base.Name, err)
	}
	if err := finish(spec, root); err != nil {
		return nil, err
	}
	tmp := res.Tarball + ".partial"
	if err := run(ctx, log, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-cf", tmp, "-C", root, "."); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("caching the base: %w", err)
	}
	if err := os.Rename(tmp, res.Tarball); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// finish writes what every base gets regardless of the tool: apt sources that name
// the same mirrors, the initramfs module list, and no leftover tool configuration.
func finish(spec *Spec, root string) error {
	sources := "# Written by the ecs-image builder: the mirrors the image was built from.\n" + strings.Join(spec.Lines(), "\n") + "\n"
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		return err
	}
	// One list only: drop whatever the tool wrote elsewhere.
	parts, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*"))
	for _, p := range parts {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	// mmdebstrap keeps its --aptopt settings here; the insecure ones must not ship.
	if err := os.Remove(filepath.Join(root, "etc/apt/apt.conf.d/99mmdebstrap")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	mod := filepath.Join(root, ModulesFile)
	if err := os.MkdirAll(filepath.Dir(mod), 0o755); err != nil {
		return err
	}
	return os.WriteFile(mod, []byte(strings.Join(spec.Base.InitramfsModules, "\n")+"\n"), 0o644)
}

func run(ctx context.Context, log io.Writer, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	// TERM first: mmdebstrap and debootstrap clean up their own mounts on TERM.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}
