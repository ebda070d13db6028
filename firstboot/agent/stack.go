package agent

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/firstboot/services/backup"
	"github.com/ethikkom/ecs-appliance/firstboot/services/cache"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
	"github.com/ethikkom/ecs-appliance/firstboot/services/extra"
	"github.com/ethikkom/ecs-appliance/firstboot/services/mail"
	"github.com/ethikkom/ecs-appliance/firstboot/services/monitoring"
	"github.com/ethikkom/ecs-appliance/firstboot/services/nginx"
	"github.com/ethikkom/ecs-appliance/firstboot/services/pdfas"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
	"github.com/ethikkom/ecs-appliance/firstboot/services/stunnel"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
	"github.com/ethikkom/ecs-appliance/firstboot/services/update"
)

// Stack is the appliance's services in the order the configure phase applies them:
// extra files first (services may read them), the certificate before its users.
var Stack = []services.Service{
	extra.Service{},
	tls.Service{},
	docker.Service{},
	nginx.Service{},
	postgresql.Service{},
	mail.Service{},
	stunnel.Service{},
	cache.Service{},
	app.Service{},
	pdfas.Service{},
	backup.Service{},
	update.Service{},
	monitoring.Service{},
}

// layout is what the services keep on /data and /volatile.
func layout(e *env.Env) ([]machine.Dir, []services.Relocation) {
	var dirs []machine.Dir
	var rels []services.Relocation
	for _, s := range Stack {
		spec := s.Spec(e)
		dirs = append(dirs, spec.Dirs...)
		rels = append(rels, spec.Relocations...)
	}
	return dirs, rels
}

// hostFacts are the memory and cores of the machine the agent runs on.
func hostFacts() services.Facts {
	f := services.Facts{Cores: runtime.NumCPU()}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return f
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			f.MemoryMB = kb / 1024
		}
	}
	return f
}
