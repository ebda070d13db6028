package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileModeAndContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	if err := WriteFile(p, []byte("s3cret"), Options{}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(p); string(b) != "s3cret" {
		t.Errorf("content %q", b)
	}
}

func TestFailedFillKeepsOldContentAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old"), Options{}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, Options{}, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("target changed to %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary file left behind: %v", ents)
	}
}

func TestNoOverwrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(p, []byte("a"), Options{NoOverwrite: true}); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(p, []byte("b"), Options{NoOverwrite: true})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second write: err = %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "a" {
		t.Errorf("content %q", b)
	}
}

// TestCommitAllIsAllOrNothing: a set of files is published together; when one target
// cannot be replaced (here a directory is in the way), none is, and no temporary file
// is left.
func TestCommitAllIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, p := range []string{a, b} {
		if err := WriteFile(p, []byte("old "+filepath.Base(p)), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(c, 0o700); err != nil {
		t.Fatal(err)
	}
	create := func(paths ...string) []*File {
		var files []*File
		for _, p := range paths {
			f, err := Create(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("new " + filepath.Base(p)); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		return files
	}
	entries := func() int {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}

	// c sorts last, so a and b would already be replaced by a one-by-one commit.
	err := CommitAll(create(a, b, c)...)
	if err == nil || !strings.Contains(err.Error(), c) {
		t.Fatalf("CommitAll onto a directory: %v, want an error naming %s", err, c)
	}
	for _, p := range []string{a, b} {
		if got, _ := os.ReadFile(p); string(got) != "old "+filepath.Base(p) {
			t.Errorf("%s: %q after the failed commit", p, got)
		}
	}
	if n := entries(); n != 3 {
		t.Errorf("%d entries after the failed commit, want a, b, c only", n)
	}

	if err := CommitAll(create(a, b)...); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, b} {
		if got, _ := os.ReadFile(p); string(got) != "new "+filepath.Base(p) {
			t.Errorf("%s: %q after the commit", p, got)
		}
	}
	if n := entries(); n != 3 {
		t.Errorf("%d entries after the commit, want a, b, c only", n)
	}
}
