package qrpaper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// instructionLine returns the line of the instructions page (the last page) that
// starts with prefix, as pdftotext extracts it, so tests run what the paper prints.
func instructionLine(t *testing.T, pdf string, st Stats, prefix string) string {
	t.Helper()
	page := run(t, filepath.Dir(pdf), "pdftotext", "-layout", "-f", fmt.Sprint(st.Pages), "-l", fmt.Sprint(st.Pages), pdf, "-")
	for _, line := range strings.Split(page, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("no line starting with %q on the instructions page:\n%s", prefix, page)
	return ""
}

// shell runs a command line with sh in dir, as an admin would paste it.
func shell(t *testing.T, dir, line string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", line, err, stderr.String())
	}
	return string(out)
}

// TestPaperBackup renders a realistic 9 KB env and restores it the ways the
// instructions page describes.
func TestPaperBackup(t *testing.T) {
	testtool.Require(t, "pdftoppm", "pdftotext", "zbarimg", "base64", "gunzip", "sha256sum", "sort", "cut")
	data := fakeEnv(1, 9000)
	dir := t.TempDir()
	pdf, st := renderFile(t, dir, testPaper(data))
	t.Logf("%d bytes: %+v", len(data), st)
	if st.Pages != st.TextPages+st.QRPages+1 || st.QRPages != (st.QRCodes+3)/4 || st.QRCodes < 2 {
		t.Fatalf("inconsistent stats %+v", st)
	}

	// Every page carries the header: domain, date and the env's sha256.
	t.Run("headers", func(t *testing.T) {
		for page := 1; page <= st.Pages; page++ {
			text := run(t, dir, "pdftotext", "-f", fmt.Sprint(page), "-l", fmt.Sprint(page), pdf, "-")
			for _, want := range []string{"ecs.example.org", "2026-03-14 15:09 UTC", "sha256 " + st.SHA256, fmt.Sprintf("page %d/%d", page, st.Pages)} {
				if !strings.Contains(text, want) {
					t.Errorf("page %d lacks %q", page, want)
				}
			}
		}
	})

	// The one-liner printed on the instructions page restores the env byte for byte
	// with pdftoppm, zbarimg, sort, cut, base64 and gunzip, and prints the sha256
	// printed on the page.
	oneLiner := instructionLine(t, pdf, st, "pdftoppm ")
	out := shell(t, dir, oneLiner)
	got, err := os.ReadFile(filepath.Join(dir, "env.yml"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the printed one-liner %q did not restore env.yml (err %v)", oneLiner, err)
	}
	if printed := instructionLine(t, pdf, st, st.SHA256); !slices.Equal(strings.Fields(out), strings.Fields(printed)) {
		t.Errorf("sha256sum printed %q; the page expects %q", out, printed)
	}
	pages, err := filepath.Glob(filepath.Join(dir, "p-*.png"))
	if err != nil || len(pages) != st.Pages {
		t.Fatalf("the one-liner left %d page images, want %d", len(pages), st.Pages)
	}
	slices.Sort(pages) // pdftoppm pads page numbers, so this is page order
	qrPages := pages[st.TextPages : st.TextPages+st.QRPages]

	// Restore reads the same images in pure Go: all pages in any order, one twice.
	t.Run("Restore", func(t *testing.T) {
		imgs := loadAll(t, pages)
		rand.New(rand.NewPCG(7, 8)).Shuffle(len(imgs), func(i, j int) { imgs[i], imgs[j] = imgs[j], imgs[i] })
		got, err := Restore(append(imgs, imgs[0]))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Restore: %v", err)
		}
	})

	// Without one QR page Restore names exactly the codes that page held.
	t.Run("missing page", func(t *testing.T) {
		imgs := loadAll(t, slices.Delete(slices.Clone(qrPages), 1, 2))
		got, err := Restore(imgs)
		var want []string
		for i := 5; i <= min(8, st.QRCodes); i++ {
			want = append(want, fmt.Sprintf("%d/%d", i, st.QRCodes))
		}
		if err == nil || got != nil || !strings.Contains(err.Error(), "missing "+strings.Join(want, ", ")) {
			t.Fatalf("Restore without page %d = %d bytes, %v; want an error naming %v", st.TextPages+2, len(got), err, want)
		}
	})

	// A crude print-and-scan (rotated, blurred, noisy JPEG) still restores, with
	// the paper instructions' zbarimg pipeline and with Restore.
	t.Run("print and scan", func(t *testing.T) {
		testtool.Require(t, "convert-im6.q16")
		scans := t.TempDir()
		var jpegs []string
		for i, page := range qrPages {
			jpg := filepath.Join(scans, fmt.Sprintf("scan-%d.jpg", i+1))
			degrade(t, page, jpg)
			jpegs = append(jpegs, jpg)
		}
		count := instructionLine(t, pdf, st, "zbarimg "+zbarOpts+" scan-*.png | sort -u | wc -l")
		if n := strings.TrimSpace(shell(t, scans, strings.ReplaceAll(count, ".png", ".jpg"))); n != fmt.Sprint(st.QRCodes) {
			t.Errorf("zbarimg read %s of %d codes from the scans", n, st.QRCodes)
		}
		restore := instructionLine(t, pdf, st, "zbarimg "+zbarOpts+" scan-*.png | sort -u | cut")
		shell(t, scans, strings.ReplaceAll(restore, ".png", ".jpg"))
		if got, err := os.ReadFile(filepath.Join(scans, "env.yml")); err != nil || !bytes.Equal(got, data) {
			t.Errorf("zbarimg did not restore env.yml from the scans (err %v)", err)
		}
		got, err := Restore(loadAll(t, jpegs))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Restore from the scans: %v", err)
		}
	})
}

