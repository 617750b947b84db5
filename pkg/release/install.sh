#!/bin/sh
# Install hcloud agents from this release tarball, or remove them again.
#
#   ./install.sh [--root DIR] [--no-enable] AGENT...     install (and enable) these agents
#   ./install.sh [--root DIR] --all                      every agent
#   ./install.sh [--root DIR] --uninstall [--purge] AGENT... | --all
#   ./install.sh --list                                  the agents in this tarball
#
# An agent's dependencies (hcloud-network needs hcloud-dl-metadata) are installed with it. On
# the running system (--root / and DESTDIR unset) units are enabled and started, udev and
# systemd reloaded; with another root only files are written (systemctl --root enables). What
# was installed is recorded in <root>/var/lib/hcloud-agents/<agent>.files, and --uninstall
# removes exactly that, plus the directories the install created. --purge also removes what
# the agent wrote at runtime where the Debian package's purge would (its metadata document).
# With each agent come its manual page and bash, zsh and fish completions (zsh's in
# vendor-completions on Debian and its derivatives, else in site-functions).

# Agent and unit names are single words: lists of them are split on purpose.
# shellcheck disable=SC2086
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=${DESTDIR:-/}
enable=yes
mode=install
purge=no
all=no
agents=""

die() {
	echo "install.sh: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	--root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
	--no-enable) enable=no; shift ;;
	--uninstall) mode=uninstall; shift ;;
	--purge) purge=yes; shift ;;
	--all) all=yes; shift ;;
	--list) mode=list; shift ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) agents="$agents $1"; shift ;;
	esac
done

if [ ! -d "$here/agents" ] || [ ! -d "$here/usr" ]; then
	die "$here is not an unpacked hcloud-agents release"
fi
available=$(cd "$here/agents" && for f in *.files; do printf '%s ' "${f%.files}"; done)

if [ "$mode" = list ]; then
	for a in $available; do echo "$a"; done
	exit 0
fi
[ -d "$root" ] || die "--root $root is not a directory"
root=$(cd "$root" && pwd)
live=no
[ "$root" = / ] && live=yes
r=${root%/}
state="$r/var/lib/hcloud-agents"

