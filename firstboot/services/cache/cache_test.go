package cache

import (
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
)

// TestRender: neither redis nor memcached has a check-only mode; the renders are
// golden files, and the e2e proves the units start with them.
func TestRender(t *testing.T) {
	c := servicetest.Context(t, nil, services.Facts{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Golden(t, "default", files)
}