// degrade simulates printing and scanning a page: rotated, blurred, noisy, JPEG.
// The noise is seeded so that a run can be repeated.
func degrade(t *testing.T, png, jpg string) {
	t.Helper()
	run(t, filepath.Dir(jpg), "convert-im6.q16", png, "-seed", "1", "-rotate", "2", "-blur", "0x0.8",
		"-attenuate", "0.6", "+noise", "Gaussian", "-quality", "70", jpg)
}

// TestListingSurvivesTextExtraction: pdftotext -fixed 4.8 of the text pages gives back
// the file exactly once line numbers, separators and headers are stripped, also for
// lines far longer than a row, with spaces placed so that most breaks must avoid them.
func TestListingSurvivesTextExtraction(t *testing.T) {
	testtool.Require(t, "pdftotext")
	width := columns - 3 - 3 // the row width of a listing with 3-digit line numbers
	var long strings.Builder
	long.WriteString("#cloud-config\nappliance:\n  domain: ecs.example.org\necs:\n  settings: |\n")
	long.WriteString("      EMAIL_UNFILTERED_INDIVIDUALS = (" + strings.Repeat("'someone@example.org', ", 40) + ")\n")
	long.WriteString("  note: \"" + strings.Repeat("Die Ethikkommission der Medizinischen Universität Wien prüft  Anträge – ", 12) + "\"\n")
	long.WriteString("  token: " + strings.Repeat("Zm9vYmFyYmF6cXV4", 30) + "\n")
	long.WriteString("  spaced: " + strings.Repeat("a ", 150) + "z\n")
	long.WriteString("        indented:    several    spaces    " + strings.Repeat("x", width-30) + "   and  more   words  " + strings.Repeat("y ", 80) + "end\n")
	long.WriteString("  exact: " + strings.Repeat("w", width-9) + "\n")
	long.WriteString("  over: " + strings.Repeat("v", width-7) + "\n\n")
	for i := range 200 {
		fmt.Fprintf(&long, "  line%03d: value with words %d\n", i, i*i)
	}
	for name, data := range map[string][]byte{"realistic": fakeEnv(2, 9000), "long lines": []byte(long.String())} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pdf, st := renderFile(t, dir, testPaper(data))
			text := run(t, dir, "pdftotext", "-fixed", "4.8", "-f", "1", "-l", fmt.Sprint(st.TextPages), pdf, "-")
			got := rebuildListing(t, text)
			if got != string(data) {
				gl, wl := strings.Split(got, "\n"), strings.Split(string(data), "\n")
				for i := range min(len(gl), len(wl)) {
					if gl[i] != wl[i] {
						t.Fatalf("line %d differs:\ngot  %q\nwant %q", i+1, gl[i], wl[i])
					}
				}
				t.Fatalf("rebuilt %d lines, want %d", len(gl), len(wl))
			}
		})
	}
}

