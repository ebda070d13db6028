// Package storage makes /data and /volatile what env.yml says they are, without ever
// losing data: it finds the filesystems labelled ecs-data and ecs-volatile (or makes them
// on the disks of appliance.storage.setup.disks: GPT, ext4 or swap), lists them in
// /etc/fstab, mounts them, lays out the directories the appliance's services use, and
// moves the services' old state directories onto them behind symlinks.
//
// Ensure converges: every step first looks at what is there, so a second run on the
// same machine changes nothing and says so, and a run killed at any point is finished by
// the next one. A disk that carries anything (partition table, filesystem signature,
// non-zero bytes at either end) is only written to when its entry says wipe: true, and
// never while one of our labelled filesystems lives on it.
//
// Every path is taken under Options.Root, except block devices (and /sys, /proc), which
// are the machine's own; Options.Devices keeps probing and partitioning to given devices,
// so tests run on loop devices and never see the host's disks.
package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

// The labels the appliance mounts on /data and /volatile.
const (
	DataLabel     = "ecs-data"
	VolatileLabel = "ecs-volatile"
)

// Options says where and on what Ensure works.
type Options struct {
	// Root is the root of the machine's filesystem tree ("" means "/").
	Root string
	// Storage is appliance.storage of env.yml.
	Storage env.Storage
	// Devices, when not empty, are the only block devices probed for labels (with their
	// partitions) and the only ones setup may partition; nil probes every block device.
	Devices []string
	// Mount mounts a filesystem; nil runs mount(8).
	Mount MountFunc
	// Dirs are the directories the services keep their state in, made (in order) once
	// the volumes are mounted; Relocations move their old state directories onto them.
	Dirs        []machine.Dir
	Relocations []services.Relocation
	// Services stops and starts the units around a relocation; nil uses systemd.
	Services Services
}

// MountFunc mounts device (of type fstype) on target, an absolute path.
type MountFunc func(ctx context.Context, device, target, fstype string) error

// Result lists what Ensure did, one human-readable line per change, paths as seen
// from the machine's root.
type Result struct {
	Actions []string
	// Mounted are the volumes Ensure mounted. A mount is not a change of the
	// machine: fstab mounts them at boot, and the agent mounts only what systemd has
	// not (yet: on a slow boot its wait for the device can time out first).
	Mounted []string
}

// Changed reports whether Ensure changed anything.
func (r *Result) Changed() bool { return len(r.Actions) > 0 }

// volume is /data or /volatile.
type volume struct {
	label  string
	mount  string // inside the root: "/data"
	ignore bool   // keep it a plain directory on the root filesystem
}

// Ensure converges the machine's storage to opts.Storage. The Result lists what was
// done, also when an error stopped it halfway.
func Ensure(ctx context.Context, opts Options) (*Result, error) {
	e, err := newEnsurer(opts)
	if err != nil {
		return &Result{}, err
	}
	err = e.run(ctx)
	return &Result{Actions: e.actions, Mounted: e.mounted}, err
}

// ensurer carries one run of Ensure.
type ensurer struct {
	root        string
	st          env.Storage
	devices     []string // canonical device paths; nil: all
	mount       MountFunc
	services    Services
	m           *machine.Machine
	dirs        []machine.Dir
	relocations []services.Relocation
	volumes     []volume
	actions     []string
	mounted     []string // see Result.Mounted
}

func newEnsurer(opts Options) (*ensurer, error) {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	// Mount points are compared with /proc/self/mountinfo, which shows resolved paths.
	root, err := filepath.Abs(root)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", opts.Root, err)
	}
	// Quiet: what storage did is in the Result.
	m, err := machine.New(root, nil)
	if err != nil {
		return nil, err
	}
	e := &ensurer{
		root:        root,
		st:          opts.Storage,
		mount:       opts.Mount,
		services:    opts.Services,
		m:           m,
		dirs:        opts.Dirs,
		relocations: opts.Relocations,
		volumes: []volume{
			{label: DataLabel, mount: "/data", ignore: opts.Storage.Ignore.Data},
			{label: VolatileLabel, mount: "/volatile", ignore: opts.Storage.Ignore.Volatile},
		},
	}
	if e.mount == nil {
		e.mount = mountCommand
	}
	if e.services == nil {
		e.services = units{m.Systemd}
	}
	for _, d := range opts.Devices {
		c, err := canonicalDevice(d)
		if err != nil {
			return nil, err
		}
		e.devices = append(e.devices, c)
	}
	return e, nil
}

func (e *ensurer) run(ctx context.Context) error {
	fss, err := e.filesystems(ctx)
	if err != nil {
		return err
	}
	var unmounted []volume
	for _, v := range e.volumes {
		need, err := e.mountPoint(v, fss[v.label])
		if err != nil {
			return err
		}
		if need {
			unmounted = append(unmounted, v)
		}
	}
	if err := e.fstab(ctx, fss); err != nil {
		return err
	}
	for _, v := range unmounted {
		if err := e.mountVolume(ctx, v, fss[v.label]); err != nil {
			return err
		}
	}
	if err := e.layout(); err != nil {
		return err
	}
	if err := e.relocate(ctx); err != nil {
		return err
	}
	// A relocation renames the old directory onto the target, which then has the old
	// owner: set the table's owners again so one run is enough.
	return e.layout()
}

