package stunnel

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func TestRenderLoads(t *testing.T) {
	testtool.Require(t, "stunnel4")
	c := servicetest.Context(t, nil, services.Facts{})
	servicetest.Prepare(t, c, tls.Service{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Golden(t, "default", files)
	servicetest.Checked(t, c.M, files)
}

// TestKeyThatDoesNotMatchIsRejected: stunnel itself loads the pair; a key of another
// certificate fails the check and keeps the old file.
func TestKeyThatDoesNotMatchIsRejected(t *testing.T) {
	testtool.Require(t, "stunnel4")
	c := servicetest.Context(t, nil, services.Facts{})
	servicetest.Prepare(t, c, tls.Service{})
	files, _ := Service{}.Files(c)
	servicetest.Checked(t, c.M, files)
	other := servicetest.Context(t, func(s string) string {
		return strings.Replace(s, "domain: ecs.example.org", "domain: other.example.org", 1)
	}, services.Facts{})
	servicetest.Prepare(t, other, tls.Service{})
	key, _ := os.ReadFile(other.M.Path(tls.KeyPath))
	if _, err := c.M.WriteFile(context.Background(), machine.File{Path: tls.KeyPath, Data: key, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	f := files[0]
	f.Data = append(f.Data, "\n"...) // a change, so the check runs
	if _, err := c.M.WriteFile(context.Background(), f); err == nil || !strings.Contains(err.Error(), "stunnel4 did not load it") {
		t.Errorf("a mismatched pair: %v", err)
	}
}
