package testtool

import (
	"os/exec"
	"strings"
	"testing"
)

// DKIMVerify verifies a signed message with dkimpy (Debian's python3-dkim), an
// independent verifier, with record as the only DNS answer (the TXT value of
// default._domainkey). It returns dkimpy's verdict: "True" or "False".
func DKIMVerify(t testing.TB, msg, record string) string {
	t.Helper()
	Require(t, "/usr/bin/python3")
	if exec.Command("/usr/bin/python3", "-c", "import dkim").Run() != nil {
		Missing(t, "python3-dkim (dkimpy) is not installed (make test installs it)")
	}
	script := `import sys, dkim
record = sys.argv[1].encode()
print(dkim.verify(sys.stdin.buffer.read(), dnsfunc=lambda name, timeout=5: record))`
	cmd := exec.Command("/usr/bin/python3", "-c", script, record)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}
