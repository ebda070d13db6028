# Functions the ecs-appliance provisioner's step scripts use. Each one checks before it
# acts and reports what it changed with `changed`, so a second run prints nothing.
# Files, directories and links are not here: the agent's install command puts them in
# place with the file writer it uses at boot.
# POSIX sh: the target may be any base (dash on Debian and Ubuntu).
set -eu

changed() { echo "changed: $*"; }
fail() { echo "error: $*" >&2; exit 1; }

# installed NAME: dpkg has NAME installed, or an installed package provides it (a
# virtual name apt resolves to its provider, e.g. postgresql-contrib on trixie).
installed() {
	dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii' && return 0
	dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null | sed -n 's/^ii *|//p' |
		tr ',' '\n' | sed 's/ *(.*//; s/^ *//' | grep -qx "$1"
}

# ensure_packages NAME...: install the packages that are not installed.
ensure_packages() {
	missing=
	for p in "$@"; do
		installed "$p" || missing="$missing $p"
	done
	[ -n "$missing" ] || return 0
	export DEBIAN_FRONTEND=noninteractive
	if [ -s "$STAGING/debconf" ]; then debconf-set-selections "$STAGING/debconf"; fi
	# systemd-resolved's postinst points /etc/resolv.conf at its stub under /run, which
	# exists only while resolved runs; in a chroot it does not.
	resolv=
	if [ -r /etc/resolv.conf ]; then resolv="$STAGING/resolv.conf"; cp -L /etc/resolv.conf "$resolv"; fi
	echo "installing:$missing"
	apt-get update -q
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing
	for p in $missing; do
		installed "$p" || fail "package $p is not installed after apt-get install"
	done
	changed "installed$missing"
	keep_dns "$resolv"
}

# keep_dns SAVED: when /etc/resolv.conf now dangles (resolved not running, as in a
# chroot), fill its target under /run with the resolver we had, so later steps and the
# builder still resolve names. /run is a tmpfs at boot: nothing of this stays in the image.
keep_dns() {
	[ -n "$1" ] && [ -L /etc/resolv.conf ] && [ ! -e /etc/resolv.conf ] || return 0
	target=$(readlink -m /etc/resolv.conf)
	mkdir -p "${target%/*}"
	cp "$1" "$target"
}

# ensure_locales NAME...: generate the locales `locale -a` does not list.
ensure_locales() {
	gen=
	for l in "$@"; do
		norm=$(echo "$l" | sed 's/\.UTF-8$/.utf8/')
		locale -a 2>/dev/null | grep -qx "$norm" && continue
		grep -q "^$l " /etc/locale.gen 2>/dev/null || echo "$l ${l#*.}" >>/etc/locale.gen
		gen="$gen $l"
	done
	[ -n "$gen" ] || return 0
	locale-gen
	changed "generated locales$gen"
}

# ensure_group NAME GID
ensure_group() {
	if cur=$(getent group "$1"); then
		gid=$(echo "$cur" | cut -d: -f3)
		[ "$gid" = "$2" ] || fail "group $1 has gid $gid; the appliance needs $2"
		return 0
	fi
	if other=$(getent group "$2"); then fail "gid $2 belongs to group ${other%%:*}; the appliance needs it for $1"; fi
	groupadd -g "$2" "$1"
	changed "group $1 ($2)"
}

# ensure_user NAME UID GROUP HOME SHELL COMMENT
ensure_user() {
	if cur=$(getent passwd "$1"); then
		uid=$(echo "$cur" | cut -d: -f3)
		[ "$uid" = "$2" ] || fail "user $1 has uid $uid; the appliance needs $2"
		[ "$(id -gn "$1")" = "$3" ] || { usermod -g "$3" "$1"; changed "primary group of $1"; }
		[ "$(echo "$cur" | cut -d: -f6)" = "$4" ] || { usermod -d "$4" "$1"; changed "home of $1"; }
		[ "$(echo "$cur" | cut -d: -f7)" = "$5" ] || { usermod -s "$5" "$1"; changed "shell of $1"; }
		return 0
	fi
	if other=$(getent passwd "$2"); then fail "uid $2 belongs to user ${other%%:*}; the appliance needs it for $1"; fi
	useradd -u "$2" -g "$3" -d "$4" -m -s "$5" -c "$6" "$1"
	changed "user $1 ($2)"
}

unit_state() { systemctl is-enabled "$1" 2>/dev/null || true; }

# ensure_enabled UNIT
ensure_enabled() {
	case $(unit_state "$1") in
	enabled) ;;
	*) systemctl enable "$1" 2>&1; changed "enabled $1" ;;
	esac
}

# ensure_disabled UNIT: only units that are enabled (absent ones are fine).
ensure_disabled() {
	case $(unit_state "$1") in
	enabled | enabled-runtime) systemctl disable "$1" 2>&1; changed "disabled $1" ;;
	esac
}

# clean_for_imaging: what must not be shared by every machine made from the image, and
# what only takes space in it.
clean_for_imaging() {
	# An empty machine-id makes systemd generate one at first boot.
	if [ ! -e /etc/machine-id ] || [ -s /etc/machine-id ]; then
		: >/etc/machine-id
		changed "emptied /etc/machine-id"
	fi
	if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
		rm -f /var/lib/dbus/machine-id
		changed "removed /var/lib/dbus/machine-id"
	fi
	# ssh-host-keys.service generates new ones at first boot.
	for k in /etc/ssh/ssh_host_*; do
		[ -e "$k" ] || continue
		rm -f "$k"
		changed "removed $k"
	done
	# cloud-init's per-instance state, so the image boots as a new instance.
	if command -v cloud-init >/dev/null && [ -d /var/lib/cloud ] && [ -n "$(ls -A /var/lib/cloud)" ]; then
		cloud-init clean --logs
		changed "cloud-init clean"
	fi
	if [ -n "$(find /var/cache/apt -maxdepth 2 \( -name '*.deb' -o -name '*.bin' \) -type f 2>/dev/null | head -n1)" ]; then
		apt-get clean
		changed "apt-get clean"
	fi
	lists=$(find /var/lib/apt/lists -mindepth 1 -maxdepth 1 -type f ! -name lock 2>/dev/null | wc -l)
	if [ "$lists" -gt 0 ]; then
		find /var/lib/apt/lists -mindepth 1 -maxdepth 1 -type f ! -name lock -delete
		changed "removed $lists apt lists"
	fi
	# Rotated logs and journals go, current logs are emptied (daemons keep them open).
	old=$(find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' -o -name '*.journal' -o -name '*.journal~' \) 2>/dev/null | wc -l)
	if [ "$old" -gt 0 ]; then
		find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' -o -name '*.journal' -o -name '*.journal~' \) -delete
		changed "removed $old old logs"
	fi
	for f in $(find /var/log -type f -size +0c 2>/dev/null); do
		: >"$f"
		changed "emptied $f"
	done
}
