package main

import (
	"encoding/json"
	"fmt"
)

// jsonArgs parses a JSON array of strings, as a Dockerfile's exec form writes it.
func jsonArgs(flagName, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("%s %q: want a JSON array of strings, e.g. '[\"/docker-entrypoint.sh\"]'", flagName, s)
	}
	return v, nil
}
