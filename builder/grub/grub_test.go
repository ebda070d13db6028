package grub

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestBIOSBootSector(t *testing.T) {
	boot := bytes.Repeat([]byte{0xab}, Sector)
	mbr := make([]byte, Sector)
	copy(mbr[0x1b8:], []byte{1, 2, 3, 4}) // disk signature
	mbr[0x1c2] = 0xee                     // protective partition type
	out, err := BIOSBootSector(boot, mbr, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint64(out[0x5c:]) != 2048 || out[0x64] != 0xff || out[0x66] != 0x90 || out[0x67] != 0x90 {
		t.Error("boot.img fields not patched")
	}
	if out[0] != 0xab || !bytes.Equal(out[0x1b8:0x1bc], []byte{1, 2, 3, 4}) || out[0x1c2] != 0xee || out[0x1fe] != 0x55 || out[0x1ff] != 0xaa {
		t.Error("code, signature or partition table wrong")
	}
	if _, err := BIOSBootSector(boot[:10], mbr, 1); err == nil {
		t.Error("short boot.img accepted")
	}
}

func TestPatchCore(t *testing.T) {
	core := bytes.Repeat([]byte{1}, 3*Sector+100)
	out, err := PatchCore(core, 2048, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4*Sector {
		t.Fatalf("len %d", len(out))
	}
	e := out[Sector-12:]
	if binary.LittleEndian.Uint64(e) != 2049 || binary.LittleEndian.Uint16(e[8:]) != 3 || binary.LittleEndian.Uint16(e[10:]) != 0x820 {
		t.Errorf("block list entry % x", e)
	}
	if !bytes.Equal(out[Sector-24:Sector-12], make([]byte, 12)) {
		t.Error("no terminator entry")
	}
	if _, err := PatchCore(core, 2048, 2); err == nil {
		t.Error("core larger than the partition accepted")
	}
}

func TestConfig(t *testing.T) {
	c := Config("u-u-i-d", "/boot/vmlinuz-6", "/boot/initrd.img-6")
	for _, want := range []string{"search --no-floppy --fs-uuid --set=root u-u-i-d", "linux /boot/vmlinuz-6 root=UUID=u-u-i-d ro console=tty0 console=ttyS0", "initrd /boot/initrd.img-6"} {
		if !strings.Contains(c, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, c)
		}
	}
	args := strings.Join(MkimageArgs(UEFI, "/e.cfg", "/o.efi"), " ")
	if !strings.HasPrefix(args, "grub-mkimage -O x86_64-efi -o /o.efi -c /e.cfg -p /boot/grub") || !strings.Contains(args, " fat ") {
		t.Errorf("mkimage args %s", args)
	}
}