// did records a change.
func (e *ensurer) did(format string, args ...any) {
	e.actions = append(e.actions, fmt.Sprintf(format, args...))
}

// path maps a path of the machine ("/data/etc") to where it is under the root.
func (e *ensurer) path(p string) string { return filepath.Join(e.root, p) }

// filesystems finds the labelled filesystems the non-ignored volumes need, making them
// from appliance.storage.setup when one is missing, and returns them by label; swap
// filesystems that setup.disks makes are included, for fstab.
func (e *ensurer) filesystems(ctx context.Context) (map[string]fsInfo, error) {
	if e.volumes[0].ignore && e.volumes[1].ignore {
		return nil, nil
	}
	found, err := e.probe(ctx)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, v := range e.volumes {
		if !v.ignore && len(found[v.label]) == 0 {
			missing = append(missing, v.label)
		}
	}
	if len(missing) > 0 {
		if err := e.setup(ctx, found, missing); err != nil {
			return nil, err
		}
		if found, err = e.probe(ctx); err != nil {
			return nil, err
		}
	}
	out := map[string]fsInfo{}
	for _, v := range e.volumes {
		if v.ignore {
			continue
		}
		fs, err := e.unique(found, v.label)
		if err != nil {
			return nil, err
		}
		if fs.Type != "ext4" {
			return nil, fmt.Errorf("the filesystem labelled %s on %s is %s, not ext4", v.label, fs.Device, fs.Type)
		}
		out[v.label] = fs
	}
	for _, d := range e.st.Setup.Disks {
		for _, p := range d.Partitions {
			if l := found[p.Label]; p.Format == "swap" && len(l) == 1 && l[0].Type == "swap" {
				out[p.Label] = l[0]
			}
		}
	}
	return out, nil
}

// unique returns the one filesystem labelled label: two would make LABEL= ambiguous.
func (e *ensurer) unique(found map[string][]fsInfo, label string) (fsInfo, error) {
	l := found[label]
	switch len(l) {
	case 0:
		return fsInfo{}, fmt.Errorf("no filesystem labelled %s found (%s)", label, e.probedWhat())
	case 1:
		return l[0], nil
	}
	var devs []string
	for _, fs := range l {
		devs = append(devs, fs.Device)
	}
	return fsInfo{}, fmt.Errorf("%d filesystems are labelled %s (%s): relabel or wipe all but one", len(l), label, strings.Join(devs, ", "))
}

func (e *ensurer) probedWhat() string {
	if e.devices == nil {
		return "probed every block device"
	}
	return "probed " + strings.Join(e.devices, ", ")
}

// setup makes the missing labels from appliance.storage.setup.
func (e *ensurer) setup(ctx context.Context, found map[string][]fsInfo, missing []string) error {
	s := e.st.Setup
	if len(s.Disks) == 0 && (len(s.Parted) > 0 || len(s.Format) > 0) {
		return fmt.Errorf("no filesystem labelled %s found, and appliance.storage.setup uses the original's parted/format schema, which this appliance does not run: describe the disks under appliance.storage.setup.disks", strings.Join(missing, ", "))
	}
	made := map[string]bool{}
	for _, d := range s.Disks {
		for _, p := range d.Partitions {
			made[p.Label] = true
		}
	}
	for _, l := range missing {
		if !made[l] {
			v := strings.TrimPrefix(l, "ecs-")
			return fmt.Errorf("no filesystem labelled %s found (%s), and appliance.storage.setup.disks makes none: add a disk with a partition labelled %s, or set appliance.storage.ignore.%s: true", l, e.probedWhat(), l, v)
		}
	}
	// Check every disk before touching any, so that a refusal leaves all of them alone.
	var todo []*diskPlan
	for _, d := range s.Disks {
		p, err := e.planDisk(ctx, d, found)
		if err != nil {
			return err
		}
		if p != nil {
			todo = append(todo, p)
		}
	}
	for _, p := range todo {
		if err := e.partition(ctx, p); err != nil {
			return err
		}
		if err := e.format(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// allowed refuses devices outside Options.Devices, so a test's env can never reach a
// real disk.
func (e *ensurer) allowed(dev string) error {
	if e.devices != nil && !slices.Contains(e.devices, dev) {
		return fmt.Errorf("%s is not one of the devices this run may use (%s)", dev, strings.Join(e.devices, ", "))
	}
	return nil
}

// canonicalDevice resolves /dev/disk/by-… links, so devices compare by name.
func canonicalDevice(dev string) (string, error) {
	c, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", fmt.Errorf("device %s: %w", dev, err)
	}
	fi, err := os.Stat(c)
	if err != nil {
		return "", fmt.Errorf("device %s: %w", dev, err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return "", fmt.Errorf("device %s is not a block device", dev)
	}
	return c, nil
}
