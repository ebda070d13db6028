package qrpaper

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeEnv builds an env.yml of about size bytes shaped like a real one: cloud-config
// keys, PEM and OpenPGP blocks of random base64, Django settings with random secrets.
// Further extra files are appended until the size is reached.
func fakeEnv(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, 42))
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	block := func(indent, kind string, n int) string {
		var sb strings.Builder
		s := random(n)
		fmt.Fprintf(&sb, "%s-----BEGIN %s-----\n", indent, kind)
		for len(s) > 64 {
			sb.WriteString(indent + s[:64] + "\n")
			s = s[64:]
		}
		fmt.Fprintf(&sb, "%s%s\n%s-----END %s-----\n", indent, s, indent, kind)
		return sb.String()
	}
	var sb strings.Builder
	sb.WriteString("#cloud-config\n")
	sb.WriteString("# ECS appliance environment for ecs.example.org, created by ecs-env new\n")
	sb.WriteString("ssh_authorized_keys:\n")
	fmt.Fprintf(&sb, "  - ssh-ed25519 %s admin@example.org\n", random(51))
	sb.WriteString("disable_root: false\n\nappliance:\n  domain: ecs.example.org\n  allowed_hosts: ecs.example.org\n")
	sb.WriteString("  ssl:\n    letsencrypt:\n      enabled: true\n    client_certs_mandatory: false\n")
	sb.WriteString("  dkim:\n    key: |\n" + block("        ", "RSA PRIVATE KEY", 1190))
	sb.WriteString("  backup:\n    url: file:///data/ecs-storage-vault\n    encrypt: |\n" +
		block("        ", "PGP PRIVATE KEY BLOCK", 1800))
	sb.WriteString("  metric:\n    exporter: true\n    server: false\n\necs:\n  git:\n    branch: stable\n")
	sb.WriteString("  userswitcher:\n    enabled: false\n  settings: |\n      DOMAIN = 'ecs.example.org'\n")
	sb.WriteString("      ABSOLUTE_URL_PREFIX = 'https://{}'.format(DOMAIN)\n      ALLOWED_HOSTS = [DOMAIN, ]\n")
	for _, k := range []string{"SECRET_KEY", "REGISTRATION_SECRET", "PASSWORD_RESET_SECRET"} {
		fmt.Fprintf(&sb, "      %s = '%s'\n", k, random(39))
	}
	sb.WriteString("      ETHICS_COMMISSION_UUID = 'ecececececececececececececececec'\n")
	sb.WriteString("  vault_encrypt: |\n" + block("      ", "PGP PRIVATE KEY BLOCK", 1100))
	sb.WriteString("  vault_sign: |\n" + block("      ", "PGP PRIVATE KEY BLOCK", 1100))
	for i := 0; sb.Len() < size; i++ {
		if i == 0 {
			sb.WriteString("appliance_extra:\n  files:\n")
		}
		fmt.Fprintf(&sb, "    - path: /etc/ecs/extra-%d.pem\n      owner: app\n      permissions: \"0600\"\n      content: |\n", i)
		sb.WriteString(block("        ", "PRIVATE KEY", 900))
	}
	return []byte(sb.String())
}

var testTime = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func testPaper(data []byte) Paper {
	return Paper{Domain: "ecs.example.org", Created: testTime, Name: "env.yml", Data: data}
}

// renderFile renders p to dir/env.yml.pdf.
func renderFile(t testing.TB, dir string, p Paper) (string, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Render(context.Background(), &buf, p)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	path := filepath.Join(dir, p.Name+".pdf")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, st
}

// run runs a program in dir and returns its stdout; stderr goes into the failure.
func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// rasterize renders pages first..last of pdf at 150 dpi into dir as prefix-N.png and
// returns their paths in page order.
func rasterize(t testing.TB, pdf, dir, prefix string, first, last int) []string {
	t.Helper()
	return rasterizeAt(t, 150, pdf, dir, prefix, first, last)
}

// rasterizeAt is rasterize at dpi.
func rasterizeAt(t testing.TB, dpi int, pdf, dir, prefix string, first, last int) []string {
	t.Helper()
	run(t, dir, "pdftoppm", "-r", fmt.Sprint(dpi), "-png", "-f", fmt.Sprint(first), "-l", fmt.Sprint(last), pdf, filepath.Join(dir, prefix))
	paths, err := filepath.Glob(filepath.Join(dir, prefix+"-*.png"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	if len(paths) != last-first+1 {
		t.Fatalf("pdftoppm made %d images, want %d", len(paths), last-first+1)
	}
	return paths
}

func loadAll(t testing.TB, paths []string) []image.Image {
	t.Helper()
	imgs, err := LoadImages(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

// scanning is one simulated print-and-scan of a page, drawn at random around the
// conditions of issue 10: rotated up to 3°, blurred, noisy and saved as a poor JPEG.
type scanning struct {
	seed    uint64
	rotate  float64 // degrees
	blur    float64 // sigma in pixels
	noise   float64 // ImageMagick's -attenuate for Gaussian noise
	quality int     // JPEG quality
}

func randomScanning(seed uint64) scanning {
	rng := rand.New(rand.NewPCG(seed, 11))
	return scanning{
		seed:    seed,
		rotate:  rng.Float64()*6 - 3,
		blur:    0.6 + rng.Float64()*0.4,
		noise:   0.3 + rng.Float64()*0.3,
		quality: 60 + rng.IntN(16),
	}
}

func (s scanning) String() string {
	return fmt.Sprintf("seed %d: rotate %.2f°, blur σ %.2f, noise %.2f, quality %d", s.seed, s.rotate, s.blur, s.noise, s.quality)
}

// apply writes the scan of page png to jpg with convert-im6.q16; ImageMagick's noise
// is seeded too, so that a scan can be made again byte for byte.
func (s scanning) apply(t testing.TB, png, jpg string) {
	t.Helper()
	run(t, filepath.Dir(jpg), "convert-im6.q16", png, "-seed", fmt.Sprint(s.seed%1_000_000),
		"-rotate", fmt.Sprintf("%.2f", s.rotate), "-blur", fmt.Sprintf("0x%.2f", s.blur),
		"-attenuate", fmt.Sprintf("%.2f", s.noise), "+noise", "Gaussian", "-quality", fmt.Sprint(s.quality), jpg)
}

// zbarLabels returns the labels ("003/018") of the codes zbarimg reads in an image.
func zbarLabels(t testing.TB, path string) map[string]bool {
	t.Helper()
	cmd := exec.Command("zbarimg", append(strings.Fields(zbarOpts), path)...)
	out, err := cmd.Output()
	// zbarimg exits 4 when it finds no code at all.
	if exitErr, ok := err.(*exec.ExitError); err != nil && (!ok || exitErr.ExitCode() != 4) {
		t.Fatalf("zbarimg %s: %v", path, err)
	}
	labels := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if len(line) >= labelLen {
			labels[line[:labelLen-1]] = true
		}
	}
	return labels
}

// scanLabels returns the labels of the codes Restore's scanner reads in img.
func scanLabels(img image.Image) map[string]bool {
	labels := map[string]bool{}
	for _, text := range scanImage(img) {
		if len(text) >= labelLen {
			labels[text[:labelLen-1]] = true
		}
	}
	return labels
}
