package backup

import (
	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

// Timer starts appliance-backup.service (`appliance-agent backup`) daily at 22:30,
// as the original's did.
const Timer = "appliance-backup.timer"

// Service is the backup: its timer and duplicity's directories. Run and Restore are
// its lifecycle, called by the agent's backup and restore commands.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:  "backup",
		Reads: []string{"appliance.backup.url", "appliance.backup.options", "appliance.backup.mount", "appliance.backup.encrypt", "ecs.database"},
		Units: []string{Timer},
		Dirs:  []machine.Dir{{Path: ArchiveDir, Mode: 0o700}, {Path: TempDir, Mode: 0o700}},
	}
}

// Files implements services.Service: the backup renders nothing; its settings are
// read when it runs.
func (Service) Files(*services.Context) ([]machine.File, error) { return nil, nil }
