package qrpaper

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // scans arrive as JPEG
	_ "image/png"  // and as PNG
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/makiuchi-d/gozxing"
	multidetector "github.com/makiuchi-d/gozxing/multi/qrcode/detector"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/detector"
	xdraw "golang.org/x/image/draw"
)

// maxEnvBytes bounds what Restore inflates, so that a crafted set of codes cannot
// exhaust memory; a real env is a few hundred kilobytes at most.
const maxEnvBytes = 64 << 20

// LoadImages decodes PNG and JPEG files, e.g. scanned pages or pdftoppm output. A
// file that cannot be read is reported as an *os.PathError (wrapped), one that is no
// image otherwise: the file is read whole first, so a read error (a directory, say)
// is never mistaken for a bad image.
func LoadImages(paths ...string) ([]image.Image, error) {
	imgs := make([]image.Image, 0, len(paths))
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("qrpaper: %w", err)
		}
		img, _, err := image.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("qrpaper: reading image %s: %w", path, err)
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

// Restore reads the QR codes on the given pages, in any order and with pages given
// twice, and returns the env they hold. It fails, returning no data, when a code is
// missing (naming it), when codes of different backups or foreign codes are mixed in,
// and when the gzip stream or the sha256 it carries does not check out. Pages without
// codes, such as the text listing, are ignored.
func Restore(images []image.Image) ([]byte, error) {
	found := make([][]string, len(images))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(images)) {
		wg.Go(func() {
			for i := range next {
				found[i] = scanImage(images[i])
			}
		})
	}
	for i := range images {
		next <- i
	}
	close(next)
	wg.Wait()
	var texts []string
	for _, f := range found {
		texts = append(texts, f...)
	}
	return assemble(texts)
}

// scanImage returns the texts of the QR codes on one page. It looks for the finder
// patterns of all codes on the page; on a rotated, blurred or noisy scan that may
// miss a pattern, so each quadrant of the 2×2 layout that yielded no code is read
// again on its own (with overlap, as scans are not aligned), in several ways
// (retries).
func scanImage(img image.Image) []string {
	g := gray(img)
	src := gozxing.NewLuminanceSourceFromImage(g)
	w, h := src.GetWidth(), src.GetHeight()
	var done [4]bool // quadrants holding a code read
	seen := map[string]bool{}
	var texts []string
	// quadrantOf returns the quadrant of the code whose finder patterns are info,
	// found in the part of the page from origin on, scaled by scale: the code's
	// centre lies half-way between its top right and bottom left.
	quadrantOf := func(info *detector.FinderPatternInfo, origin image.Point, scale float64) int {
		tr, bl := info.GetTopRight(), info.GetBottomLeft()
		cx := float64(origin.X) + (tr.GetX()+bl.GetX())/2/scale
		cy := float64(origin.Y) + (tr.GetY()+bl.GetY())/2/scale
		return quadrant(cx, cy, w, h)
	}
	read := func(bits *gozxing.BitMatrix, info *detector.FinderPatternInfo, q int) {
		s, ok := decodeAt(bits, info)
		if !ok {
			return
		}
		done[q] = true
		if !seen[s] {
			seen[s] = true
			texts = append(texts, s)
		}
	}
	if bits, err := gozxing.NewHybridBinarizer(src).GetBlackMatrix(); err == nil {
		infos, _ := multidetector.NewMultiFinderPatternFinder(bits, nil).FindMulti(tryHarder)
		for _, info := range infos {
			read(bits, info, quadrantOf(info, image.Point{}, 1))
		}
	}
	cw, ch := w*6/10, h*6/10
	for q, corner := range []image.Point{{0, 0}, {w - cw, 0}, {0, h - ch}, {w - cw, h - ch}} {
		r := image.Rectangle{Min: corner, Max: corner.Add(image.Pt(cw, ch))}.Add(g.Rect.Min)
		for _, rt := range retries {
			if done[q] {
				break
			}
			bits, ok := rt.binarize(g, r)
			if !ok {
				continue
			}
			// The crop holds finder patterns of the neighbouring codes as well.
			// gozxing's single-code finder stops at the first three it confirms and,
			// once it has two, skips rows on the assumption that they are one code's
			// top pair, so it may settle on the neighbours' patterns or skip over the
			// one sought. The multi-code finder scans the whole crop and returns every
			// plausible triple; those whose code lies in this quadrant are tried.
			infos, _ := multidetector.NewMultiFinderPatternFinder(bits, nil).FindMulti(tryHarder)
			for _, info := range infos {
				if !done[q] && quadrantOf(info, corner, rt.scale) == q {
					read(bits, info, q)
				}
			}
		}
	}
	return texts
}

