package pebbletest_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/pebbletest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// TestListenerCertificate fetches the directory through a generated listener
// certificate, trusting only the CA handed back: once by the IP it listens on, once
// by 10.0.2.2 as a QEMU guest would, which Client maps to the loopback listener.
func TestListenerCertificate(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "10.0.2.2"} {
		t.Run(host, func(t *testing.T) {
			p := pebbletest.Start(t, pebbletest.Options{
				Listen:   testtool.FreeAddress(t),
				TLSHosts: []string{host},
				HTTPPort: 80, // nothing is validated
			})
			if !strings.HasPrefix(p.Directory, "https://"+host+":") {
				t.Errorf("Directory %s is not on %s", p.Directory, host)
			}
			resp, err := p.Client.Get(p.Directory)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var dir struct{ NewOrder string }
			if err := json.Unmarshal(body, &dir); err != nil || !strings.HasPrefix(dir.NewOrder, "https://"+host+":") {
				t.Errorf("directory %s: %v", body, err)
			}
			p.Roots(t)
		})
	}
}
