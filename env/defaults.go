package env

// The defaults of the original appliance (its appliance.include and prepare scripts),
// kept here and nowhere else.
const (
	DefaultApplianceGitSource = "https://github.com/ecs-org/ecs-appliance.git"
	DefaultApplianceGitBranch = "master"
	DefaultECSGitSource       = "https://github.com/ecs-org/ecs.git"
	DefaultECSGitBranch       = "master"
	DefaultDocsGitSource      = "https://github.com/ecs-org/ecs-docs.git"
	DefaultDocsGitBranch      = "gh-pages"
	DefaultDatabase           = "ecs"
	DefaultUpdateOnCalendar   = "*-*-* 06:30:00"
	DefaultACMEDirectory      = "https://acme-v02.api.letsencrypt.org/directory"
)

func applyDefaults(e *Env) {
	setString(&e.Appliance.Git.Source, DefaultApplianceGitSource)
	setString(&e.Appliance.Git.Branch, DefaultApplianceGitBranch)
	setString(&e.ECS.Git.Source, DefaultECSGitSource)
	setString(&e.ECS.Git.Branch, DefaultECSGitBranch)
	setString(&e.ECS.Docs.Git.Source, DefaultDocsGitSource)
	setString(&e.ECS.Docs.Git.Branch, DefaultDocsGitBranch)
	setString(&e.ECS.Database, DefaultDatabase)
	setString(&e.Appliance.Update.OnCalendar, DefaultUpdateOnCalendar)
	setBool(&e.Appliance.SSL.LetsEncrypt.Enabled, true)
	setString(&e.Appliance.SSL.LetsEncrypt.Directory, DefaultACMEDirectory)
	setBool(&e.Appliance.Update.Automatic, true)
	setBool(&e.DisableRoot, false)
	for i := range e.Appliance.Extra.Files {
		f := &e.Appliance.Extra.Files[i]
		setString(&f.Contents, f.Content) // the deprecated spelling still works
		setString(&f.Owner, "root:root")
		setString(&f.Permissions, "0644")
	}
	for i := range e.Appliance.Storage.Setup.Disks {
		for j := range e.Appliance.Storage.Setup.Disks[i].Partitions {
			p := &e.Appliance.Storage.Setup.Disks[i].Partitions[j]
			setString(&p.Format, "ext4")
			if p.Size.IsZero() {
				p.Size.Rest = true
			}
		}
	}
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setBool(b **bool, def bool) {
	if *b == nil {
		*b = &def
	}
}
