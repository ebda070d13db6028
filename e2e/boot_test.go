// Package e2e boots the built appliance image in QEMU with an env ISO made by
// ecs-env and a blank data disk, as an admin would, and checks what the agent did.
// It needs the image: `make e2e` builds it and sets ECS_E2E_IMAGE.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// outcomeLine is what the agent prints on the serial console when a boot ends.
var outcomeLine = regexp.MustCompile(`appliance-agent: outcome (\S+)`)

func TestBootImage(t *testing.T) {
	image := os.Getenv("ECS_E2E_IMAGE")
	if image == "" {
		t.Skip("ECS_E2E_IMAGE is not set: run make e2e, which builds the image first")
	}
	testtool.RequireRoot(t)
	testtool.Require(t, "qemu-system-x86_64", "qemu-img", "blkid", "e2fsck", "partx", "losetup")
	bin := t.TempDir()
	ecsEnv := filepath.Join(bin, "ecs-env")
	if out, err := exec.Command("go", "build", "-o", ecsEnv, "github.com/ethikkom/ecs-appliance/env-tools/cmd/ecs-env").CombinedOutput(); err != nil {
		t.Fatalf("go build ecs-env: %v\n%s", err, out)
	}
	for _, firmware := range []string{"seabios", "ovmf"} {
		t.Run(firmware, func(t *testing.T) {
			if firmware == "ovmf" {
				testtool.RequireFile(t, "/usr/share/OVMF/OVMF_CODE.fd")
			}
			bootTwice(t, ecsEnv, image, firmware)
		})
	}
}

// bootTwice boots a copy-on-write overlay of the image twice with the same disks:
// the first boot sets up the data disk, the second must find nothing to do.
func bootTwice(t *testing.T, ecsEnv, image, firmware string) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	run(t, ecsEnv, "new", "e2e.example.org", "-o", site, "--key-type", "ed25519")
	envPath := filepath.Join(site, "env.yml")
	withDataDisk(t, envPath)
	run(t, ecsEnv, "build", envPath)

	overlay := filepath.Join(dir, "root.qcow2")
	abs, _ := filepath.Abs(image)
	run(t, "qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", abs, overlay)
	data := filepath.Join(dir, "data.raw")
	run(t, "qemu-img", "create", "-f", "raw", data, "2G")
	vars := ""
	if firmware == "ovmf" {
		vars = filepath.Join(dir, "OVMF_VARS.fd")
		copyFile(t, "/usr/share/OVMF/OVMF_VARS.fd", vars)
	}
	iso := filepath.Join(site, "env-cidata.iso")

	first := boot(t, dir, "first", overlay, data, iso, vars)
	if first != "changed" {
		t.Fatalf("first boot: outcome %q, want changed", first)
	}
	checkDataDisk(t, data)
	second := boot(t, dir, "second", overlay, data, iso, vars)
	if second != "unchanged" {
		t.Fatalf("second boot: outcome %q, want unchanged", second)
	}
}

