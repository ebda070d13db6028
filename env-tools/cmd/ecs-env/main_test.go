package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// ecsEnv runs the command in-process and returns its exit status and output.
func ecsEnv(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := ecsEnv(args...)
	if code != 0 {
		t.Fatalf("ecs-env %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func wantMode0600(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}
}

func TestUsageAndHelp(t *testing.T) {
	if code, _, _ := ecsEnv(); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	if code, out, _ := ecsEnv("--help"); code != 0 || !strings.Contains(out, "ecs-env new DOMAIN") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	for name, c := range commands {
		if code, out, _ := ecsEnv(name, "--help"); code != 0 || out != c.help {
			t.Errorf("%s --help: exit %d\n%s", name, code, out)
		}
	}
	if code, _, errOut := ecsEnv("check"); code != 2 || !strings.Contains(errOut, "wrong number of arguments") {
		t.Errorf("check without ENV: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := ecsEnv("check", "/nonexistent/env.yml"); code != 2 || !strings.Contains(errOut, "no such file") {
		t.Errorf("check of a missing file: exit %d\n%s", code, errOut)
	}
	if code, _, _ := ecsEnv("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestCheckListsEveryErrorPositioned(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env.yml")
	os.WriteFile(p, []byte("#cloud-config\nappliance:\n  domian: x\n  standby: maybe\necs: {}\n"), 0o600)
	code, _, errOut := ecsEnv("check", p)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		p + `:3:3: unknown key appliance.domian; did you mean "domain"?`,
		p + ":4:12: appliance.standby must be true or false, found a string",
		p + ":5:6: missing required key ecs.settings",
		p + ": 7 error(s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
}

// gpgRecipient makes a key with GnuPG itself (its default: RSA 3072, encryption subkey) and returns its GNUPGHOME and
// its armored public key.
func gpgRecipient(t *testing.T) (home string, public []byte) {
	t.Helper()
	home = t.TempDir()
	gpg := func(args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("--quick-gen-key", "Keeper <keeper@example.org>", "default", "default", "never") // GnuPG 2.2: RSA 3072 + encryption subkey
	return home, gpg("--armor", "--export", "keeper@example.org")
}

func untar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
}

// TestNewBuildRestore is the admin's whole workflow against the real tools.
func TestNewBuildRestore(t *testing.T) {
	testtool.Require(t, "gpg", "pdftoppm")
	dir := t.TempDir()
	envPath := filepath.Join(dir, "env.yml")

	mustRun(t, "new", "ecs.example.org", "-o", dir)
	wantMode0600(t, envPath)
	original, _ := os.ReadFile(envPath)
	if code, _, errOut := ecsEnv("new", "ecs.example.org", "-o", dir); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("second new: exit %d\n%s", code, errOut)
	}
	if b, _ := os.ReadFile(envPath); !bytes.Equal(b, original) {
		t.Fatal("second new changed env.yml")
	}
	mustRun(t, "check", envPath)
	if out := mustRun(t, "flatten", "appliance", envPath); !strings.Contains(out, "APPLIANCE_DOMAIN=ecs.example.org\n") {
		t.Errorf("flatten output lacks the domain")
	}

	home, public := gpgRecipient(t)
	os.WriteFile(filepath.Join(dir, "gpgkeys.txt"), public, 0o644) // found as a sibling
	out := mustRun(t, "build", envPath)
	matches, _ := filepath.Glob(filepath.Join(dir, "ecs.example.org.env.*.tar.gz.gpg"))
	if len(matches) != 1 {
		t.Fatalf("no encrypted bundle; build said:\n%s", out)
	}
	pdfPath, isoPath := filepath.Join(dir, "env.yml.pdf"), filepath.Join(dir, "env-cidata.iso")
	wantMode0600(t, pdfPath, isoPath, matches[0])

	cmd := exec.Command("gpg", "--batch", "--quiet", "--decrypt", matches[0])
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	plain, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg --decrypt: %v", err)
	}
	files := untar(t, plain)
	pdf, _ := os.ReadFile(pdfPath)
	iso, _ := os.ReadFile(isoPath)
	if !bytes.Equal(files["env.yml"], original) || !bytes.Equal(files["env.yml.pdf"], pdf) || !bytes.Equal(files["env-cidata.iso"], iso) {
		t.Errorf("bundle content differs from the files: has %d files", len(files))
	}

	pages := filepath.Join(t.TempDir(), "page")
	if out, err := exec.Command("pdftoppm", "-r", "150", "-png", pdfPath, pages).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pngs, _ := filepath.Glob(pages + "-*.png")
	slices.Reverse(pngs) // any order
	restored := filepath.Join(t.TempDir(), "env.yml")
	mustRun(t, append(append([]string{"restore"}, pngs...), "-o", restored)...)
	wantMode0600(t, restored)
	if b, _ := os.ReadFile(restored); !bytes.Equal(b, original) {
		t.Error("restored env differs from the original")
	}

	// A crude print and scan (build-machine-facts.md): rotated, blurred, noisy JPEGs.
	testtool.Require(t, "convert-im6.q16")
	var jpegs []string
	for _, png := range pngs {
		jpg := strings.TrimSuffix(png, ".png") + ".jpg"
		args := []string{png, "-rotate", "2", "-blur", "0x0.8", "-attenuate", "0.6", "+noise", "Gaussian", "-seed", "1", "-quality", "70", jpg}
		if out, err := exec.Command("convert-im6.q16", args...).CombinedOutput(); err != nil {
			t.Fatalf("convert: %v\n%s", err, out)
		}
		jpegs = append(jpegs, jpg)
	}
	fromScan := filepath.Join(t.TempDir(), "env.yml")
	mustRun(t, append(append([]string{"restore"}, jpegs...), "-o", fromScan)...)
	if b, _ := os.ReadFile(fromScan); !bytes.Equal(b, original) {
		t.Error("env restored from the scanned JPEGs differs from the original")
	}
	// Without the last QR page (jpegs are reversed: [instructions, last QR page, …])
	// the set is incomplete: a named error and no file.
	partial := filepath.Join(t.TempDir(), "env.yml")
	withoutPage := append([]string{jpegs[0]}, jpegs[2:]...)
	code, _, errOut := ecsEnv(append(append([]string{"restore"}, withoutPage...), "-o", partial)...)
	if code != 1 || !strings.Contains(errOut, "missing ") {
		t.Errorf("restore without the last page: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Error("an incomplete set wrote a file")
	}
}

func TestBuildRefusesInvalidEnvAndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "env.yml")
	os.WriteFile(p, []byte("appliance: {}\n"), 0o600)
	code, _, errOut := ecsEnv("build", p)
	if code != 1 || !strings.Contains(errOut, `:1:1: the first line must be "#cloud-config"`) {
		t.Errorf("exit %d\n%s", code, errOut)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("build of an invalid env left files: %v", ents)
	}
}

