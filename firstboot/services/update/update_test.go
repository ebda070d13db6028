package update

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/images"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// TestTimer: the timer from appliance.update.oncalendar, which systemd-analyze
// accepts together with the image's service it starts.
func TestTimer(t *testing.T) {
	c := servicetest.Context(t, func(s string) string {
		return strings.Replace(s, "    oncalendar: Sun *-*-* 06:30:00\n", "    oncalendar: \"Mon..Fri *-*-* 05:15:00\"\n", 1)
	}, services.Facts{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Golden(t, "default", files)
	if got := (Service{}).Spec(c.Env).Units; len(got) != 1 || got[0] != Timer {
		t.Errorf("units %v", got)
	}

	analyze := testtool.Require(t, "systemd-analyze")[0]
	dir := t.TempDir()
	unit, err := images.FS.ReadFile("systemd/appliance-update.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify wants the command to exist; the unit's own binary is not on this host.
	unit = []byte(strings.Replace(string(unit), "/usr/local/sbin/appliance-agent update", "/bin/true", 1))
	for name, data := range map[string][]byte{Timer: files[0].Data, "appliance-update.service": unit} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(analyze, "verify", filepath.Join(dir, Timer)).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestNotAutomaticMasks: automatic false masks the timer in place of the file an
// earlier env wrote, and a second run changes nothing.
func TestNotAutomaticMasks(t *testing.T) {
	c := servicetest.Context(t, func(s string) string {
		return strings.Replace(s, "    automatic: true\n    oncalendar", "    automatic: false\n    oncalendar", 1)
	}, services.Facts{})
	if err := os.MkdirAll(filepath.Dir(c.M.Path(TimerPath)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.M.Path(TimerPath), []byte("[Timer]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := services.Configure(t.Context(), c, []services.Service{Service{}}); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(c.M.Path(TimerPath)); err != nil || target != "/dev/null" {
		t.Errorf("%s: %q %v, want a link to /dev/null", TimerPath, target, err)
	}
	if !c.AnyChanged() || len((Service{}).Spec(c.Env).Units) != 0 {
		t.Error("masking was not counted, or the timer is still a unit to start")
	}
	c.Refreshed()
	c2 := services.NewContext(c.M, c.Env, c.Facts, c.Now)
	if _, err := services.Configure(t.Context(), c2, []services.Service{Service{}}); err != nil || c2.AnyChanged() {
		t.Errorf("second run: changed %v, %v", c2.AnyChanged(), err)
	}
}
