# mk/standin.mk: the base images of the e2e's stand-ins, test fixtures that are not the
# product. Included from the top Makefile; paths are relative to the module root.
#
#   make standin-base   $(STANDIN_BASE): the base of the ECS stand-in (e2e/standin/ecs,
#                       which follows ECS's container contract): Debian trixie (minbase)
#                       with the stand-in's Python packages, tagged $(STANDIN_BASE_REF).
#   make standin-tomcat $(STANDIN_TOMCAT): the Tomcat base pdf-as is built on in the
#                       e2e, in place of the official tomcat image (no registry here):
#                       Debian's tomcat10 laid out as that image is (/usr/local/tomcat),
#                       tagged $(STANDIN_TOMCAT_REF).
#
# Each is bootstrapped with mmdebstrap from the build host's Debian mirror and turned
# into a `docker load` archive by images/cmd/image-archive; the Dockerfiles built on
# them run nothing that needs the network, so after `docker load` they build with no
# registry. A root filesystem is bootstrapped again only when this file (the package
# lists) changes; an archive is made again when its rootfs or the converter changes.

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

STANDIN_TOMCAT_REF := ecs-standin-tomcat:$(STANDIN_SUITE)
STANDIN_TOMCAT_ROOTFS := $(STANDIN_DIR)/ecs-standin-tomcat-rootfs.tar
STANDIN_TOMCAT := $(STANDIN_DIR)/ecs-standin-tomcat.tar
STANDIN_TOMCAT_PACKAGES := tomcat10 default-jre-headless
# The official image's layout: CATALINA_HOME=/usr/local/tomcat with bin, lib, conf and
# an empty webapps, Debian's files linked or copied in.
STANDIN_TOMCAT_LAYOUT := mkdir -p "$$1/usr/local/tomcat" && cd "$$1/usr/local/tomcat" && \
	ln -s /usr/share/tomcat10/bin bin && ln -s /usr/share/tomcat10/lib lib && \
	cp -a "$$1/etc/tomcat10" conf && mkdir webapps logs temp work
# Documentation and translations only make the archive larger (manual pages stay:
# openjdk's postinst registers its own as alternatives).
STANDIN_SLIM := --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/locale/*'

STANDIN_ARCHIVE_SRC := $(wildcard images/archive/*.go images/cmd/image-archive/*.go)

.PHONY: standin-base standin-tomcat

standin-base: $(STANDIN_BASE)
standin-tomcat: $(STANDIN_TOMCAT)

# $(call bootstrap,packages,mmdebstrap options): the recipe of a stand-in rootfs.
define bootstrap
	@mirror='$(STANDIN_MIRROR)'; [ -n "$$mirror" ] || { echo "standin.mk: no Debian mirror (set STANDIN_MIRROR)" >&2; exit 1; }
	mkdir -p $(STANDIN_DIR)
	rm -f $@.tmp
	mmdebstrap --variant=minbase --format=tar --include=$(subst $(eval) ,$(comma),$(1)) $(2) \
		$(STANDIN_SUITE) $@.tmp '$(STANDIN_MIRROR)'
	mv $@.tmp $@
endef

$(STANDIN_ROOTFS): mk/standin.mk
	$(call bootstrap,$(STANDIN_PACKAGES))

$(STANDIN_TOMCAT_ROOTFS): mk/standin.mk
	$(call bootstrap,$(STANDIN_TOMCAT_PACKAGES),$(STANDIN_SLIM) --customize-hook='$(STANDIN_TOMCAT_LAYOUT)')

$(STANDIN_BASE): $(STANDIN_ROOTFS) $(STANDIN_ARCHIVE_SRC) go.mod
	$(GO) run ./images/cmd/image-archive --rootfs $(STANDIN_ROOTFS) --ref $(STANDIN_BASE_REF) \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
		--label org.opencontainers.image.description='ECS stand-in base (test fixture, not ECS): Debian $(STANDIN_SUITE) minbase + $(STANDIN_PACKAGES)' \
		--cmd '["/bin/bash"]' -o $@


$(STANDIN_TOMCAT): $(STANDIN_TOMCAT_ROOTFS) $(STANDIN_ARCHIVE_SRC) go.mod
	$(GO) run ./images/cmd/image-archive --rootfs $(STANDIN_TOMCAT_ROOTFS) --ref $(STANDIN_TOMCAT_REF) \
		--env PATH=/usr/local/tomcat/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env CATALINA_HOME=/usr/local/tomcat --env LANG=C.UTF-8 \
		--label org.opencontainers.image.description='Tomcat stand-in base for pdf-as (test fixture, not the official tomcat image): Debian $(STANDIN_SUITE) minbase + $(STANDIN_TOMCAT_PACKAGES)' \
		--cmd '["catalina.sh", "run"]' -o $@
