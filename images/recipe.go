package images

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strconv"

	"gopkg.in/yaml.v3"
)

// RecipePath is the appliance recipe inside FS.
const RecipePath = "appliance/recipe.yml"

// Recipe is what the ecs-appliance provisioner installs on a base system
// (appliance/recipe.yml).
type Recipe struct {
	User      User     `yaml:"user"`
	Locales   []string `yaml:"locales"`
	Debconf   []string `yaml:"debconf"`
	AgentPath string   `yaml:"agent_path"`
	Roles     []Role   `yaml:"roles"`
	// Disable lists units their packages enable that must not start at boot.
	Disable []string `yaml:"disable"`
	// Bases renames literal packages on the bases (bases.yml names) where they differ.
	Bases map[string]BaseRecipe `yaml:"bases"`
}

// User is the account the appliance runs as.
type User struct {
	Name    string `yaml:"name"`
	UID     int    `yaml:"uid"`
	Group   string `yaml:"group"`
	GID     int    `yaml:"gid"`
	Home    string `yaml:"home"`
	Shell   string `yaml:"shell"`
	Comment string `yaml:"comment"`
}

// Role is one part of the appliance: its packages and what goes with them.
type Role struct {
	Name string `yaml:"name"`
	// IfExists: the role applies only when one of these paths exists on the target.
	IfExists []string `yaml:"if_exists"`
	// UnlessExists: the role is skipped when one of these paths exists on the target.
	UnlessExists []string `yaml:"unless_exists"`
	// PackageRoles names roles of the base table; each base lists its packages for them.
	PackageRoles []string    `yaml:"package_roles"`
	Packages     []string    `yaml:"packages"`
	Directories  []Directory `yaml:"directories"`
	Files        []File      `yaml:"files"`
	Remove       []string    `yaml:"remove"`
	Enable       []string    `yaml:"enable"`
}

// Directory is a directory with its owner and mode (owner and group default to root).
type Directory struct {
	Path  string `yaml:"path"`
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	Mode  Mode   `yaml:"mode"`
}

// File is a regular file (from a file in FS, or inline content) or a symbolic link.
type File struct {
	Path    string `yaml:"path"`
	From    string `yaml:"from"`
	Content string `yaml:"content"`
	Link    string `yaml:"link"`
	Owner   string `yaml:"owner"`
	Group   string `yaml:"group"`
	Mode    Mode   `yaml:"mode"`
}

// BaseRecipe is how one base names the recipe's literal packages.
type BaseRecipe struct {
	// Packages renames a package to zero or more packages of this base.
	Packages map[string][]string `yaml:"packages"`
}

// Mode is a file mode written in octal ("0644").
type Mode fs.FileMode

// UnmarshalYAML reads an octal string; a bare YAML number would be read as decimal.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error {
	if n.Tag != "!!str" {
		return fmt.Errorf("line %d: write a mode as a quoted octal string (\"0644\")", n.Line)
	}
	v, err := strconv.ParseUint(n.Value, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("line %d: bad mode %q", n.Line, n.Value)
	}
	*m = Mode(v)
	return nil
}

// LoadRecipe reads and checks the recipe shipped in FS.
func LoadRecipe() (*Recipe, error) {
	data, err := FS.ReadFile(RecipePath)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var r Recipe
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", RecipePath, err)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", RecipePath, err)
	}
	return &r, nil
}

func (r *Recipe) check() error {
	u := r.User
	if u.Name == "" || u.Group == "" || u.Home == "" || u.Shell == "" || u.UID <= 0 || u.GID <= 0 {
		return fmt.Errorf("user needs name, uid, group, gid, home and shell")
	}
	if !path.IsAbs(r.AgentPath) {
		return fmt.Errorf("agent_path %q is not absolute", r.AgentPath)
	}
	table, err := Bases()
	if err != nil {
		return err
	}
	for name := range r.Bases {
		if _, err := table.Lookup(name); err != nil {
			return fmt.Errorf("bases: %w", err)
		}
	}
	names := map[string]bool{}
	for _, role := range r.Roles {
		for _, pr := range role.PackageRoles {
			for _, b := range table.Bases {
				if _, err := b.Role(pr); err != nil {
					return fmt.Errorf("role %s: %w", role.Name, err)
				}
			}
		}
		if role.Name == "" || names[role.Name] {
			return fmt.Errorf("role names must be unique and not empty (%q)", role.Name)
		}
		names[role.Name] = true
		if len(role.IfExists) > 0 && len(role.UnlessExists) > 0 {
			return fmt.Errorf("role %s: use if_exists or unless_exists, not both", role.Name)
		}
		for _, d := range role.Directories {
			if !path.IsAbs(d.Path) || d.Mode == 0 {
				return fmt.Errorf("role %s: directory %q needs an absolute path and a mode", role.Name, d.Path)
			}
		}
		for _, f := range role.Files {
			if !path.IsAbs(f.Path) {
				return fmt.Errorf("role %s: file %q is not absolute", role.Name, f.Path)
			}
			kinds := 0
			for _, s := range []string{f.From, f.Content, f.Link} {
				if s != "" {
					kinds++
				}
			}
			if kinds != 1 {
				return fmt.Errorf("role %s: file %s needs exactly one of from, content and link", role.Name, f.Path)
			}
			if f.From != "" {
				if _, err := fs.Stat(FS, f.From); err != nil {
					return fmt.Errorf("role %s: file %s: %w", role.Name, f.Path, err)
				}
			}
		}
	}
	return nil
}

// Role returns the role called name.
func (r *Recipe) Role(name string) (Role, bool) {
	for _, role := range r.Roles {
		if role.Name == name {
			return role, true
		}
	}
	return Role{}, false
}

// Packages returns the packages of roles on base, in recipe order and without
// duplicates.
func (r *Recipe) Packages(base *Base, roles []Role) ([]string, error) {
	rename := r.Bases[base.Name].Packages
	seen := map[string]bool{}
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, role := range roles {
		for _, pr := range role.PackageRoles {
			pkgs, err := base.Role(pr)
			if err != nil {
				return nil, err
			}
			add(pkgs...)
		}
		for _, p := range role.Packages {
			if names, ok := rename[p]; ok {
				add(names...)
			} else {
				add(p)
			}
		}
	}
	return out, nil
}

// Data returns the contents of a regular file entry.
func (f File) Data() ([]byte, error) {
	if f.From != "" {
		return FS.ReadFile(f.From)
	}
	return []byte(f.Content), nil
}

// FileMode is the mode of a file entry: 0644 unless the recipe says otherwise.
func (f File) FileMode() fs.FileMode {
	if f.Mode == 0 {
		return 0o644
	}
	return fs.FileMode(f.Mode)
}
