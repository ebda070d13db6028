package qrpaper

import (
	"bytes"
	"fmt"
	"io"
	"testing"

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
				if st, err = Render(io.Discard, testPaper(data)); err != nil {
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
