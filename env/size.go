package env

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Size is a partition size: MiB as a number, a percentage of the disk ("70%"), or
// "rest" for what is left.
type Size struct {
	MiB     uint64
	Percent int
	Rest    bool
}

// UnmarshalYAML accepts 1024, "1024", "70%" and "rest". Its errors do not repeat the value.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("size must be MiB as a number, N%% or rest")
	}
	v := strings.TrimSpace(n.Value)
	switch {
	case v == "rest":
		*s = Size{Rest: true}
	case strings.HasSuffix(v, "%"):
		p, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
		if err != nil || p < 1 || p > 100 {
			return fmt.Errorf("a percentage must be 1%% to 100%%")
		}
		*s = Size{Percent: p}
	default:
		m, err := strconv.ParseUint(v, 10, 64)
		if err != nil || m == 0 {
			return fmt.Errorf("size must be MiB as a positive number, N%% or rest")
		}
		*s = Size{MiB: m}
	}
	return nil
}

// String gives the size back in the form it is written in env.yml.
func (s Size) String() string {
	switch {
	case s.Rest:
		return "rest"
	case s.Percent > 0:
		return fmt.Sprintf("%d%%", s.Percent)
	case s.MiB > 0:
		return strconv.FormatUint(s.MiB, 10)
	}
	return ""
}

// IsZero reports an unset size, which means "rest".
func (s Size) IsZero() bool { return s == Size{} }
