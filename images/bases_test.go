package images

import (
	"strings"
	"testing"
)

func TestBaseTable(t *testing.T) {
	tab, err := Bases()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"debian-bookworm", "debian-trixie", "ubuntu-noble", "ubuntu-xenial"}
	if got := strings.Join(tab.Names(), " "); got != strings.Join(want, " ") {
		t.Fatalf("bases %s, want %s", got, want)
	}
	def, err := tab.Lookup("")
	if err != nil || def.Name != "debian-trixie" {
		t.Fatalf("default base %v, %v", def, err)
	}
	for _, b := range tab.Bases {
		// Every base answers the same roles, so a recipe works on all of them.
		if got, want := strings.Join(b.RoleNames(), " "), strings.Join(def.RoleNames(), " "); got != want {
			t.Errorf("%s roles %s, default has %s", b.Name, got, want)
		}
		for _, m := range []string{"virtio_blk", "ext4", "vfat", "iso9660"} {
			if !strings.Contains(" "+strings.Join(b.InitramfsModules, " ")+" ", " "+m+" ") {
				t.Errorf("%s: initramfs lacks %s", b.Name, m)
			}
		}
		for _, f := range b.Ext4Features {
			if f == "orphan_file" || f == "metadata_csum_seed" {
				t.Errorf("%s: ext4 feature %s is unreadable for older GRUB or kernels", b.Name, f)
			}
		}
	}
	xenial, _ := tab.Lookup("ubuntu-xenial")
	if xenial.Bootstrap != Debootstrap {
		t.Errorf("xenial bootstraps with %s; mmdebstrap fails in its systemd postinst", xenial.Bootstrap)
	}
	if pkgs, err := def.Role("compose"); err != nil || len(pkgs) == 0 {
		t.Errorf("compose role: %v %v", pkgs, err)
	}
	if _, err := def.Role("nosuchrole"); err == nil || !strings.Contains(err.Error(), "postgresql") {
		t.Errorf("unknown role error %v should list the known roles", err)
	}
	if _, err := tab.Lookup("debian-sid"); err == nil {
		t.Error("unknown base accepted")
	}
}

func TestBaseTableRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown key":   "default: a\nbases:\n  a: {distribution: debian, suite: s, colour: red}\n",
		"bad default":   "default: b\nbases: {}\n",
		"bad tool":      "default: a\nbases:\n  a: {distribution: debian, suite: s, components: [main], bootstrap: cdebootstrap, security: mirror}\n",
		"shell in name": "default: a\nbases:\n  a: {distribution: debian, suite: s, components: [main], bootstrap: mmdebstrap, security: mirror, keyring: {file: k, fingerprints: [" + strings.Repeat("A", 40) + "]}, packages: {kernel: ['linux;rm'], bootloader: [grub]}, ext4_features: [extent]}\n",
	} {
		if _, err := parseBases([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
