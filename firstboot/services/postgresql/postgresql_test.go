package postgresql

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// TestTune: the original's formulas (original-appliance.md §6.9), worked by hand.
func TestTune(t *testing.T) {
	for _, tc := range []struct {
		facts services.Facts
		want  Tuning
	}{
		// pg_mb = max(512, 2048-2560-256) = 512: the floor.
		{services.Facts{MemoryMB: 2048, Cores: 1}, Tuning{MemoryMB: 2048, Cores: 1, MaxConnections: 44, SharedBuffersMB: 128, WorkMemKB: 4096, EffectiveCacheSizeMB: 2048}},
		// pg_mb = 65536-2560-4096 = 58880; work_mem (58880-14720)*1024/96/16 = 29440.
		{services.Facts{MemoryMB: 65536, Cores: 16}, Tuning{MemoryMB: 65536, Cores: 16, MaxConnections: 164, SharedBuffersMB: 14720, WorkMemKB: 29440, EffectiveCacheSizeMB: 44160}},
		// pg_mb = 262144-2560-512 = 259072; work_mem capped at 65536.
		{services.Facts{MemoryMB: 262144, Cores: 2}, Tuning{MemoryMB: 262144, Cores: 2, MaxConnections: 52, SharedBuffersMB: 64768, WorkMemKB: 65536, EffectiveCacheSizeMB: 194304}},
	} {
		if got := Tune(tc.facts); got != tc.want {
			t.Errorf("Tune(%+v) = %+v, want %+v", tc.facts, got, tc.want)
		}
	}
}

func TestRenders(t *testing.T) {
	testtool.RequireRoot(t) // the server's check runs as postgres
	for _, tc := range []struct {
		variant string
		facts   services.Facts
	}{
		{"small", services.Facts{MemoryMB: 2048, Cores: 1}},
		{"large", services.Facts{MemoryMB: 65536, Cores: 16}},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			c := servicetest.Context(t, nil, tc.facts)
			files, err := Service{}.Files(c)
			if err != nil {
				t.Fatal(err)
			}
			servicetest.Golden(t, tc.variant, files)
			servicetest.Checked(t, c.M, files)
		})
	}
}

// TestServerRejectsBadSettings: the check is the server's own reading of the file.
func TestServerRejectsBadSettings(t *testing.T) {
	testtool.RequireRoot(t)
	c := servicetest.Context(t, nil, services.Facts{MemoryMB: 4096, Cores: 2})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	conf := files[1]
	for _, bad := range []string{"shared_bufferz = 1MB\n", "work_mem = 12parsecs\n"} {
		cand := t.TempDir() + "/appliance.conf"
		os.WriteFile(cand, append(conf.Data, bad...), 0o644)
		err := conf.Check(context.Background(), c.M, cand)
		if err == nil || !strings.Contains(err.Error(), "contains errors") {
			t.Errorf("%q: check %v", bad, err)
		}
	}
}

func TestVerifier(t *testing.T) {
	v := verifier("secret")
	if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") || strings.Contains(v, "secret") || verifier("secret") == v {
		t.Errorf("verifier %q: want a salted SCRAM-SHA-256 verifier without the password", v)
	}
	if pw := parseURLFile(urlFile("p@ss/word", "ecs").Data); pw != "p@ss/word" {
		t.Errorf("DATABASE_URL round trip: %q", pw)
	}
}
