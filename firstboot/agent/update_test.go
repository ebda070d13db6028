package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/agent/agenttest"
)

// TestUpdateUnderRoot: on a tree the update names each step it would run, takes the
// force flags it knows (and leaves an unknown one), writes its figures, and would
// reboot when a package asks for it.
func TestUpdateUnderRoot(t *testing.T) {
	root := agenttest.NewRoot(t, nil)
	if out, err := runBoot(t, root, "start"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	flags := filepath.Join(root, FlagsDir)
	os.MkdirAll(flags, 0o755)
	for _, f := range []string{"force.update.system", "force.update.postgres", "force.update.bogus"} {
		os.WriteFile(filepath.Join(flags, f), nil, 0o644)
	}
	os.WriteFile(filepath.Join(root, RebootRequired), nil, 0o644)
	var out strings.Builder
	if err := Update(t.Context(), Options{Root: root, Out: &out, Facts: facts}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"would run apt-get update and unattended-upgrade", "would restart appliance.service",
		"would update the application", "flag force.update.postgres taken", "unknown flag force.update.bogus", "would reboot"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	left, _ := os.ReadDir(flags)
	if len(left) != 1 || left[0].Name() != "force.update.bogus" {
		t.Errorf("flags left: %v", left)
	}
	prom, _ := os.ReadFile(filepath.Join(root, "app/etc/metric_import/update.prom"))
	for _, want := range []string{"update_last_call ", "update_running_time ", "update_last_failed 0"} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("update.prom has no %q:\n%s", want, prom)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "app/etc/metric_import/update_last_reboot.prom")); err != nil {
		t.Error("the reboot was not recorded")
	}
}
