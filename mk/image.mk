# mk/image.mk: `make image` and what it needs, included from the top Makefile (paths are
# relative to the module root). Everything is fetched through the Go module proxy and the
# build host's apt mirror, and cached under .cache/:
#
#   make image          Debian packages, packer, the plugin, the static agent, then
#                       packer build packer.pkr.hcl into $(IMAGE_OUTPUT)/
#   make packer         packer $(PACKER_VERSION), built from source once (~2 min cold)
#   make packer-sdc     packer-sdc, the SDK's code generator
#   make plugin-generate the HCL2 specs (*.hcl2spec.go) regenerated with packer-sdc
#   make plugin-install the plugin built and installed with `packer plugins install --path`
#   make image-acc      the provisioner's acceptance test: real packer, full recipe over SSH

GO ?= go
BIN ?= bin
CACHE ?= .cache

PACKER_VERSION := v1.12.0
PACKER := $(CACHE)/packer-$(PACKER_VERSION)
PACKER_SRC := $(CACHE)/packer-$(PACKER_VERSION)-src
PACKER_SDC := $(CACHE)/bin/packer-sdc
# Plugins go into the repository's cache, not ~/.config/packer.
export PACKER_PLUGIN_PATH := $(abspath $(CACHE)/packer-plugins)
export CHECKPOINT_DISABLE := 1
PLUGIN := $(BIN)/packer-plugin-ecs
PLUGIN_SOURCE := github.com/ethikkom/ecs
IMAGE_OUTPUT ?= output
IMAGE_VARS ?=

# What the build host needs: bootstrapping (mmdebstrap, debootstrap, the Debian keyring;
# Ubuntu bases also need an Ubuntu keyring file, which Debian 12 does not package), disk
# assembly (e2fsprogs, dosfstools, mtools), formats (qemu-utils), the commit in the
# manifest (git), and the SSH tests (openssh-server: only its sshd binary is run, with a
# temporary configuration on 127.0.0.1).
IMAGE_DEB_PACKAGES := mmdebstrap debootstrap debian-archive-keyring e2fsprogs dosfstools \
	mtools qemu-utils git openssh-server

.PHONY: image image-deps packer packer-sdc plugin-generate plugin plugin-install image-acc

image: image-deps plugin-install appliance-agent-static
	rm -rf $(IMAGE_OUTPUT)
	$(PACKER) build -var output_directory=$(IMAGE_OUTPUT) -var agent_binary=$(BIN)/appliance-agent $(IMAGE_VARS) packer.pkr.hcl

image-deps: static-deps
	@missing=; for p in $(IMAGE_DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing image build dependencies:$$missing"; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

packer: $(PACKER)

# The proxy serves exact versions only (no `go install …@latest`, no version lists):
# download the module, copy it out of the read-only module cache and build it there,
# so its own go.mod and replace directives apply.
$(PACKER):
	@dir=$$($(GO) mod download -json github.com/hashicorp/packer@$(PACKER_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$$/\1/p'); \
	[ -n "$$dir" ] || { echo "image.mk: cannot download packer $(PACKER_VERSION)" >&2; exit 1; }; \
	rm -rf $(PACKER_SRC) && mkdir -p $(CACHE) && cp -r "$$dir" $(PACKER_SRC) && chmod -R u+w $(PACKER_SRC)
	cd $(PACKER_SRC) && $(GO) build -trimpath -o $(abspath $@).tmp .
	mv $@.tmp $@
	rm -rf $(PACKER_SRC)
	$@ version

packer-sdc: $(PACKER_SDC)

# Built from the SDK version in our go.mod.
$(PACKER_SDC): go.mod
	GOBIN=$(abspath $(CACHE)/bin) $(GO) install github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc

plugin-generate: $(PACKER_SDC)
	PATH=$(abspath $(CACHE)/bin):$$PATH $(GO) generate ./provisioner/... ./builder/...

plugin:
	$(GO) build -o $(PLUGIN) ./plugin

plugin-install: plugin $(PACKER)
	$(PACKER) plugins install --path $(PLUGIN) $(PLUGIN_SOURCE)

image-acc: image-deps $(PACKER) appliance-agent-static
	PACKER_ACC=1 PACKER=$(abspath $(PACKER)) ECS_AGENT_BINARY=$(abspath $(BIN)/appliance-agent) \
		$(GO) test -count=1 -timeout 60m -run TestAccPackerBuild -v ./provisioner/appliance/
