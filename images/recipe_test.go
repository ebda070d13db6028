package images

import (
	"io/fs"
	"slices"
	"testing"
)

func TestRecipeLoadsAndCoversTheStack(t *testing.T) {
	r, err := LoadRecipe()
	if err != nil {
		t.Fatal(err)
	}
	// Every unit we ship is installed.
	installed := map[string]bool{}
	for _, role := range r.Roles {
		for _, f := range role.Files {
			installed[f.From] = true
		}
	}
	units, _ := fs.Glob(FS, "systemd/*")
	for _, u := range units {
		if !installed[u] {
			t.Errorf("images/%s is not installed by the recipe", u)
		}
	}
	// Every base spells every role the recipe uses.
	table, err := Bases()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range table.Names() {
		b, _ := table.Lookup(name)
		pkgs, err := r.Packages(b, r.Roles)
		if err != nil || len(pkgs) == 0 {
			t.Errorf("%s: %v %v", name, pkgs, err)
		}
		if name == "ubuntu-xenial" && slices.Contains(pkgs, "systemd-resolved") {
			t.Errorf("xenial gets systemd-resolved, which is part of its systemd")
		}
	}
}
