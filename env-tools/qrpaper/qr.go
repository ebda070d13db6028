package qrpaper

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"runtime"
	"sync"
	"time"

	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/encoder"
)

const (
	// chunkMax is the most gzip bytes one code carries: 1200 base64 characters plus the
	// label fit QR version 29 at level M, which decodes reliably after a crude
	// print-and-scan at 150 dpi; version 40 codes did not.
	chunkMax = 900
	// MaxCodes is the most codes a backup has: the label's three digits let plain
	// sort order them.
	MaxCodes = 999
	// MaxGzipBytes is the largest gzip -9 output of an env that fits a paper backup.
	MaxGzipBytes = chunkMax * MaxCodes

	labelLen   = len("001/001 ")
	sumComment = "sha256:"
	quietZone  = 4 // modules of white around a code, as the QR standard asks
)

// compress gzips data at level 9 and records its sha256 in the gzip header's comment
// field: gunzip ignores it, Restore checks it.
func compress(data []byte, sum [32]byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.Comment = sumComment + hex.EncodeToString(sum[:])
	zw.ModTime = mtime
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// payloads splits gz into evenly sized chunks of at most chunkMax bytes and returns
// the text of each code: "003/146 " and the chunk in base64. Every chunk but the last
// is a multiple of 3 bytes long, so the base64 texts have no padding inside and
// concatenate into one stream that base64 -d accepts.
func payloads(gz []byte) []string {
	n := (len(gz) + chunkMax - 1) / chunkMax
	size := (len(gz) + n - 1) / n
	size = (size + 2) / 3 * 3
	n = (len(gz) + size - 1) / size
	texts := make([]string, n)
	for i := range n {
		chunk := gz[i*size : min((i+1)*size, len(gz))]
		texts[i] = fmt.Sprintf("%03d/%03d %s", i+1, n, base64.StdEncoding.EncodeToString(chunk))
	}
	return texts
}

// qrCode is one encoded code: a two-colour PNG, quiet zone included, which the PDF
// embeds as it is and scales to the printed size.
type qrCode struct {
	png     []byte
	version int
}

// pixelsPerModule: poppler enlarges an image less than 4× with bilinear
// interpolation, and the soft module edges that gives at 150 dpi made zbarimg miss
// codes; an image of 4 pixels per module is only reduced there, and all codes read.
const pixelsPerModule = 4

var blackWhite = color.Palette{color.Gray{Y: 0}, color.Gray{Y: 0xff}}

// encodeQR encodes text at error correction level M.
func encodeQR(text string) (qrCode, error) {
	code, err := encoder.Encoder_encode(text, decoder.ErrorCorrectionLevel_M, nil)
	if err != nil {
		return qrCode{}, fmt.Errorf("qrpaper: encoding a QR code: %w", err)
	}
	m := code.GetMatrix()
	d := m.GetWidth()
	side := (d + 2*quietZone) * pixelsPerModule
	img := image.NewPaletted(image.Rect(0, 0, side, side), blackWhite)
	for i := range img.Pix {
		img.Pix[i] = 1 // white
	}
	for my := range d {
		y := (my + quietZone) * pixelsPerModule
		row := img.Pix[y*img.Stride : (y+1)*img.Stride]
		for mx := range d {
			if m.Get(mx, my) == 1 {
				x := (mx + quietZone) * pixelsPerModule
				clear(row[x : x+pixelsPerModule]) // black
			}
		}
		for i := 1; i < pixelsPerModule; i++ {
			copy(img.Pix[(y+i)*img.Stride:], row)
		}
	}
	// Two colours make a PNG of one bit per pixel, small and quick to compress.
	var buf bytes.Buffer
	if err := pngEncoder.Encode(&buf, img); err != nil {
		return qrCode{}, fmt.Errorf("qrpaper: encoding a QR code image: %w", err)
	}
	return qrCode{png: buf.Bytes(), version: code.GetVersion().GetVersionNumber()}, nil
}

// pngEncoder reuses its compressors: a new one per code costs about a megabyte.
var pngEncoder = png.Encoder{BufferPool: &pngBuffers{}}

type pngBuffers struct{ pool sync.Pool }

func (p *pngBuffers) Get() *png.EncoderBuffer {
	b, _ := p.pool.Get().(*png.EncoderBuffer)
	return b
}

func (p *pngBuffers) Put(b *png.EncoderBuffer) { p.pool.Put(b) }

// encodeAll encodes the codes in parallel: choosing the mask pattern and
// compressing the image make encoding the slowest step of Render.
func encodeAll(ctx context.Context, texts []string) ([]qrCode, error) {
	codes := make([]qrCode, len(texts))
	errs := make([]error, len(texts))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(texts)) {
		wg.Go(func() {
			for i := range next {
				if errs[i] = ctx.Err(); errs[i] == nil {
					codes[i], errs[i] = encodeQR(texts[i])
				}
			}
		})
	}
	for i := range texts {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return codes, nil
}