// rebuildListing strips headers, line numbers and the "│" separator from pdftotext
// output: a row with a number starts a line, a row without continues the last one.
func rebuildListing(t *testing.T, text string) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		r := []rune(l)
		bar := slices.Index(r, '│')
		if bar < 0 {
			continue // header, rule or page break
		}
		content := ""
		if len(r) > bar+2 {
			content = string(r[bar+2:])
		}
		switch num := strings.TrimSpace(string(r[:bar])); num {
		case "":
			if len(lines) == 0 {
				t.Fatal("a continuation row before the first line")
			}
			lines[len(lines)-1] += content
		case fmt.Sprint(len(lines) + 1):
			lines = append(lines, content)
		default:
			t.Fatalf("line number %q follows line %d", num, len(lines))
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestCapacity: the original's limit, 131,200 gzip bytes of incompressible data, fits
// and reads back completely with pdftoppm and zbarimg; the largest codes (version 29)
// also survive the simulated print-and-scan.
func TestCapacity(t *testing.T) {
	testtool.Require(t, "pdftoppm", "zbarimg", "base64", "gunzip", "sort", "cut")
	const target = 131200
	rng := rand.New(rand.NewPCG(9, 10))
	data := make([]byte, target)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	// Trim the data until its gzip is exactly the target: random bytes do not shrink,
	// so the gzip is the data plus a fixed overhead.
	for range 5 {
		gz, err := compress(data, [32]byte{}, testTime)
		if err != nil {
			t.Fatal(err)
		}
		if len(gz) == target {
			break
		}
		data = data[:len(data)-(len(gz)-target)]
	}
	dir := t.TempDir()
	pdf, st := renderFile(t, dir, testPaper(data))
	t.Logf("%+v", st)
	if st.GzipBytes != target {
		t.Fatalf("gzip is %d bytes, want %d", st.GzipBytes, target)
	}
	if want := (target + chunkMax - 1) / chunkMax; st.QRCodes != want {
		t.Errorf("%d codes, want %d", st.QRCodes, want)
	}
	if st.QRVersion != 29 {
		t.Errorf("QR version %d, want 29 for %d-byte pieces", st.QRVersion, chunkMax)
	}
	first := st.TextPages + 1
	pages := rasterize(t, pdf, dir, "qr", first, first+st.QRPages-1)
	shell(t, dir, "zbarimg "+zbarOpts+" qr-*.png | sort -u | cut -c9- | base64 -d | gunzip > env.yml")
	if got, err := os.ReadFile(filepath.Join(dir, "env.yml")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("zbarimg did not restore the %d-byte payload (err %v)", target, err)
	}

	t.Run("print and scan", func(t *testing.T) {
		testtool.Require(t, "convert-im6.q16")
		scans := t.TempDir()
		for i, page := range pages[:3] {
			jpg := filepath.Join(scans, fmt.Sprintf("scan-%d.jpg", i+1))
			degrade(t, page, jpg)
			if n := len(scanImage(loadAll(t, []string{jpg})[0])); n != 4 {
				t.Errorf("Restore's scanner read %d of 4 codes on scanned page %d", n, first+i)
			}
		}
		if n := strings.TrimSpace(shell(t, scans, "zbarimg "+zbarOpts+" scan-*.jpg | sort -u | wc -l")); n != "12" {
			t.Errorf("zbarimg read %s of 12 codes on 3 scanned pages", n)
		}
	})
}

// TestRenderContextStops: once its context is done, RenderContext returns the
// context's error and writes nothing.
func TestRenderContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	if _, err := Render(ctx, &buf, testPaper(fakeEnv(9, 20000))); !errors.Is(err, context.Canceled) || buf.Len() > 0 {
		t.Errorf("RenderContext after cancel: %v, %d bytes written", err, buf.Len())
	}
}