// withDataDisk makes the env ask for ecs-data and ecs-volatile on the VM's second disk.
func withDataDisk(t *testing.T, envPath string) {
	b, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, "  storage:\n"), strings.Index(s, "  # mail signing key")
	if i < 0 || j < i {
		t.Fatal("env.yml from ecs-env new has no storage section where expected")
	}
	s = s[:i] + `  storage:
    ignore: {data: false, volatile: false}
    setup:
      disks:
        - device: /dev/vdb
          partitions:
            - {label: ecs-data, size: 60%}
            - {label: ecs-volatile, size: rest}
` + s[j:]
	if err := os.WriteFile(envPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// boot runs QEMU until the agent's outcome line, fetches the status page and JSON
// through a forwarded port, powers the VM off, and returns the outcome.
func boot(t *testing.T, dir, name, root, data, iso, ovmfVars string) string {
	t.Helper()
	addr := testtool.FreeAddress(t)
	serial := filepath.Join(dir, name+"-serial.log")
	args := []string{"-accel", "tcg", "-m", "2048", "-smp", "2", "-nographic", "-no-reboot",
		"-serial", "file:" + serial, "-monitor", "none",
		"-drive", "file=" + root + ",if=virtio,format=qcow2",
		"-drive", "file=" + data + ",if=virtio,format=raw",
		"-drive", "file=" + iso + ",media=cdrom,readonly=on",
		"-netdev", "user,id=n0,hostfwd=tcp:" + addr + "-:80", "-device", "virtio-net-pci,netdev=n0",
		"-qmp", "unix:" + filepath.Join(dir, name+".qmp") + ",server,nowait"}
	if ovmfVars != "" {
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
			"-drive", "if=pflash,format=raw,file="+ovmfVars)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	started := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- qemu.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("serial console of the %s boot (tail):\n%s", name, tail(serial, 60))
		}
	}()

	outcome, err := waitOutcome(ctx, serial, exited)
	if err != nil {
		qemu.Process.Kill()
		t.Fatalf("%s boot: %v", name, err)
	}
	// The figure the issue asks for: QEMU start to the agent's outcome, under TCG.
	t.Logf("%s boot: outcome %s %s after QEMU started", name, outcome, time.Since(started).Round(time.Second))

	// status.json must agree with the outcome; while the appliance is not running,
	// nginx answers every path with the status page.
	body, code, err := fetch(ctx, "http://"+addr+"/status.json")
	var st struct{ State, Title, Domain string }
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Errorf("GET /status.json: %d %v\n%s", code, err, body)
	} else if want := map[string]string{"changed": "running", "unchanged": "running", "failed": "error"}[outcome]; st.State != want || st.Domain != "e2e.example.org" {
		t.Errorf("status.json says %+v after outcome %s", st, outcome)
	}
	page, code, err := fetch(ctx, "http://"+addr+"/")
	switch {
	case err != nil:
		t.Errorf("GET /: %v", err)
	case st.State != "running" && (code != 503 || !strings.Contains(page, st.Title)):
		t.Errorf("GET / while %s: %d, want the status page\n%s", st.State, code, page)
	}
	powerOff(t, filepath.Join(dir, name+".qmp"), exited, qemu)
	return outcome
}

// waitOutcome follows the serial log until the agent's outcome line.
func waitOutcome(ctx context.Context, serial string, exited <-chan error) (string, error) {
	for {
		if b, err := os.ReadFile(serial); err == nil {
			if m := outcomeLine.FindSubmatch(b); m != nil {
				return string(m[1]), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no outcome line on the serial console: %v", ctx.Err())
		case err := <-exited:
			return "", fmt.Errorf("QEMU exited before the agent's outcome: %v", err)
		case <-time.After(2 * time.Second):
		}
	}
}

func fetch(ctx context.Context, url string) (string, int, error) {
	var lastErr error
	for range 30 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), resp.StatusCode, nil
		}
		lastErr = err
		time.Sleep(2 * time.Second)
	}
	return "", 0, lastErr
}

// powerOff asks the guest to shut down over QMP (ACPI), and stops QEMU if it won't.
func powerOff(t *testing.T, qmpPath string, exited <-chan error, qemu *exec.Cmd) {
	conn, err := net.Dial("unix", qmpPath)
	if err == nil {
		r := bufio.NewReader(conn)
		r.ReadString('\n') // greeting
		fmt.Fprintln(conn, `{"execute":"qmp_capabilities"}`)
		r.ReadString('\n')
		fmt.Fprintln(conn, `{"execute":"system_powerdown"}`)
		r.ReadString('\n')
		conn.Close()
	}
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		t.Log("the guest did not power off within 3 minutes; stopping QEMU")
		qemu.Process.Kill()
		<-exited
	}
}

// checkDataDisk checks both labels are on the data disk and their filesystems are clean.
func checkDataDisk(t *testing.T, img string) {
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	defer func() {
		exec.Command("partx", "-d", dev).Run()
		exec.Command("losetup", "-d", dev).Run()
	}()
	run(t, "partx", "-a", dev)
	for i, label := range []string{"ecs-data", "ecs-volatile"} {
		part := fmt.Sprintf("%sp%d", dev, i+1)
		got, err := exec.Command("blkid", "-p", "-s", "LABEL", "-o", "value", part).Output()
		if err != nil || strings.TrimSpace(string(got)) != label {
			t.Errorf("%s: label %q (%v), want %s", part, got, err, label)
			continue
		}
		if out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput(); err != nil {
			t.Errorf("e2fsck %s: %v\n%s", label, err, out)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
