package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/data`:            "/data",
		`/tmp/a\040b\134c`: `/tmp/a b\c`,
		`/x\011y`:          "/x\ty",
		`/trailing\04`:     `/trailing\04`,
		`/not\999octal`:    `/not\999octal`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadFindsRoot(t *testing.T) {
	mounts, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m.Point == "/" {
			return
		}
	}
	t.Errorf("no mount of / among %d mounts", len(mounts))
}
