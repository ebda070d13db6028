package extra

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
)

// TestFilesWithOwnerAndMode: extra files are written with their mode and owner and
// a final newline (the deprecated `content` too), and a second run changes nothing.
func TestFilesWithOwnerAndMode(t *testing.T) {
	c := servicetest.Context(t, func(s string) string {
		return strings.Replace(s, "  extra:\n    files:\n", "  extra:\n    packages: [nginx]\n    files:\n      - path: /data/ecs-ca/ca.cert.pem\n        contents: CA\n        owner: app:postgres\n        permissions: \"0640\"\n", 1)
	}, services.Facts{})
	os.MkdirAll(c.M.Path("/data/ecs-ca"), 0o700)
	st, err := services.Configure(context.Background(), c, []services.Service{Service{}})
	if err != nil || st[0].State != "changed" {
		t.Fatalf("%+v %v", st, err)
	}
	for path, want := range map[string]struct {
		content string
		mode    os.FileMode
	}{
		"/root/.ssh/config":        {"Host backup\n  User ecsbackup\n", 0o600},
		"/data/ecs-ca/ca.cert.pem": {"CA\n", 0o640},
	} {
		got, err := os.ReadFile(c.M.Path(path))
		fi, _ := os.Stat(c.M.Path(path))
		if err != nil || string(got) != want.content || fi.Mode().Perm() != want.mode {
			t.Errorf("%s: %q %v, want %q %v (%v)", path, got, fi.Mode().Perm(), want.content, want.mode, err)
		}
	}
	again := services.NewContext(c.M, c.Env, c.Facts, c.Now)
	if st, err := services.Configure(context.Background(), again, []services.Service{Service{}}); err != nil || st[0].State != "configured" {
		t.Errorf("second run: %+v %v", st, err)
	}
}
