# ECS appliance. `make test` and `make image` are the two entry points (see README.md).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN := bin
# Tests and vet use Debian's SQLite, the one the static agent links, not go-sqlite3's copy.
export GOFLAGS := -tags=libsqlite3

include firstboot/static.mk mk/image.mk mk/standin.mk

# command:Debian package for every real tool the tests run against.
TEST_TOOLS := gpg:gnupg pdftoppm:poppler-utils pdftotext:poppler-utils zbarimg:zbar-tools \
	xorriso:xorriso /usr/bin/cloud-init:cloud-init e2fsck:e2fsprogs mkfs.ext4:e2fsprogs \
	sgdisk:gdisk mkfs.vfat:dosfstools mcopy:mtools convert-im6.q16:imagemagick \
	blkid:util-linux partx:util-linux losetup:mount sfdisk:fdisk systemd-analyze:systemd \
	mmdebstrap:mmdebstrap /usr/sbin/sshd:openssh-server /usr/sbin/nginx:nginx \
	/usr/sbin/postconf:postfix /usr/sbin/opendkim:opendkim /usr/bin/stunnel4:stunnel4 \
	duplicity:duplicity duply:duply promtool:prometheus amtool:prometheus-alertmanager \
	prometheus-alertmanager:prometheus-alertmanager prometheus-node-exporter:prometheus-node-exporter \
	prometheus-postgres-exporter:prometheus-postgres-exporter \
	prometheus-nginx-exporter:prometheus-nginx-exporter prometheus-redis-exporter:prometheus-redis-exporter \
	javac:default-jdk-headless

# Debian packages the image builder's tests use, checked by package (some ship no command).
TEST_PACKAGES := mmdebstrap debootstrap debian-archive-keyring qemu-utils qemu-system-x86 ovmf \
	grub-pc-bin grub-efi-amd64-bin cloud-guest-utils postgresql python3-dkim \
	python3-django python3-psycopg2 python3-celery python3-redis python3-aiosmtpd git locales

# Fuzz targets (package:name) make test runs for FUZZ_TIME each, after the tests.
FUZZ_TARGETS := ./env:FuzzParse ./env:FuzzFlattenSelection ./env-tools/qrpaper:FuzzAssemble \
	./firstboot/discovery:FuzzMetadataResponses
FUZZ_TIME ?= 10s

.PHONY: all build test test-deps lint bench e2e clean

all: build

build: appliance-agent-static
	$(GO) build -o $(BIN)/ ./env-tools/cmd/ecs-env

## test: install the Debian tools the tests need (when missing), run every test, then
## each fuzz target for a short fixed time.
test: test-deps appliance-agent-static
	ECS_AGENT_BINARY=$(abspath $(BIN))/appliance-agent $(GO) test -timeout 25m ./...
	@for t in $(FUZZ_TARGETS); do \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZ_TIME) "$${t%%:*}" || exit 1; \
	done

test-deps: static-deps image-deps
	@missing=(); for pair in $(TEST_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null || missing+=("$${pair#*:}"); \
	done; \
	for pkg in $(TEST_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$$pkg"); \
	done; \
	if [ $${#missing[@]} -gt 0 ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing test tools: $${missing[*]}"; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$(printf '%s\n' "$${missing[@]}" | sort -u); \
	fi
	@# The ECS database's locale (template0, de_DE.UTF-8), which the tests' PostgreSQL needs.
	@if ! locale -a | grep -qx 'de_DE.utf8'; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "generating the locale de_DE.UTF-8"; \
		$$sudo sed -i 's/^# *\(de_DE.UTF-8 UTF-8\)/\1/' /etc/locale.gen && $$sudo locale-gen; \
	fi

lint: test-deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: the figures the issues ask for (printed, never asserted).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## e2e: build the image with the stand-ins' base images baked in (the appliance builds
## the ECS stand-in, a test fixture following ECS's container contract, from a git server
## on the host, and pdf-as on the Tomcat stand-in), then boot it in QEMU (SeaBIOS and
## OVMF) with an env ISO and a data disk.
e2e: IMAGE_VARS += -var 'image_archives=["$(abspath $(STANDIN_BASE))","$(abspath $(STANDIN_TOMCAT))"]'
e2e: test-deps standin-base standin-tomcat image
	ECS_E2E_IMAGE=$(abspath $(IMAGE_OUTPUT))/appliance.qcow2 ECS_E2E_TOMCAT=$(abspath $(STANDIN_TOMCAT)) \
		$(GO) test -count=1 -v -timeout 60m ./e2e/

clean:
	rm -rf $(BIN)
