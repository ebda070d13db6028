# firstboot/static.mk: build programs that embed dqlite (firstboot/state) as fully
# static binaries, so the agent is one file that runs on every base distribution.
# go-dqlite v1.11.5 is linked with Debian 12's static libdqlite, libraft, libuv,
# libsqlite3 and liblz4. Included from the top Makefile; paths are relative to the
# module root. Also usable alone: make -f firstboot/static.mk TARGET.
#
#   make static-deps              install the C libraries and headers (apt, if missing);
#                                 the default cgo build (go build/vet/test) needs them too
#   make appliance-agent-static   $(BIN)/appliance-agent, fully static
#   make static-build STATIC_PKG=./path STATIC_OUT=file   any other program
#   $(call go-static,OUT,PKG)     the same as a recipe line

GO ?= go
BIN ?= bin

DQLITE_DEB_PACKAGES := libdqlite-dev libraft-dev libsqlite3-dev libuv1-dev liblz4-dev pkg-config gcc
STATIC_LIBDIR ?= build/static-libs
STATIC_AGENT_PKG ?= ./firstboot/cmd/appliance-agent
# libsqlite3: go-sqlite3 (pulled in by go-dqlite) uses the system SQLite, the one
# libdqlite is linked with, instead of compiling its own copy.
# netgo, osusergo: pure-Go DNS and user lookup, since glibc's NSS cannot be static.
STATIC_TAGS := libsqlite3,netgo,osusergo
STATIC_LIBS := -ldqlite -lraft -luv -lsqlite3 -llz4 -lm -lpthread -ldl
# The group lets the linker resolve the libraries' references to each other in any order.
STATIC_EXTLDFLAGS = -static -L$(abspath $(STATIC_LIBDIR)) -Wl,--start-group $(STATIC_LIBS) -Wl,--end-group
STATIC_LDFLAGS = -s -w -linkmode external -extldflags "$(STATIC_EXTLDFLAGS)"
STATIC_BUILDFLAGS ?= -trimpath

go-static = CGO_ENABLED=1 $(GO) build $(STATIC_BUILDFLAGS) -tags $(STATIC_TAGS) -ldflags '$(STATIC_LDFLAGS)' -o $(1) $(2)

.PHONY: static-deps static-libs static-build appliance-agent-static

static-deps:
	@missing=; for p in $(DQLITE_DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing dqlite build dependencies:$$missing"; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

static-libs: $(STATIC_LIBDIR)/libuv.a

# Debian ships the static libuv as libuv_a.a, but -static -luv looks for libuv.a.
$(STATIC_LIBDIR)/libuv.a:
	@lib=$$($(CC) -print-file-name=libuv_a.a); \
	case $$lib in /*) ;; *) echo "static.mk: libuv_a.a not found (make static-deps)" >&2; exit 1;; esac; \
	mkdir -p $(@D) && ln -sfn "$$lib" $@

static-build: static-libs
	@[ -n "$(STATIC_PKG)" ] && [ -n "$(STATIC_OUT)" ] || { echo "static.mk: set STATIC_PKG and STATIC_OUT" >&2; exit 1; }
	$(call go-static,$(STATIC_OUT),$(STATIC_PKG))

appliance-agent-static: static-libs
	$(call go-static,$(BIN)/appliance-agent,$(STATIC_AGENT_PKG))
