package images

import (
	_ "embed"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed bases.yml
var basesYAML []byte

// Distribution families; they decide which of the build host's mirrors a base uses.
const (
	Debian = "debian"
	Ubuntu = "ubuntu"
)

// Bootstrap tools.
const (
	Mmdebstrap  = "mmdebstrap"
	Debootstrap = "debootstrap"
)

// Where a base's security suite is served from.
const (
	SecurityFromMirror  = "mirror"           // same archive as the suite (Ubuntu)
	SecurityFromArchive = "security-archive" // a separate archive (Debian's debian-security)
)

// Base is one distribution release the image can be built on.
type Base struct {
	Name         string   `yaml:"-"`
	Distribution string   `yaml:"distribution"`
	Suite        string   `yaml:"suite"`
	Components   []string `yaml:"components"`
	Updates      []string `yaml:"updates"`
	Security     string   `yaml:"security"`
	Bootstrap    string   `yaml:"bootstrap"`
	Keyring      Keyring  `yaml:"keyring"`
	Packages     struct {
		System     []string `yaml:"system"`
		Kernel     []string `yaml:"kernel"`
		Bootloader []string `yaml:"bootloader"`
	} `yaml:"packages"`
	InitramfsModules []string            `yaml:"initramfs_modules"`
	Ext4Features     []string            `yaml:"ext4_features"`
	Roles            map[string][]string `yaml:"roles"`
}

// Keyring says which OpenPGP keys the archive's Release files must be signed with.
type Keyring struct {
	// File is the default keyring path on a build host that has Package installed.
	File    string `yaml:"file"`
	Package string `yaml:"package"`
	// Fingerprints must all be in the keyring used, so a wrong or empty file is caught
	// before it silently weakens the signature check.
	Fingerprints []string `yaml:"fingerprints"`
}

// SecuritySuite is the suite carrying security updates.
func (b *Base) SecuritySuite() string { return b.Suite + "-security" }

// BootstrapPackages is everything bootstrapped into the cached base, sorted.
func (b *Base) BootstrapPackages() []string {
	var all []string
	all = append(all, b.Packages.System...)
	all = append(all, b.Packages.Kernel...)
	all = append(all, b.Packages.Bootloader...)
	sort.Strings(all)
	return all
}

// Role returns the packages that provide role on this base.
func (b *Base) Role(role string) ([]string, error) {
	pkgs, ok := b.Roles[role]
	if !ok {
		return nil, fmt.Errorf("base %s has no role %q (known: %s)", b.Name, role, strings.Join(b.RoleNames(), ", "))
	}
	return pkgs, nil
}

// RoleNames lists the roles the base knows, sorted.
func (b *Base) RoleNames() []string {
	names := make([]string, 0, len(b.Roles))
	for n := range b.Roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BaseTable is the parsed bases.yml.
type BaseTable struct {
	Default string           `yaml:"default"`
	Bases   map[string]*Base `yaml:"bases"`
}

// Names lists the bases, sorted.
func (t *BaseTable) Names() []string {
	names := make([]string, 0, len(t.Bases))
	for n := range t.Bases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the named base; "" means the default.
func (t *BaseTable) Lookup(name string) (*Base, error) {
	if name == "" {
		name = t.Default
	}
	b, ok := t.Bases[name]
	if !ok {
		return nil, fmt.Errorf("unknown base %q (known: %s)", name, strings.Join(t.Names(), ", "))
	}
	return b, nil
}

// LookupBase returns the named base of the embedded table; "" means the default.
func LookupBase(name string) (*Base, error) {
	table, err := Bases()
	if err != nil {
		return nil, err
	}
	return table.Lookup(name)
}

// Bases parses and validates the embedded base table.
func Bases() (*BaseTable, error) {
	return parseBases(basesYAML)
}

// Package and module names end up in shell hooks and command lines: keep them plain.
var (
	debName     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	moduleName  = regexp.MustCompile(`^[a-z0-9_-]+$`)
	fingerprint = regexp.MustCompile(`^[0-9A-F]{40}$`)
)

func parseBases(data []byte) (*BaseTable, error) {
	var t BaseTable
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("bases.yml: %w", err)
	}
	if _, ok := t.Bases[t.Default]; !ok {
		return nil, fmt.Errorf("bases.yml: default %q is not a base", t.Default)
	}
	for name, b := range t.Bases {
		b.Name = name
		if err := b.validate(); err != nil {
			return nil, fmt.Errorf("bases.yml: base %s: %w", name, err)
		}
	}
	return &t, nil
}

func (b *Base) validate() error {
	switch {
	case b.Distribution != Debian && b.Distribution != Ubuntu:
		return fmt.Errorf("distribution %q is neither %s nor %s", b.Distribution, Debian, Ubuntu)
	case b.Bootstrap != Mmdebstrap && b.Bootstrap != Debootstrap:
		return fmt.Errorf("bootstrap %q is neither %s nor %s", b.Bootstrap, Mmdebstrap, Debootstrap)
	case b.Security != SecurityFromMirror && b.Security != SecurityFromArchive:
		return fmt.Errorf("security %q is neither %s nor %s", b.Security, SecurityFromMirror, SecurityFromArchive)
	case b.Suite == "" || len(b.Components) == 0:
		return fmt.Errorf("suite and components are required")
	case b.Keyring.File == "" || len(b.Keyring.Fingerprints) == 0:
		return fmt.Errorf("keyring file and fingerprints are required")
	case len(b.Packages.Kernel) == 0 || len(b.Packages.Bootloader) == 0:
		return fmt.Errorf("kernel and bootloader packages are required")
	case len(b.Ext4Features) == 0:
		return fmt.Errorf("ext4_features is required")
	}
	for _, fp := range b.Keyring.Fingerprints {
		if !fingerprint.MatchString(fp) {
			return fmt.Errorf("fingerprint %q is not 40 upper-case hex digits", fp)
		}
	}
	for _, p := range b.BootstrapPackages() {
		if !debName.MatchString(p) {
			return fmt.Errorf("package name %q", p)
		}
	}
	for role, pkgs := range b.Roles {
		for _, p := range pkgs {
			if !debName.MatchString(p) {
				return fmt.Errorf("role %s: package name %q", role, p)
			}
		}
	}
	for _, m := range append(append([]string{}, b.InitramfsModules...), b.Ext4Features...) {
		if !moduleName.MatchString(m) {
			return fmt.Errorf("module or feature name %q", m)
		}
	}
	return nil
}
