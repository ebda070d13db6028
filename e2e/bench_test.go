package e2e

import (
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loginPrompt is getty's prompt on the serial console: the bare system is up.
var loginPrompt = regexp.MustCompile(`(?m)^\S+ login: `)

// phaseLine is the agent's result line of a phase, with its duration.
var phaseLine = regexp.MustCompile(`(?m)^appliance-agent: (configure|start)\s+\S+ \(([0-9.]+)(ms|s)\)`)

// BenchmarkBoot prints the figures of a boot of the host services under TCG (run once:
// -benchtime 1x): the configure and start phases on the first and the second boot,
// QEMU start to the first HTTPS answer, and QEMU start to the login prompt of the same
// image with the agent's unit masked (the bare system), and the ratio of the two. The
// application's figures (first build, second boot to its page, an update with a
// migration) are in make e2e's log.
func BenchmarkBoot(b *testing.B) {
	image := os.Getenv("ECS_E2E_IMAGE")
	if image == "" {
		b.Skip("ECS_E2E_IMAGE is not set: bench/boot.sh builds the image first")
	}
	ecsEnv := prerequisites(b)
	for range b.N {
		dir := b.TempDir()
		_, iso := site(b, ecsEnv, dir, func(s string) string {
			// The host services only: self-signed, and no ECS source to fetch (standby).
			s = withSources(b, s, unreachable, unreachable)
			return replace(b, s, "      enabled: true\n", "      enabled: false\n")
		})
		v := newVM(b, dir, image, iso, false, false, 443)
		for _, name := range []string{"first", "second"} {
			start := time.Now()
			https := make(chan time.Duration, 1)
			go func() {
				for time.Since(start) < 15*time.Minute {
					if _, err := handshake(v.ports[443], tls.VersionTLS12, tls.VersionTLS13); err == nil {
						https <- time.Since(start)
						return
					}
					time.Sleep(500 * time.Millisecond)
				}
			}()
			bt := v.boot(b, name, "standby")
			select {
			case d := <-https:
				b.ReportMetric(d.Seconds(), "s-to-https-"+name)
				if name == "first" {
					defer func(d time.Duration) { b.ReportMetric(d.Seconds()/bare(b, dir, image, iso).Seconds(), "https/bare") }(d)
				}
			case <-time.After(2 * time.Minute):
				b.Errorf("%s boot: no HTTPS answer", name)
			}
			for _, m := range phaseLine.FindAllStringSubmatch(agentLines(bt.serial), -1) {
				secs, _ := strconv.ParseFloat(m[2], 64)
				if m[3] == "ms" {
					secs /= 1000
				}
				b.ReportMetric(secs, "s-"+m[1]+"-"+name)
			}
			bt.powerOff(b)
		}
	}
}

// bare boots a copy of the image with appliance-agent.service masked and returns the
// time from QEMU start to the login prompt on the serial console.
func bare(b *testing.B, dir, image, iso string) time.Duration {
	raw := filepath.Join(dir, "bare.raw")
	run(b, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", image, raw)
	dev, err := exec.Command("losetup", "--find", "--show", "--partscan", raw).Output()
	if err != nil {
		b.Fatal(err)
	}
	loop := strings.TrimSpace(string(dev))
	defer exec.Command("losetup", "-d", loop).Run()
	run(b, "partx", "-u", loop)
	defer exec.Command("partx", "-d", loop).Run()
	mnt := b.TempDir()
	parts, _ := filepath.Glob(loop + "p*")
	mounted := false
	for _, p := range parts {
		if out, _ := exec.Command("blkid", "-s", "TYPE", "-o", "value", p).Output(); strings.TrimSpace(string(out)) == "ext4" {
			run(b, "mount", p, mnt)
			mounted = true
			break
		}
	}
	if !mounted {
		b.Fatal("no ext4 root partition in the image")
	}
	// The unit file is in /etc/systemd/system: masking replaces it with /dev/null.
	unit := filepath.Join(mnt, "etc/systemd/system/appliance-agent.service")
	if err = os.Remove(unit); err == nil {
		err = os.Symlink("/dev/null", unit)
	}
	run(b, "umount", mnt)
	if err != nil {
		b.Fatal(err)
	}
	serial := filepath.Join(dir, "bare-serial.log")
	start := time.Now()
	q := exec.Command("qemu-system-x86_64", "-accel", "tcg,thread=single", "-m", "2048", "-smp", "2", "-nographic", "-no-reboot",
		"-serial", "file:"+serial, "-monitor", "none", "-drive", "file="+raw+",if=virtio,format=raw",
		"-drive", "file="+iso+",media=cdrom,readonly=on", "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0")
	if err := q.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { q.Process.Kill(); q.Wait() }()
	for time.Since(start) < 15*time.Minute {
		if data, _ := os.ReadFile(serial); loginPrompt.Match(data) {
			return time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Fatal("the bare system showed no login prompt")
	return 0
}
