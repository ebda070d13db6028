//go:generate packer-sdc mapstructure-to-hcl2 -type Config

package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/ethikkom/ecs-appliance/builder/convert"
	"github.com/ethikkom/ecs-appliance/builder/disk"
	"github.com/ethikkom/ecs-appliance/images"
)

// Config is the builder's configuration (HCL: source "ecs-image" "name" { … }).
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Base distribution from images/bases.yml; default debian-trixie.
	Base string `mapstructure:"base"`
	// Mirror is the package archive URL. Default: the archive the build host's apt
	// sources use for the base's distribution; required when the host lists none.
	Mirror string `mapstructure:"mirror"`
	// SecurityMirror serves the security suite where it is a separate archive
	// (Debian). Default: the build host's, if it lists one.
	SecurityMirror string `mapstructure:"security_mirror"`
	// Keyring is the OpenPGP keyring Release files are checked with. Default: the
	// base's keyring file (e.g. from debian-archive-keyring).
	Keyring string `mapstructure:"keyring"`
	// Insecure skips the archive signature check. Never the default.
	Insecure bool `mapstructure:"insecure"`
	// DiskSize of the image, e.g. "4G" or "4096M" (whole MiB); the root filesystem
	// grows to a bigger disk at first boot. Default 4G.
	DiskSize string `mapstructure:"disk_size"`
	// Formats to write: raw, qcow2, vmdk, vhdx. Default ["qcow2"].
	Formats []string `mapstructure:"formats"`
	// OutputDirectory receives the images, SHA256SUMS and manifest.json. Default
	// "output-<build name>"; it must not exist unless packer runs with -force.
	OutputDirectory string `mapstructure:"output_directory"`
	// ImageName is the output files' base name. Default "appliance".
	ImageName string `mapstructure:"image_name"`
	// CacheDir keeps bootstrapped bases. Default: $PACKER_CACHE_DIR/ecs-image, or
	// packer_cache/ecs-image.
	CacheDir string `mapstructure:"cache_dir"`
	// WorkDir holds the root filesystem while building (needs room for it and the raw
	// image). Default: a new directory under the system's temp dir.
	WorkDir string `mapstructure:"work_dir"`
	// RootLabel is the root filesystem's label. Default "ecs-root".
	RootLabel string `mapstructure:"root_label"`
	// Commit recorded in manifest.json. Default: `git rev-parse HEAD` in the current
	// directory (with -dirty for a changed work tree).
	Commit string `mapstructure:"commit"`

	ctx interpolate.Context
	// Derived in Prepare.
	base      *images.Base
	diskBytes int64
}

// Prepare decodes and checks raws into c; it touches nothing on disk.
func (c *Config) Prepare(raws ...interface{}) ([]string, error) {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return nil, err
	}
	var errs *packersdk.MultiError
	var warnings []string
	if c.base, err = images.LookupBase(c.Base); err != nil {
		errs = packersdk.MultiErrorAppend(errs, err)
	} else {
		c.Base = c.base.Name
	}
	if c.DiskSize == "" {
		c.DiskSize = "4G"
	}
	if c.diskBytes, err = parseSize(c.DiskSize); err != nil {
		errs = packersdk.MultiErrorAppend(errs, err)
	} else if _, err := disk.Plan(c.diskBytes); err != nil {
		errs = packersdk.MultiErrorAppend(errs, err)
	}
	if len(c.Formats) == 0 {
		c.Formats = []string{"qcow2"}
	}
	if err := convert.Check(c.Formats); err != nil {
		errs = packersdk.MultiErrorAppend(errs, err)
	}
	if c.OutputDirectory == "" {
		c.OutputDirectory = "output-" + c.PackerBuildName
	}
	if c.ImageName == "" {
		c.ImageName = "appliance"
	}
	if strings.ContainsAny(c.ImageName, "/ ") {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("image_name %q must be a plain file name", c.ImageName))
	}
	if c.CacheDir == "" {
		c.CacheDir = defaultCacheDir()
	}
	if c.RootLabel == "" {
		c.RootLabel = "ecs-root"
	}
	if len(c.RootLabel) > 16 {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("root_label %q is longer than ext4's 16 bytes", c.RootLabel))
	}
	if c.Insecure {
		warnings = append(warnings, "insecure = true: the base is bootstrapped without checking the archive's signatures")
	}
	if errs != nil && len(errs.Errors) > 0 {
		return warnings, errs
	}
	return warnings, nil
}

func defaultCacheDir() string {
	if d := os.Getenv("PACKER_CACHE_DIR"); d != "" {
		return filepath.Join(d, "ecs-image")
	}
	return filepath.Join("packer_cache", "ecs-image")
}

// parseSize reads "4G", "512M", "4096" (MiB) or "4GiB"-style sizes into bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB"), "B")
	mult := int64(1 << 20)
	switch {
	case strings.HasSuffix(t, "T"):
		mult, t = 1<<40, strings.TrimSuffix(t, "T")
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, strings.TrimSuffix(t, "G")
	case strings.HasSuffix(t, "M"):
		t = strings.TrimSuffix(t, "M")
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("disk_size " + strconv.Quote(s) + " is not a size like 4G or 4096M")
	}
	return n * mult, nil
}
