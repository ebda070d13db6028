package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// bundleEnv makes a directory with an env of about size bytes (an extra file of
// random base64 makes up the size) and a gpgkeys.txt, so build writes all three
// outputs, and returns the env's path.
func bundleEnv(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	bulk := make([]byte, size*3/4)
	rand.Read(bulk)
	var extra strings.Builder
	extra.WriteString("appliance:\n  extra:\n    files:\n      - path: /etc/ecs/bulk.pem\n        contents: |\n")
	b64 := base64.StdEncoding.EncodeToString(bulk)
	for len(b64) > 0 {
		n := min(64, len(b64))
		fmt.Fprintf(&extra, "          %s\n", b64[:n])
		b64 = b64[n:]
	}
	extraPath := filepath.Join(t.TempDir(), "extra.yml")
	if err := os.WriteFile(extraPath, []byte(extra.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "new", "ecs.example.org", "-o", dir, "--key-type", "ed25519", "--extra", extraPath)

	key, err := openpgp.NewEntity("Keeper", "", "keeper@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var public bytes.Buffer
	w, err := armor.Encode(&public, openpgp.PublicKeyType, nil)
	if err == nil {
		err = errors.Join(key.Serialize(w), w.Close())
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "gpgkeys.txt"), public.Bytes(), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "env.yml")
}

// files returns the names and contents of the files in dir.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

// wantBundleUnchanged checks that dir holds exactly the files of before.
func wantBundleUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := files(t, dir)
	for name := range maps.Keys(after) {
		if _, ok := before[name]; !ok {
			t.Errorf("%s appeared", name)
		}
	}
	for name, data := range before {
		if got, ok := after[name]; !ok {
			t.Errorf("%s disappeared", name)
		} else if got != data {
			t.Errorf("%s changed", name)
		}
	}
}

// TestBuildFailureKeepsPreviousBundle: when one output cannot be replaced (a
// directory is in the way), no output is, and nothing is left behind.
func TestBuildFailureKeepsPreviousBundle(t *testing.T) {
	envPath := newEnv(t)
	dir := filepath.Dir(envPath)
	mustRun(t, "build", envPath)
	// An old PDF that any new one differs from, and a directory instead of the ISO.
	pdf, iso := filepath.Join(dir, "env.yml.pdf"), filepath.Join(dir, "env-cidata.iso")
	env, err := os.ReadFile(envPath)
	if err == nil {
		err = errors.Join(os.WriteFile(pdf, []byte("the previous PDF"), 0o600), os.Remove(iso), os.Mkdir(iso, 0o700))
	}
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]string{"env.yml": string(env), "env.yml.pdf": "the previous PDF"}
	code, _, errOut := ecsEnv("build", envPath)
	if code != 1 || !strings.Contains(errOut, iso+" is a directory") {
		t.Errorf("exit %d, want 1 and an error naming %s\n%s", code, iso, errOut)
	}
	if err := os.Remove(iso); err != nil { // the empty directory, still there
		t.Fatal(err)
	}
	wantBundleUnchanged(t, dir, before)
}

// TestBuildInterrupted runs the real binary and signals it during the build: it
// must remove its temporary files (next to the outputs and in /dev/shm), leave the
// previous bundle exactly as it was, and exit 1 by itself.
//
// The build creates its temporary files before rendering the PDF, which takes
// seconds for this env, so a signal sent once they appear arrives mid-build.
func TestBuildInterrupted(t *testing.T) {
	gobin := testtool.Require(t, "go")[0]
	bin := filepath.Join(t.TempDir(), "ecs-env")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	envPath := bundleEnv(t, 150_000)
	dir := filepath.Dir(envPath)
	mustRun(t, "build", envPath)
	before := files(t, dir)
	if len(before) != 5 {
		t.Fatalf("the first build made %q, want env, PDF, ISO and bundle", slices.Sorted(maps.Keys(before)))
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "build", envPath)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			// Wait for all three temporary files, then signal.
			var temps []string
			for len(temps) < 3 {
				select {
				case err := <-exited:
					t.Fatalf("build ended (%v) before its temporary files appeared\n%s%s", err, stdout.String(), stderr.String())
				case <-time.After(time.Millisecond):
				}
				temps = nil
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if strings.Contains(e.Name(), ".tmp-") {
						temps = append(temps, e.Name())
					}
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatal("build did not exit after the signal")
			}
			if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("exit %d (%v), want 1 after an interruption\n%s%s", code, cmd.ProcessState, stdout.String(), stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("an interrupted build reported:\n%s", stdout.String())
			}
			t.Logf("signalled with %q present; stderr: %s", temps, stderr.String())
			wantBundleUnchanged(t, dir, before)
			// The image's staging copy of the env is named after its temporary file.
			for _, tmp := range temps {
				if left, _ := filepath.Glob(filepath.Join("/dev/shm", tmp+".work-*")); len(left) > 0 {
					t.Errorf("staging directory left behind: %s", left)
				}
			}
		})
	}
}
