package qrpaper

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// BenchmarkRender renders a typical env (9 KB) and a large one (100 KB).
func BenchmarkRender(b *testing.B) {
	for _, size := range []int{9_000, 100_000} {
		data := fakeEnv(1, size)
		b.Run(fmt.Sprintf("%dKB", size/1000), func(b *testing.B) {
			b.ReportAllocs()
			var st Stats
			for b.Loop() {
				var err error
				if st, err = Render(context.Background(), io.Discard, testPaper(data)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.Pages), "pages")
			b.ReportMetric(float64(st.QRCodes), "codes")
			b.ReportMetric(float64(st.QRVersion), "qr-version")
		})
	}
}

// BenchmarkRestore restores a 9 KB env from its QR pages rendered at 150 dpi.
func BenchmarkRestore(b *testing.B) {
	testtool.Require(b, "pdftoppm")
	data := fakeEnv(1, 9_000)
	dir := b.TempDir()
	pdf, st := renderFile(b, dir, testPaper(data))
	imgs := loadAll(b, rasterize(b, pdf, dir, "qr", st.TextPages+1, st.TextPages+st.QRPages))
	b.ReportAllocs()
	for b.Loop() {
		got, err := Restore(imgs)
		if err != nil || !bytes.Equal(got, data) {
			b.Fatalf("Restore: %v", err)
		}
	}
	b.ReportMetric(float64(st.QRPages), "pages")
	b.ReportMetric(float64(st.QRCodes), "codes")
}

// BenchmarkRestoreScans compares Restore's scanner with zbarimg on simulated
// print-and-scans (issue 10): the QR pages of a 25 KB env of ecs-env new (20 codes) at 140 dpi,
// each page degraded at random (randomScanning), one seed per page and trial. Each
// iteration is one trial, so -benchtime=100x runs 100. It reports the share of codes
// and of whole sets each reader gets, the codes only zbarimg reads, and the scanner's
// time per page.
func BenchmarkRestoreScans(b *testing.B) {
	testtool.Require(b, "pdftoppm", "convert-im6.q16", "zbarimg")
	data, err := os.ReadFile("testdata/env-25k.yml")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	pdf, st := renderFile(b, dir, testPaper(data))
	pages := rasterizeAt(b, 140, pdf, dir, "qr", st.TextPages+1, st.TextPages+st.QRPages)
	jpg := filepath.Join(dir, "scan.jpg")
	var trials, zbarCodes, ourCodes, zbarSets, ourSets, zbarOnly int
	var scanTime time.Duration
	for b.Loop() {
		b.StopTimer()
		zbarSet, ourSet := 0, 0
		for p, page := range pages {
			randomScanning(uint64(trials*100+p)).apply(b, page, jpg)
			zl := zbarLabels(b, jpg)
			img := loadAll(b, []string{jpg})[0]
			b.StartTimer()
			start := time.Now()
			ol := scanLabels(img)
			scanTime += time.Since(start)
			b.StopTimer()
			zbarSet += len(zl)
			ourSet += len(ol)
			for l := range zl {
				if !ol[l] {
					zbarOnly++
				}
			}
		}
		zbarCodes += zbarSet
		ourCodes += ourSet
		if zbarSet == st.QRCodes {
			zbarSets++
		}
		if ourSet == st.QRCodes {
			ourSets++
		}
		trials++
		b.StartTimer()
	}
	codes := float64(trials * st.QRCodes)
	b.ReportMetric(100*float64(zbarCodes)/codes, "zbar-codes-%")
	b.ReportMetric(100*float64(ourCodes)/codes, "ours-codes-%")
	b.ReportMetric(100*float64(zbarSets)/float64(trials), "zbar-sets-%")
	b.ReportMetric(100*float64(ourSets)/float64(trials), "ours-sets-%")
	b.ReportMetric(float64(zbarOnly), "zbar-only-codes")
	b.ReportMetric(float64(scanTime.Milliseconds())/float64(trials*len(pages)), "ms/page")
}
