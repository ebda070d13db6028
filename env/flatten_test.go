package env

import (
	"cmp"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func TestFlattenNames(t *testing.T) {
	e, _, err := parseFixture(t, "template-env.yml")
	if err != nil {
		t.Fatal(err)
	}
	lines, missing, err := Flatten(e, []string{"appliance", "nothere"}, "export ")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []string{"nothere"}) {
		t.Errorf("missing = %v", missing)
	}
	for _, want := range []string{
		"export APPLIANCE_DOMAIN=ecs.example.org",
		"export APPLIANCE_EXTRA_FILES_LEN=1",
		"export APPLIANCE_EXTRA_FILES_0_PATH=/root/.ssh/config",
		"export APPLIANCE_EXTRA_FILES_0_PERMISSIONS=0600",
		"export APPLIANCE_METRIC_EXPORTER=true",
		"export APPLIANCE_METRIC_GUI=false",
		"export APPLIANCE_UPDATE_ONCALENDAR='Sun *-*-* 06:30:00'",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("no line %q", want)
		}
	}
	if !slices.IsSorted(lines) {
		t.Error("lines not sorted")
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "export ECS_") {
			t.Errorf("unselected key flattened: %s", l)
		}
	}
}

// TestFlattenEvaluatesExactly has a real shell eval the output and print the values back.
func TestFlattenEvaluatesExactly(t *testing.T) {
	testtool.Require(t, "sh")
	data := edit(t, "  allowed_hosts: ecs.example.org\n", "  allowed_hosts: \"it's $(touch /tmp/pwned) `x` \\\\ \\\"q\\\" \\n end\"\n")
	e, _, err := Parse("env.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	lines, _, err := Flatten(e, []string{"appliance", "ecs"}, "")
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(lines, "\n") + "\nprintf '%s\\0%s\\0%s\\0%s' \"$APPLIANCE_DKIM_KEY\" \"$ECS_SETTINGS\" \"$APPLIANCE_ALLOWED_HOSTS\" \"$APPLIANCE_EXTRA_FILES_0_CONTENT\"\n"
	cmd := exec.Command("sh")
	cmd.Stdin = strings.NewReader(script) // values stay out of the arguments
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(string(out), "\x00")
	want := []string{e.Appliance.DKIM.Key, e.ECS.Settings, e.Appliance.AllowedHosts, e.Appliance.Extra.Files[0].Content}
	if !slices.Equal(got, want) {
		t.Errorf("shell saw\n%q\nwant\n%q", got, want)
	}
	if !strings.HasSuffix(got[0], "-----END PRIVATE KEY-----\n") {
		t.Error("PEM lost its final newline")
	}
}

func TestFlattenRefusesUnsafeNames(t *testing.T) {
	data := edit(t, "disable_root: false\n", "disable_root: false\nwrite-files: []\n")
	e, _, err := Parse("env.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Flatten(e, []string{"."}, ""); err == nil || !strings.Contains(err.Error(), `env.yml:7:1: key path "write-files" cannot be a shell variable name`) {
		t.Errorf("err = %v", err)
	}
	if _, _, err := Flatten(e, []string{"appliance"}, ""); err != nil {
		t.Errorf("a bad name outside the selection failed the flatten: %v", err)
	}
}

func TestShellQuoteMatchesShlex(t *testing.T) {
	for in, want := range map[string]string{
		"":          "''",
		"abc":       "abc",
		"a b":       "'a b'",
		"it's":      `'it'"'"'s'`,
		"x=1,y@z:%": "x=1,y@z:%",
		"a\nb":      "'a\nb'",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFlattenOnlySelected: the keys after the first selected one stay out too (issue 10:
// "flatten disable_root" printed the DKIM and backup keys and ECS_SETTINGS).
func TestFlattenOnlySelected(t *testing.T) {
	e, _, err := parseFixture(t, "template-env.yml")
	if err != nil {
		t.Fatal(err)
	}
	for sel, prefix := range map[string]string{"disable_root": "DISABLE_ROOT", "appliance": "APPLIANCE_", "ecs": "ECS_"} {
		lines, missing, err := Flatten(e, []string{sel}, "")
		if err != nil || len(missing) > 0 {
			t.Fatalf("%s: missing %v, err %v", sel, missing, err)
		}
		if len(lines) == 0 {
			t.Errorf("%s: nothing flattened", sel)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, prefix) {
				t.Errorf("%s selected, but %s printed", sel, strings.SplitN(l, "=", 2)[0])
			}
		}
	}
}

// FuzzFlattenSelection flattens random documents with random selections (sel is a
// comma-separated list, as ecs-env flatten takes it) and checks that every line comes
// from a selected tree, every selected tree is printed whole, and missing names only
// selected keys the document lacks.
func FuzzFlattenSelection(f *testing.F) {
	for _, name := range []string{"default-env.yml", "template-env.yml"} {
		for _, sel := range []string{"disable_root", "appliance", "ecs", "ecs,disable_root", ".", "", "nothere,appliance", "appliance,appliance"} {
			f.Add([]byte(readFixture(f, name)), sel)
		}
	}
	f.Add([]byte("#cloud-config\na: 1\nb: {c: [x, y]}\nB_C_0: z\nd:\n"), "a,d")
	f.Fuzz(func(t *testing.T, data []byte, sel string) {
		if checkText("fuzz.yml", data) != nil {
			return
		}
		root, err := parseDocument("fuzz.yml", data, false)
		if err != nil {
			return
		}
		e := &Env{Document: root, File: "fuzz.yml"}
		keys := strings.Split(sel, ",")
		lines, missing, err := Flatten(e, keys, "")
		top := map[string]bool{}
		for i := 0; i+1 < len(root.Content[0].Content); i += 2 {
			top[root.Content[0].Content[i].Value] = true
		}
		selected := map[string]bool{}
		for _, k := range keys {
			if k == "." {
				selected = top
				break
			}
			if top[k] {
				selected[k] = true
			}
		}
		// What each selected tree flattens to alone; the selection prints exactly their union.
		want := map[string]bool{}
		var singleErr error
		for k := range selected {
			single, _, err := Flatten(e, []string{k}, "")
			singleErr = cmp.Or(singleErr, err)
			for _, l := range single {
				want[l] = true
			}
		}
		if (err == nil) != (singleErr == nil) {
			t.Fatalf("selection error %v, error of its trees %v", err, singleErr)
		}
		if err != nil {
			return
		}
		for _, l := range lines {
			name, _, _ := strings.Cut(l, "=")
			inTree := false
			for k := range selected {
				K := strings.ToUpper(k)
				inTree = inTree || name == K || strings.HasPrefix(name, K+"_")
			}
			if !inTree {
				t.Fatalf("%s printed, but the selection is %q", name, sel)
			}
		}
		names := map[string]bool{}
		for _, l := range lines {
			name, _, _ := strings.Cut(l, "=")
			names[name] = true
			if !want[l] {
				t.Fatalf("line of %s is not what any selected tree gives", name)
			}
		}
		for l := range want {
			if name, _, _ := strings.Cut(l, "="); !names[name] {
				t.Fatalf("%s of a selected tree not printed", name)
			}
		}
		for _, k := range missing {
			if top[k] || k == "." || !slices.Contains(keys, k) {
				t.Fatalf("missing %q, selection %q", k, sel)
			}
		}
	})
}