var tryHarder = map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}

// quadrant numbers the quadrants of a w×h page as the layout does: 0 1 / 2 3.
func quadrant(x, y float64, w, h int) int {
	q := 0
	if x >= float64(w)/2 {
		q++
	}
	if y >= float64(h)/2 {
		q += 2
	}
	return q
}

// retry is one way to read a quadrant again. The hybrid binarizer thresholds blocks
// of 8 pixels, so scaling moves the block edges and with them which blurred pixels
// turn black: a finder pattern lost at one scale is often found at another. The
// global binarizer helps where the scan's contrast is even but weak.
type retry struct {
	scale  float64
	global bool
}

var retries = []retry{{1, false}, {1.25, false}, {0.8, false}, {1.5, false}, {1, true}, {1.25, true}}

// binarize scales the region r of g and returns its black and white matrix.
func (rt retry) binarize(g *image.Gray, r image.Rectangle) (*gozxing.BitMatrix, bool) {
	crop := g.SubImage(r).(*image.Gray)
	if rt.scale != 1 {
		dst := image.NewGray(image.Rect(0, 0, int(float64(r.Dx())*rt.scale), int(float64(r.Dy())*rt.scale)))
		xdraw.BiLinear.Scale(dst, dst.Rect, crop, r, xdraw.Src, nil)
		crop = dst
	}
	src := gozxing.NewLuminanceSourceFromImage(crop)
	var b gozxing.Binarizer = gozxing.NewHybridBinarizer(src)
	if rt.global {
		b = gozxing.NewGlobalHistgramBinarizer(src)
	}
	bits, err := b.GetBlackMatrix()
	return bits, err == nil
}

// gray returns img in grey. gozxing reads pixels through image.Image.At, which
// allocates once per pixel of a colour image; a scan's JPEG already carries its
// luminance in the Y plane.
func gray(img image.Image) *image.Gray {
	if g, ok := img.(*image.Gray); ok {
		return g
	}
	b := img.Bounds()
	g := image.NewGray(b)
	switch img := img.(type) {
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			i := img.YOffset(b.Min.X, y)
			copy(g.Pix[g.PixOffset(b.Min.X, y):], img.Y[i:i+b.Dx()])
		}
	default:
		draw.Draw(g, b, img, b.Min, draw.Src)
	}
	return g
}

// decodeAt reads the code whose finder patterns are info. gozxing's own detector
// derives the code's dimension from one estimate of the module size, which for our
// large codes (about 133 modules) is often off by two modules on a scan, and then
// gives up; here the versions next to the estimate are tried as well, and the
// Reed-Solomon check of the decoder rejects the wrong ones.
func decodeAt(bits *gozxing.BitMatrix, info *detector.FinderPatternInfo) (string, bool) {
	tl, tr, bl := info.GetTopLeft(), info.GetTopRight(), info.GetBottomLeft()
	module := (tl.GetEstimatedModuleSize() + tr.GetEstimatedModuleSize() + bl.GetEstimatedModuleSize()) / 3
	between := (gozxing.ResultPoint_Distance(tl, tr) + gozxing.ResultPoint_Distance(tl, bl)) / 2
	if module < 1 {
		return "", false
	}
	guess := int(math.Round((between/module + 7 - 17) / 4))
	for _, dv := range []int{0, -1, 1, -2, 2} {
		version := guess + dv
		if version < 1 || version > 40 {
			continue
		}
		dim := 17 + 4*version
		var align *detector.AlignmentPattern
		if version > 1 {
			align = findAlignment(bits, tl, tr, bl, dim, between/float64(dim-7))
		}
		grid, err := detector.Detector_sampleGrid(bits, detector.Detector_createTransform(tl, tr, bl, align, dim), dim)
		if err != nil {
			continue
		}
		if res, err := decoder.NewDecoder().Decode(grid, nil); err == nil {
			return res.GetText(), true
		}
	}
	return "", false
}

