// Command packer-plugin-ecs is the Packer plugin of the ECS appliance. It registers the
// builder "image" (HCL: ecs-image), which makes a bootable disk image without a
// hypervisor, and the provisioner "appliance" (HCL: ecs-appliance), which installs the
// appliance recipe over any communicator. Packer starts it; install it with
// `packer plugins install --path packer-plugin-ecs github.com/ethikkom/ecs`.
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/hashicorp/packer-plugin-sdk/plugin"
	"github.com/hashicorp/packer-plugin-sdk/version"

	"github.com/ethikkom/ecs-appliance/builder"
	"github.com/ethikkom/ecs-appliance/provisioner/appliance"
)

// Version is the plugin's version; `packer plugins install --path` needs a valid one.
var Version = version.NewPluginVersion("0.1.0", "dev", "")

func main() {
	closeInheritedFDs()
	pps := plugin.NewSet()
	pps.RegisterBuilder("image", new(builder.Builder))
	pps.RegisterProvisioner("appliance", new(appliance.Provisioner))
	pps.SetVersion(Version)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// closeInheritedFDs marks the descriptors this process inherited from packer
// close-on-exec. Go passes every descriptor without that flag on to the commands it
// starts; mmdebstrap then numbers its own pipes above 9, which /bin/sh (dash) cannot
// redirect to ("Bad fd number").
func closeInheritedFDs() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return // no /proc: nothing to find them by, and nothing we know leaks
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
