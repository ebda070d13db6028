// Package cache is the application's broker and cache on the host, from Debian's
// packages (security updates by apt, no images to fetch): redis for celery and
// memcached for Django, listening on loopback and the container bridge only.
package cache

import (
	"fmt"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
)

const (
	// RedisConf is the own instance of Debian's redis-server@ template (RedisUnit), so
	// the package's /etc/redis/redis.conf keeps its single writer.
	RedisConf = "/etc/redis/redis-appliance.conf"
	RedisUnit = "redis-server@appliance.service"
	// MemcachedConf is what Debian's memcached wrapper reads.
	MemcachedConf = "/etc/memcached.conf"
	MemcachedUnit = "memcached.service"
	RedisPort     = 6379
	MemcachedPort = 11211
)

// Service is redis and memcached.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:   "cache",
		Units:  []string{RedisUnit, MemcachedUnit},
		Reload: services.Restart,
		Checks: []services.Check{
			{Name: "redis", TCP: fmt.Sprintf("127.0.0.1:%d", RedisPort)},
			{Name: "memcached", TCP: fmt.Sprintf("127.0.0.1:%d", MemcachedPort)},
		},
	}
}

// Files implements services.Service.
func (Service) Files(*services.Context) ([]machine.File, error) {
	redis := fmt.Sprintf(`# Written by appliance-agent; edits are replaced at the next boot.
# The broker of ECS's celery: loopback and the container bridge only (no password,
# as the original's redis container on the bridge had none).
bind 127.0.0.1 %[1]s
protected-mode no
port %[2]d
daemonize no
pidfile /run/redis-appliance/redis-server.pid
logfile ""
dir /var/lib/redis
dbfilename appliance.rdb
save 3600 1 300 100 60 10000
`, docker.BridgeIP, RedisPort)
	// The original ran memcached with -m 128m -I 5m.
	memcached := fmt.Sprintf(`# Written by appliance-agent; edits are replaced at the next boot.
# Django's cache for ECS: loopback and the container bridge only.
-m 128
-I 5m
-p %[2]d
-u memcache
-l 127.0.0.1,%[1]s
-P /var/run/memcached/memcached.pid
`, docker.BridgeIP, MemcachedPort)
	return []machine.File{
		{Path: RedisConf, Data: []byte(redis), Mode: 0o640, Owner: "root:redis"},
		{Path: MemcachedConf, Data: []byte(memcached)},
	}, nil
}