// findAlignment looks for the alignment pattern nearest the bottom right corner,
// where gozxing's detector looks, in growing regions; nil if there is none.
func findAlignment(bits *gozxing.BitMatrix, tl, tr, bl gozxing.ResultPoint, dim int, module float64) *detector.AlignmentPattern {
	brX := tr.GetX() - tl.GetX() + bl.GetX()
	brY := tr.GetY() - tl.GetY() + bl.GetY()
	corr := 1 - 3/float64(dim-7) // the pattern sits 3 modules in from the corner
	x := tl.GetX() + corr*(brX-tl.GetX())
	y := tl.GetY() + corr*(brY-tl.GetY())
	for _, allowance := range []float64{4, 8, 16} {
		r := allowance * module
		left, top := max(0, int(x-r)), max(0, int(y-r))
		right, bottom := min(bits.GetWidth()-1, int(x+r)), min(bits.GetHeight()-1, int(y+r))
		if float64(right-left) < 3*module || float64(bottom-top) < 3*module {
			return nil
		}
		if p, err := detector.NewAlignmentPatternFinder(bits, left, top, right-left, bottom-top, module, nil).Find(); err == nil {
			return p
		}
	}
	return nil
}

// piece is one decoded code: its number, the backup's total and its gzip bytes.
type piece struct {
	i, n int
	data []byte
}

// parsePiece reads "003/146 <base64>". Error messages never quote the text: a code
// of ours carries secrets.
func parsePiece(text string) (piece, error) {
	foreign := errors.New("qrpaper: a QR code that is not part of a paper backup was found")
	if len(text) < labelLen || text[3] != '/' || text[7] != ' ' {
		return piece{}, foreign
	}
	i, ok1 := digits(text[:3])
	n, ok2 := digits(text[4:7])
	data, err := base64.StdEncoding.Strict().DecodeString(text[labelLen:])
	if !ok1 || !ok2 || err != nil || i < 1 || i > n || len(data) == 0 {
		return piece{}, foreign
	}
	return piece{i: i, n: n, data: data}, nil
}

// digits reads a number written with decimal digits only: strconv.Atoi alone also
// takes a sign ("+01").
func digits(s string) (int, bool) {
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// assemble checks that texts form one complete backup and returns the env.
func assemble(texts []string) ([]byte, error) {
	if len(texts) == 0 {
		return nil, errors.New("qrpaper: no QR codes found")
	}
	var pieces [][]byte
	total := 0
	for _, text := range texts {
		p, err := parsePiece(text)
		if err != nil {
			return nil, err
		}
		if total == 0 {
			total = p.n
			pieces = make([][]byte, total+1)
		}
		if p.n != total {
			return nil, fmt.Errorf("qrpaper: codes of different backups: some count %d codes, some %d", total, p.n)
		}
		if pieces[p.i] != nil && !bytes.Equal(pieces[p.i], p.data) {
			return nil, fmt.Errorf("qrpaper: two different codes are labelled %d/%d: codes of different backups", p.i, total)
		}
		pieces[p.i] = p.data
	}
	var missing []string
	for i := 1; i <= total; i++ {
		if pieces[i] == nil {
			missing = append(missing, fmt.Sprintf("%d/%d", i, total))
		}
	}
	if len(missing) > 0 {
		const show = 20
		more := ""
		if len(missing) > show {
			more = fmt.Sprintf(" and %d more", len(missing)-show)
			missing = missing[:show]
		}
		return nil, fmt.Errorf("qrpaper: incomplete backup: missing %s%s", strings.Join(missing, ", "), more)
	}
	return inflate(bytes.Join(pieces[1:], nil))
}

// inflate gunzips gz and checks the sha256 its header carries.
func inflate(gz []byte) ([]byte, error) {
	damaged := func(err error) error {
		return fmt.Errorf("qrpaper: the codes do not form a valid gzip stream (damaged or mixed codes): %w", err)
	}
	br := bytes.NewReader(gz)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, damaged(err)
	}
	zr.Multistream(false)
	want, ok := strings.CutPrefix(zr.Comment, sumComment)
	if !ok {
		return nil, errors.New("qrpaper: the backup carries no sha256 to check against")
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxEnvBytes+1))
	if err != nil {
		return nil, damaged(err)
	}
	if len(data) > maxEnvBytes {
		return nil, fmt.Errorf("qrpaper: the backup inflates to more than %d bytes", maxEnvBytes)
	}
	if br.Len() > 0 {
		return nil, damaged(errors.New("data after the end of the gzip stream"))
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("qrpaper: sha256 mismatch: the restored data has %s, the backup says %s", got, want)
	}
	return data, nil
}