// TestRestoreUnreadableInputIsUsageError: like check and build, restore treats an
// input it cannot read as a usage error (2) and one that reads but is no image as a
// failure (1).
func TestRestoreUnreadableInputIsUsageError(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env.yml")
	notImage := filepath.Join(dir, "page.png")
	os.WriteFile(notImage, []byte("not a PNG"), 0o600)
	for _, tc := range []struct {
		input, want string
		code        int
	}{
		{filepath.Join(dir, "missing.png"), "missing.png: no such file", 2},
		{dir, "is a directory", 2},
		{notImage, "reading image " + notImage, 1},
	} {
		code, _, errOut := ecsEnv("restore", tc.input, "-o", out)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("restore %s: exit %d, want %d with %q\n%s", tc.input, code, tc.code, tc.want, errOut)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a failed restore wrote a file")
	}
}

// newEnv writes a valid env (ed25519 keys: fast) to a new directory and returns its
// path.
func newEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mustRun(t, "new", "ecs.example.org", "-o", dir, "--key-type", "ed25519")
	return filepath.Join(dir, "env.yml")
}

// TestBuildCreatesOutputDir: -o names a directory that need not exist yet; it is
// made 0700 like new's, since it receives the secrets.
func TestBuildCreatesOutputDir(t *testing.T) {
	envPath := newEnv(t)
	out := filepath.Join(t.TempDir(), "site", "bundle")
	mustRun(t, "build", envPath, "-o", out)
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, want 0700", out, st.Mode().Perm())
	}
	wantMode0600(t, filepath.Join(out, "env.yml.pdf"), filepath.Join(out, "env-cidata.iso"))
}

// TestBuildRefusesToOverwriteItsInput: an output that is an input, by name or by any
// other path to the same file, is a usage error, and nothing is written or changed.
func TestBuildRefusesToOverwriteItsInput(t *testing.T) {
	original, err := os.ReadFile(newEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	must := func(t *testing.T, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, envName string // the env is dir/envName, the input that must survive
		args          func(t *testing.T, dir, env string) []string
	}{
		{"env named env.yml.pdf", "env.yml.pdf", func(t *testing.T, dir, env string) []string {
			return []string{env}
		}},
		{"env named env-cidata.iso", "env-cidata.iso", func(t *testing.T, dir, env string) []string {
			return []string{env}
		}},
		{"relative env path", "env.yml.pdf", func(t *testing.T, dir, env string) []string {
			t.Chdir(dir)
			return []string{"env.yml.pdf", "-o", dir}
		}},
		{"output dir through a symlink", "env.yml.pdf", func(t *testing.T, dir, env string) []string {
			link := filepath.Join(t.TempDir(), "out")
			must(t, os.Symlink(dir, link))
			return []string{env, "-o", link}
		}},
		{"env is a symlink to an output", "env-cidata.iso", func(t *testing.T, dir, env string) []string {
			link := filepath.Join(dir, "env.yml")
			must(t, os.Symlink("env-cidata.iso", link))
			return []string{link}
		}},
		{"output hard-linked to the env", "env.yml", func(t *testing.T, dir, env string) []string {
			out := t.TempDir()
			must(t, os.Link(env, filepath.Join(out, "env.yml.pdf")))
			return []string{env, "-o", out}
		}},
		{"meta-data is an output", "env.yml", func(t *testing.T, dir, env string) []string {
			meta := filepath.Join(dir, "env-cidata.iso")
			must(t, os.WriteFile(meta, []byte("instance-id: x\n"), 0o600))
			return []string{env, "--meta-data", meta}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			input := filepath.Join(dir, tc.envName)
			must(t, os.WriteFile(input, original, 0o600))
			args := tc.args(t, dir, input)
			before, _ := os.ReadDir(dir)
			code, _, errOut := ecsEnv(append([]string{"build"}, args...)...)
			if code != 2 || !strings.Contains(errOut, "would replace the input") {
				t.Errorf("exit %d, want 2 and a refusal\n%s", code, errOut)
			}
			if b, _ := os.ReadFile(input); !bytes.Equal(b, original) {
				t.Fatalf("%s was changed", input)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("the refused build left files: %v", after)
			}
		})
	}
}
