// Package rules holds the appliance's Prometheus alert rules: the original
// appliance's rules, converted for the Prometheus and node-exporter Debian ships on
// the appliance (current metric names, severities the alerts can be routed by).
package rules

import _ "embed"

// Path is where the monitoring service writes Text for Prometheus to load.
const Path = "/etc/prometheus/rules/appliance.rules.yml"

// Text is the rule file, one group "appliance"; testdata holds promtool's unit
// tests of every alert.
//
//go:embed appliance.rules.yml
var Text []byte
