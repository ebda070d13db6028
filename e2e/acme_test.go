package e2e

import "testing"

// acmeBoot boots the appliance with ACME against a Pebble on the host.
func acmeBoot(t *testing.T, ecsEnv, image string) {
	t.Skip("needs internal/pebbletest")
}
