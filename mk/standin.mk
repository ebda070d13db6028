# mk/standin.mk: the base image of the ECS stand-in (e2e/standin/ecs, a test fixture that
# follows ECS's container contract; it is not ECS). Included from the top Makefile; paths
# are relative to the module root.
#
#   make standin-base   $(STANDIN_BASE): Debian trixie (minbase) with the stand-in's
#                       Python packages, bootstrapped with mmdebstrap from the build
#                       host's Debian mirror and turned into a `docker load` archive
#                       tagged $(STANDIN_BASE_REF) by images/cmd/image-archive.
#
# The stand-in's Dockerfile starts FROM $(STANDIN_BASE_REF) and runs nothing that needs
# the network, so after `docker load -i $(STANDIN_BASE)` it builds with no registry.
# The root filesystem is bootstrapped again only when this file (the package list)
# changes; the archive is made again when the rootfs or the converter changes.

GO ?= go
CACHE ?= .cache

comma := ,
STANDIN_SUITE := trixie
STANDIN_BASE_REF := ecs-standin-base:$(STANDIN_SUITE)
STANDIN_DIR := $(CACHE)/standin
STANDIN_ROOTFS := $(STANDIN_DIR)/ecs-standin-rootfs.tar
STANDIN_BASE := $(STANDIN_DIR)/ecs-standin-base.tar
# The mirror the image builder uses for the same base: the build host's own apt archive
# for Debian (builder/mirror). Set STANDIN_MIRROR to override.
STANDIN_MIRROR ?= $(shell $(GO) run ./images/cmd/image-archive --print-mirror debian-$(STANDIN_SUITE))

# What the stand-in runs: Django (web via gunicorn, migrations, management commands),
# psycopg2 (PostgreSQL), celery with the redis broker (worker, beat), aiosmtpd (smtpd),
# pymemcache (Django's PyMemcacheCache), python3-venv (the /app/env venv), gosu (root
# drops to app), openssl (the client-certificate CA at bootstrap), passwd (useradd),
# ca-certificates.
STANDIN_PACKAGES := python3 python3-venv python3-django python3-psycopg2 python3-celery \
	python3-redis python3-aiosmtpd python3-pymemcache python3-gunicorn gosu openssl \
	ca-certificates passwd

STANDIN_ARCHIVE_SRC := $(wildcard images/archive/*.go images/cmd/image-archive/*.go)

.PHONY: standin-base

standin-base: $(STANDIN_BASE)

$(STANDIN_ROOTFS): mk/standin.mk
	@mirror='$(STANDIN_MIRROR)'; [ -n "$$mirror" ] || { echo "standin.mk: no Debian mirror (set STANDIN_MIRROR)" >&2; exit 1; }
	mkdir -p $(STANDIN_DIR)
	rm -f $@.tmp
	mmdebstrap --variant=minbase --format=tar --include=$(subst $(eval) ,$(comma),$(STANDIN_PACKAGES)) \
		$(STANDIN_SUITE) $@.tmp '$(STANDIN_MIRROR)'
	mv $@.tmp $@

$(STANDIN_BASE): $(STANDIN_ROOTFS) $(STANDIN_ARCHIVE_SRC) go.mod
	$(GO) run ./images/cmd/image-archive --rootfs $(STANDIN_ROOTFS) --ref $(STANDIN_BASE_REF) \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
		--label org.opencontainers.image.description='ECS stand-in base (test fixture, not ECS): Debian $(STANDIN_SUITE) minbase + $(STANDIN_PACKAGES)' \
		--cmd '["/bin/bash"]' -o $@

