// Package cidata writes the NoCloud seed an admin attaches to the VM: an ISO9660
// image with Rock Ridge and Joliet, volume id "cidata", holding user-data (the
// env.yml), meta-data and env.yml.pdf — what the original made with
// `genisoimage -volid cidata -joliet -rock`.
package cidata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// VolumeID is the label cloud-init's NoCloud datasource looks for.
const VolumeID = "cidata"

const blockSize = 2048

// Files is the content of the seed. All three are secret or derived from secrets.
type Files struct {
	UserData []byte // env.yml, stored byte for byte
	MetaData []byte // MetaData(domain), or the admin's meta-data.custom
	PDF      []byte // env.yml.pdf, the paper backup
}

// MetaData is the original's default meta-data for domain, which must be a valid
// host name (env validation guarantees it).
//
// The instance-id stays the same for every env on purpose: cloud-init treats a
// changed instance-id as a new instance and regenerates host keys and reruns its
// per-instance modules, so a rebuilt seed must not change it.
func MetaData(domain string) []byte {
	return fmt.Appendf(nil, "instance-id: iid-cloud-default\nlocal-hostname: %s\n", domain)
}

// Fill writes a seed image holding files into out, an empty file open for reading
// and writing, such as an atomicfile's temporary file that the caller commits with
// others. On every path the staging copy of the files is removed.
func Fill(out *os.File, files Files) error {
	if len(files.UserData) == 0 || len(files.MetaData) == 0 || len(files.PDF) == 0 {
		return errors.New("cidata: user-data, meta-data and env.yml.pdf must all be non-empty")
	}
	// go-diskfs builds the image from a directory tree. It goes to memory (/dev/shm)
	// so the plaintext staging copy never reaches a disk; where there is no /dev/shm,
	// next to out, on the filesystem that receives the plaintext anyway.
	// MkdirTemp makes it 0700 and the files are 0600; it is removed on every path.
	// Its name starts with out's, so a leftover can be traced to its image.
	ws, err := os.MkdirTemp(workParent(out.Name()), "."+strings.TrimPrefix(filepath.Base(out.Name()), ".")+".work-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ws)

	for _, f := range []struct {
		name string
		data []byte
	}{
		{"user-data", files.UserData},
		{"meta-data", files.MetaData},
		{"env.yml.pdf", files.PDF},
	} {
		if err := writeNew(filepath.Join(ws, f.name), f.data); err != nil {
			return err
		}
	}

	fs, err := iso9660.Create(file.New(out, false), 0, 0, blockSize, ws)
	if err != nil {
		return fmt.Errorf("cidata: %w", err)
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: VolumeID}); err != nil {
		return fmt.Errorf("cidata: %w", err)
	}
	// Finalize writes sparsely and need not end exactly at the volume's last block.
	size, err := volumeSize(out)
	if err != nil {
		return err
	}
	return out.Truncate(size)
}

// writeNew creates name exclusively with mode 0600 and writes data to it.
func writeNew(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// volumeSize reads the volume space size (in logical blocks, ECMA-119 8.4.8) from
// the primary volume descriptor at sector 16.
func volumeSize(f *os.File) (int64, error) {
	var pvd [88]byte
	if _, err := f.ReadAt(pvd[:], 16*blockSize); err != nil {
		return 0, fmt.Errorf("cidata: reading primary volume descriptor: %w", err)
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return 0, errors.New("cidata: no primary volume descriptor at sector 16")
	}
	return int64(binary.LittleEndian.Uint32(pvd[80:84])) * blockSize, nil
}

func workParent(target string) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return filepath.Dir(target)
}
