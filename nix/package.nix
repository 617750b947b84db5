# The hcloud agents as a Nix package: the agent binaries built from the workspace and its
# Cargo.lock, and the files of systemd/ installed as every distribution package installs them
# (units → lib/systemd/system, udev rules → lib/udev/rules.d, presets → lib/systemd/system-preset,
# the fallback network → lib/systemd/network), with /usr/bin/hcloud-* pointing at this package
# and the systemd tools they call at the systemd package; each agent's manual page and bash,
# zsh and fish completions in share/.
#
#   pkgs.callPackage ./nix/package.nix { }
{
  lib,
  rustPlatform,
  systemd,
}:
let
  workspace = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  # The agents that run on a server (not the test and image-building tools of the workspace).
  agents = [
    "hcloud-dl-metadata"
    "hcloud-dl-userdata"
    "hcloud-hostname"
    "hcloud-ssh-keys"
    "hcloud-network"
    "hcloud-volumes"
  ];
in
rustPlatform.buildRustPackage (finalAttrs: {
  pname = "hcloud-agents";
  inherit (workspace.workspace.package) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../crates
      ../systemd
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = lib.concatMap (p: [
    "-p"
    p
  ]) agents;
  # The unit tests of the agents; their integration tests need network namespaces, D-Bus and a
  # fake metadata service on loopback, which scripts/test runs outside the build sandbox.
  cargoTestFlags = finalAttrs.cargoBuildFlags ++ [ "--lib" ];

  postInstall = ''
    for f in systemd/*; do
      case "$f" in
        *.service | *.timer | *.path | *.target | *.socket) dir=lib/systemd/system ;;
        *.rules) dir=lib/udev/rules.d ;;
        *.preset) dir=lib/systemd/system-preset ;;
        *.network | *.link | *.netdev) dir=lib/systemd/network ;;
        *) echo "postInstall: $f: unknown kind of file (see docs: unit and install conventions)" >&2; exit 1 ;;
      esac
      install -Dm644 -t "$out/$dir" "$f"
    done
    for f in $(find "$out/lib" -type f); do
      sed -i \
        -e "s|/usr/bin/hcloud-|$out/bin/hcloud-|g" \
        -e "s|/usr/bin/systemctl|${systemd}/bin/systemctl|g" \
        -e "s|/usr/bin/networkctl|${systemd}/bin/networkctl|g" \
        -e "s|/usr/bin/udevadm|${systemd}/bin/udevadm|g" \
        -e "s|/usr/bin/systemd-|${systemd}/bin/systemd-|g" \
        "$f"
    done
    # Every program a unit or rule runs must now be in the store (comments aside).
    if grep -rnE '(^|[^[:alnum:]_/.])/(usr/)?s?bin/' "$out/lib" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*[#;]'; then
      echo "postInstall: the files above run programs outside the Nix store" >&2
      exit 1
    fi
    for a in ${lib.escapeShellArgs agents}; do
      test -x "$out/bin/$a" || { echo "postInstall: $a was not built" >&2; exit 1; }
    done
    # The agents' manual pages (share/man/man8) and bash, zsh and fish completions, rendered from
    # their clap definitions by the workspace's hcloud-image, built for the build machine and
    # not installed.
    cargo run --frozen --release -p hcloud-image -- manuals --out "$out" ${lib.escapeShellArgs agents}
  '';

  meta = {
    description = "Agents that make a server from a custom image behave like a native Hetzner Cloud server";
    license = lib.licenses.gpl3Plus;
    platforms = lib.platforms.linux;
  };
})
