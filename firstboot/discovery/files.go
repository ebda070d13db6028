package discovery

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// envFile reads the file $ENV_YML names, under root.
func envFile(root, envYML string) outcome {
	if envYML == "" {
		return absent("", "ENV_YML is not set")
	}
	if !filepath.IsAbs(envYML) {
		return failed(envYML, "ENV_YML must be an absolute path")
	}
	return readFile(filepath.Join(root, envYML))
}

// readFile reads a regular file of at most MaxDocumentSize bytes; a missing file is absent.
func readFile(name string) outcome {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return absent(name, "no such file")
	}
	if err != nil {
		return failed(name, "%v", pathless(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return failed(name, "%v", pathless(err))
	}
	if !st.Mode().IsRegular() {
		return failed(name, "not a regular file")
	}
	doc, err := readCapped(f)
	if err != nil {
		return failed(name, "%v", err)
	}
	return found(name, doc)
}

var errTooLarge = fmt.Errorf("document is larger than %d bytes", MaxDocumentSize)

// readCapped reads r to the end, refusing more than MaxDocumentSize bytes.
func readCapped(r io.Reader) ([]byte, error) {
	doc, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(doc) > MaxDocumentSize {
		return nil, errTooLarge
	}
	return doc, nil
}

// pathless drops the path from a *fs.PathError: reports carry it in From already.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
