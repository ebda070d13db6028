// Package env is the model of env.yml, the one file that configures an ECS appliance:
// the schema as Go types, strict loading with file:line:column errors, the defaults,
// validation of the values (domain, PEM and OpenPGP keys, calendar expressions, …) and
// flattening to shell variables for the scripts that still read them.
//
// env.yml is also cloud-init user-data: top-level keys other than ours pass through
// untouched, while `appliance:` and `ecs:` are decoded strictly.
package env

import "gopkg.in/yaml.v3"

// Struct tags used by the strict decoder, next to `yaml:"name"`:
//
//	env:"required"  the key must be present and not empty
//	env:"dead"      the original appliance accepted the key but never used it: load with a warning
//	env:"ignored"   accepted for compatibility, but this appliance does not act on it: warning
//	env:"deprecated=NEW"  an old spelling of key NEW: works, with a warning
//	env:"image"     the original updated itself from it; this appliance is updated with a new disk image: warning
//	env:"unpackaged=TOOL"  a switch for TOOL, which Debian does not package: true loads with a warning

// Env is a loaded env.yml.
type Env struct {
	SSHAuthorizedKeys []string  `yaml:"ssh_authorized_keys"`
	SSHDeprecatedKeys []string  `yaml:"ssh_deprecated_keys"`
	DisableRoot       *bool     `yaml:"disable_root"`
	HTTPProxy         string    `yaml:"http_proxy"`
	NoProxy           string    `yaml:"no_proxy"`
	Appliance         Appliance `yaml:"appliance" env:"required"`
	ECS               ECS       `yaml:"ecs" env:"required"`

	// Document is the whole parsed file, cloud-init keys included.
	Document *yaml.Node `yaml:"-"`
	// File is the name the document was loaded from, for messages.
	File string `yaml:"-"`
	// nodes maps dotted key paths ("appliance.ssl.key") to their value nodes, so that
	// validation can point at the line of a bad value.
	nodes map[string]*yaml.Node
}

// Appliance is the `appliance:` section.
type Appliance struct {
	Standby      bool    `yaml:"standby"`
	Domain       string  `yaml:"domain" env:"required"`
	AllowedHosts string  `yaml:"allowed_hosts" env:"dead"`
	SSL          SSL     `yaml:"ssl"`
	Sentry       Sentry  `yaml:"sentry"`
	Metric       Metric  `yaml:"metric"`
	Git          Git     `yaml:"git" env:"image"`
	Extra        Extra   `yaml:"extra"`
	Update       Update  `yaml:"update"`
	Storage      Storage `yaml:"storage"`
	DKIM         DKIM    `yaml:"dkim"`
	Backup       Backup  `yaml:"backup" env:"required"`
	Cluster      Cluster `yaml:"cluster"`
}

// SSL configures the https host.
type SSL struct {
	LetsEncrypt          LetsEncrypt `yaml:"letsencrypt"`
	ClientCertsMandatory bool        `yaml:"client_certs_mandatory"`
	Key                  string      `yaml:"key"`  // PEM private key content (not a file name)
	Cert                 string      `yaml:"cert"` // PEM certificate chain content
}

// LetsEncrypt switches ACME certificates; on unless set to false (as in the original).
// The other keys are new: another ACME CA (an internal one such as step-ca), a contact
// address, and the PEM certificates that CA's directory is served with.
type LetsEncrypt struct {
	Enabled   *bool  `yaml:"enabled"`
	Directory string `yaml:"directory"` // ACME directory URL; Let's Encrypt production if empty
	Email     string `yaml:"email"`
	RootCA    string `yaml:"root_ca"`
}

// Sentry is where errors are reported. The returner options configured the original's
// SaltStack returner, which this appliance does not have.
type Sentry struct {
	DSN              string   `yaml:"dsn"`
	HidePillar       *bool    `yaml:"hide_pillar" env:"ignored"`
	HideGrains       *bool    `yaml:"hide_grains" env:"ignored"`
	ReportErrorsOnly *bool    `yaml:"report_errors_only" env:"ignored"`
	ChangeLevel      string   `yaml:"change_level" env:"ignored"`
	ErrorLevel       string   `yaml:"error_level" env:"ignored"`
	Tags             []string `yaml:"tags" env:"ignored"`
}

// Metric switches the optional monitoring services.
type Metric struct {
	Exporter bool `yaml:"exporter"`
	Server   bool `yaml:"server"`
	GUI      bool `yaml:"gui" env:"unpackaged=grafana"`
	PgHero   bool `yaml:"pghero" env:"unpackaged=pghero"`
}

// Exporters says whether the exporters run: for themselves, or for the appliance's own
// Prometheus, whose alert rules read them.
func (m Metric) Exporters() bool { return m.Exporter || m.Server }

// Git names a source repository and the branch or commit to deploy.
type Git struct {
	Source   string `yaml:"source"`
	Branch   string `yaml:"branch"`
	CommitID string `yaml:"commitid"`
}

// Extra holds files and packages the admin adds to the appliance.
type Extra struct {
	Files    []ExtraFile `yaml:"files"`
	Packages []string    `yaml:"packages"`
	States   string      `yaml:"states" env:"ignored"`
}