if [ "$all" = yes ]; then
	if [ "$mode" = uninstall ]; then
		agents=""
		for f in "$state"/*.files; do
			[ -e "$f" ] && agents="$agents $(basename "$f" .files)"
		done
	else
		agents=$available
	fi
fi
[ -n "$agents" ] || die "name the agents (see --list), or --all"
for a in $agents; do
	case " $available " in *" $a "*) ;; *) die "unknown agent $a; this release has: $available" ;; esac
done

units_of() { # agent: unit names (not templates) among its files
	sed -n 's|^usr/lib/systemd/system/\([^/]*\)$|\1|p' "$here/agents/$1.files" | grep -v '@\.' || true
}

enabled_units_of() { # agent: its units with an [Install] section
	for u in $(units_of "$1"); do
		grep -q '^\[Install\]' "$here/usr/lib/systemd/system/$u" && echo "$u"
	done
	return 0
}

hook() { # agent script argument: the agent-specific steps the Debian package runs too
	if [ "$live" = yes ] && [ -f "$here/agents/$1.$2" ]; then
		sh "$here/agents/$1.$2" "$3" || echo "install.sh: warning: $1 $2 step failed" >&2
	fi
}

installed() { [ -f "$state/$1.files" ]; }

# Where a file of the tree goes under the root: zsh completions in vendor-completions on Debian
# and its derivatives (their zsh does not search site-functions), else in site-functions.
zsh_dir=usr/share/zsh/site-functions
if [ -f "$r/etc/debian_version" ] || [ -d "$r/usr/share/zsh/vendor-completions" ]; then
	zsh_dir=usr/share/zsh/vendor-completions
fi
dest_path() {
	case "$1" in
	usr/share/zsh/site-functions/*) echo "$zsh_dir/${1#usr/share/zsh/site-functions/}" ;;
	*) echo "$1" ;;
	esac
}

# Create a directory and its missing parents, outermost first; print each one created relative
# to the root (one a line: a root or a path may contain spaces).
mkdirs() {
	[ -d "$1" ] && return 0
	mkdirs "$(dirname "$1")" || return 1
	mkdir -m 0755 "$1" && printf '%s\n' "${1#"$r"/}"
}

if [ "$mode" = install ]; then
	if [ "$live" = yes ]; then
		arch=$(uname -m)
		want=$(sed -n 's/.*"arch": *"\([a-z0-9_]*\)".*/\1/p' "$here/usr/share/hcloud-agents/manifest.json" | head -n1)
		[ "$arch" = "$want" ] || die "this release is for $want, this machine is $arch"
		[ "$(id -u)" -eq 0 ] || die "run as root"
	fi
	# Dependencies first, each agent once.
	todo=""
	add() {
		case " $todo " in *" $1 "*) return 0 ;; esac
		if [ -f "$here/agents/$1.depends" ]; then
			while read -r d; do [ -z "$d" ] || add "$d"; done <"$here/agents/$1.depends"
		fi
		todo="$todo $1"
	}
	for a in $agents; do add "$a"; done
	if [ ! -d "$state" ]; then
		# Note the directories of the record itself, to remove them with the last agent.
		created=$(mkdirs "$state")
		printf '%s\n' "$created" >"$state/.state-dirs"
	fi
	for a in $todo; do
		if [ -f "$r/var/lib/dpkg/info/$a.list" ]; then
			die "$a is installed as a Debian package; remove it with apt first"
		fi
		record="$state/$a.files"
		tmp="$record.new"
		: >"$tmp"
		while IFS= read -r f; do
			p=$(dest_path "$f")
			dest="$r/$p"
			# Note each directory this install creates, outermost first, to remove it later.
			mkdirs "$(dirname "$dest")" >>"$state/.dirs"
			case "$f" in usr/bin/*) m=0755 ;; *) m=0644 ;; esac
			cp "$here/$f" "$dest.hcloud-new"
			chmod "$m" "$dest.hcloud-new"
			mv -f "$dest.hcloud-new" "$dest"
			echo "file $p" >>"$tmp"
		done <"$here/agents/$a.files"
		mv -f "$tmp" "$record"
		echo "installed $a"
	done
	if [ "$enable" = yes ]; then
		units=""
		for a in $todo; do units="$units $(enabled_units_of "$a")"; done
		set -- $units
		units="$*"
		if [ "$live" = yes ]; then
			systemctl daemon-reload
			udevadm control --reload-rules 2>/dev/null || true
			for a in $todo; do hook "$a" postinst configure; done
			[ -z "$units" ] || systemctl enable --now $units
		elif [ -n "$units" ]; then
			command -v systemctl >/dev/null || die "systemctl is needed to enable units under --root"
			before=$(find "$r/etc/systemd" -type d 2>/dev/null | sort)
			systemctl --root="$r" enable $units >/dev/null 2>&1 || die "systemctl --root=$r enable $units failed"
			# The directories enabling created are recorded with the others.
			find "$r/etc/systemd" -type d | sort | while IFS= read -r d; do
				printf '%s\n' "$before" | grep -qxF "$d" || echo "${d#"$r"/}" >>"$state/.dirs"
			done
		fi
		[ -z "$units" ] || echo "enabled $units"
	fi
	exit 0
fi

# Uninstall.
for a in $agents; do
	installed "$a" || die "$a is not installed by install.sh under $root"
done
for f in "$state"/*.files; do
	[ -e "$f" ] || continue
	other=$(basename "$f" .files)
	case " $agents " in *" $other "*) continue ;; esac
	for a in $agents; do
		if grep -qx "$a" "$here/agents/$other.depends" 2>/dev/null; then
			die "$other needs $a: uninstall both (install.sh --uninstall $other $a)"
		fi
	done
done
units=""
for a in $agents; do units="$units $(units_of "$a")"; done
set -- $units
units="$*"
if [ -n "$units" ]; then
	if [ "$live" = yes ]; then
		systemctl disable --now $units >/dev/null 2>&1 || true
	elif command -v systemctl >/dev/null; then
		systemctl --root="$r" disable $units >/dev/null 2>&1 || true
	fi
fi
for a in $agents; do
	hook "$a" postrm remove
	[ "$purge" = yes ] && hook "$a" postrm purge
	sed -n 's/^file //p' "$state/$a.files" | while IFS= read -r f; do rm -f "$r/$f"; done
	rm -f "$state/$a.files"
	echo "removed $a"
done
# The directories installs created, innermost first, once empty; the others stay recorded.
if [ -f "$state/.dirs" ]; then
	sort -ru "$state/.dirs" | while IFS= read -r d; do
		rmdir "$r/$d" 2>/dev/null || echo "$d"
	done >"$state/.dirs.new"
	mv -f "$state/.dirs.new" "$state/.dirs"
fi
if ! ls "$state"/*.files >/dev/null 2>&1; then
	dirs=$(cat "$state/.state-dirs" 2>/dev/null || true)
	rm -f "$state/.state-dirs" "$state/.dirs"
	rmdir "$state" 2>/dev/null || true
	printf '%s\n' "$dirs" | sort -r | while IFS= read -r d; do
		[ -z "$d" ] || rmdir "$r/$d" 2>/dev/null || true
	done
fi
if [ "$live" = yes ]; then
	systemctl daemon-reload
fi
exit 0
