// Package qemutest boots disk images in QEMU (TCG: the build machines have no usable
// KVM) for tests and watches the serial console for a marker.
package qemutest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// Firmware is the machine's boot firmware.
type Firmware string

const (
	SeaBIOS Firmware = "seabios"
	OVMF    Firmware = "ovmf"
)

// ovmfImage is the combined OVMF code+vars image of Debian's ovmf package.
const ovmfImage = "/usr/share/ovmf/OVMF.fd"

// limit only keeps a broken boot from hanging the test run; it asserts no speed.
const limit = 15 * time.Minute

// Boot starts img (raw or qcow2, in snapshot mode so it stays unchanged) and returns
// the serial log once every marker has appeared, QEMU exits, or the hang limit passes.
func Boot(t *testing.T, img string, fw Firmware, markers ...string) string {
	t.Helper()
	testtool.Require(t, "qemu-system-x86_64")
	format := "raw"
	if strings.HasSuffix(img, ".qcow2") {
		format = "qcow2"
	}
	logPath := filepath.Join(t.TempDir(), "serial.log")
	args := []string{"-accel", "tcg", "-m", "1024", "-smp", "1", "-nodefaults", "-display", "none",
		"-serial", "file:" + logPath, "-no-reboot",
		"-drive", "file=" + img + ",format=" + format + ",if=virtio,snapshot=on",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"}
	if fw == OVMF {
		if _, err := os.Stat(ovmfImage); err != nil {
			testtool.Missing(t, ovmfImage+" missing (package ovmf)")
		}
		args = append(args, "-bios", ovmfImage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			if stderr.Len() > 0 {
				t.Logf("qemu: %s", stderr.String())
			}
			return string(log)
		case <-ctx.Done():
			log, _ := os.ReadFile(logPath)
			t.Errorf("not all of %q after %s; serial log tail:\n%s", markers, limit, Tail(string(log)))
			return string(log)
		case <-tick.C:
			log, _ := os.ReadFile(logPath)
			if containsAll(log, markers) {
				return string(log)
			}
		}
	}
}

// Tail is the end of a serial log, for failure messages.
func Tail(log string) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

func containsAll(log []byte, markers []string) bool {
	for _, m := range markers {
		if !bytes.Contains(log, []byte(m)) {
			return false
		}
	}
	return true
}