// ExtraFile is written at every start.
type ExtraFile struct {
	Path        string `yaml:"path" env:"required"`
	Contents    string `yaml:"contents"`
	Content     string `yaml:"content" env:"deprecated=contents"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
}

// Update configures the automatic update timer.
type Update struct {
	Automatic  *bool  `yaml:"automatic"`
	OnCalendar string `yaml:"oncalendar"`
}

// Storage says where /data and /volatile live and how to create them.
type Storage struct {
	Setup      StorageSetup  `yaml:"setup"`
	Ignore     StorageIgnore `yaml:"ignore"`
	ProxyCache bool          `yaml:"proxy_cache" env:"dead"`
	GrowRoot   bool          `yaml:"grow_root" env:"dead"`
}

// StorageIgnore keeps /data or /volatile on the root filesystem instead of a labelled one.
type StorageIgnore struct {
	Volatile bool `yaml:"volatile"`
	Data     bool `yaml:"data"`
}

// StorageSetup describes how to make the ecs-data and ecs-volatile filesystems when
// they are missing. Disks is this appliance's form; the other sections are the
// original's SaltStack storage schema, kept (typed where simple) so old env files
// load, with a warning that they are not run: write setup.disks instead.
type StorageSetup struct {
	Disks  []Disk                 `yaml:"disks"`
	Parted map[string]PartedDisk  `yaml:"parted" env:"ignored"`
	Format map[string]FormatEntry `yaml:"format" env:"ignored"`
	Mount  map[string]yaml.Node   `yaml:"mount" env:"ignored"`
	Swap   []string               `yaml:"swap" env:"ignored"`
	Mdadm  map[string]yaml.Node   `yaml:"mdadm" env:"ignored"`
	Crypt  map[string]yaml.Node   `yaml:"crypt" env:"ignored"`
	LVM    yaml.Node              `yaml:"lvm" env:"ignored"`
}

// Disk is a block device to partition. Wipe must be true before anything already on
// the disk (partition table, filesystem signature) may be destroyed.
type Disk struct {
	Device     string      `yaml:"device" env:"required"`
	Wipe       bool        `yaml:"wipe"`
	Partitions []Partition `yaml:"partitions" env:"required"`
}

// Partition is one GPT partition; its name is also the filesystem label.
type Partition struct {
	Label  string `yaml:"label" env:"required"`
	Size   Size   `yaml:"size"`
	Format string `yaml:"format"` // ext4 (default) or swap
}

// PartedDisk is the original's `parted:` entry for one disk.
type PartedDisk struct {
	Type  string       `yaml:"type"` // gpt or mbr
	Parts []PartedPart `yaml:"parts"`
}

// PartedPart is one partition of the original's `parted:` schema.
type PartedPart struct {
	Name  string   `yaml:"name"`
	Start string   `yaml:"start"`
	End   string   `yaml:"end"`
	Flags []string `yaml:"flags"`
}

// FormatEntry is the original's `format:` entry for one device.
type FormatEntry struct {
	FSType  string   `yaml:"fstype"`
	Options []string `yaml:"options"`
}

// DKIM holds the mail signing key.
type DKIM struct {
	Key string `yaml:"key"` // PEM RSA private key
}

// Backup configures the daily encrypted backup of /data.
type Backup struct {
	URL     string      `yaml:"url" env:"required"`
	Options string      `yaml:"options"`
	Mount   BackupMount `yaml:"mount"`
	Encrypt string      `yaml:"encrypt" env:"required"` // armored OpenPGP secret key, uid ecs_backup
}

// BackupMount is mounted before and unmounted after each backup.
type BackupMount struct {
	Type    string `yaml:"type"`
	Source  string `yaml:"source"`
	Target  string `yaml:"target"`
	Options string `yaml:"options"`
}

// Cluster lets several appliances share the agent's state store. Bind is this node's
// address (host:port); Join lists the addresses of nodes already in the cluster.
// Without it the store is a single node on loopback.
type Cluster struct {
	Bind string   `yaml:"bind"`
	Join []string `yaml:"join"`
}

// ECS is the `ecs:` section: the application itself.
type ECS struct {
	Git          Git          `yaml:"git"`
	Docs         Docs         `yaml:"docs"`
	Database     string       `yaml:"database"`
	Migrate      Migrate      `yaml:"migrate" env:"dead"`
	UserSwitcher UserSwitcher `yaml:"userswitcher"`
	PDFAS        PDFAS        `yaml:"pdfas"`
	Settings     string       `yaml:"settings" env:"required"`
	VaultEncrypt string       `yaml:"vault_encrypt" env:"required"` // armored OpenPGP secret key, uid ecs_mediaserver
	VaultSign    string       `yaml:"vault_sign" env:"required"`    // armored OpenPGP secret key, uid ecs_authority
}

// PDFAS is pdf-as-web, the signing service ECS calls (PDFAS_SERVICE), built by the
// agent from a Tomcat base image and two downloads. New: the original pinned all three
// in its Dockerfile. pdf-as runs only when Base is set.
type PDFAS struct {
	// Base is the Tomcat image (javax servlets: Tomcat 8.5 or 9) pinned by its image
	// ID, name:tag@sha256:<ID> as `docker image inspect -f '{{.Id}}'` prints it, the
	// digest a pull, `docker save` and `docker load` all keep.
	Base   string   `yaml:"base"`
	War    Download `yaml:"war"`
	Config Download `yaml:"config"`
}

// Download is a file fetched by URL and accepted only with this SHA-256.
type Download struct {
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
}

// Docs is the user manual's source.
type Docs struct {
	Git Git `yaml:"git"`
}

// Migrate was documented in the original but never read.
type Migrate struct {
	Auto bool `yaml:"auto"`
}

// UserSwitcher enables ECS's user switcher (a testing aid).
type UserSwitcher struct {
	Enabled   bool   `yaml:"enabled"`
	Parameter string `yaml:"parameter" env:"dead"`
}
