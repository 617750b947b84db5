# The hcloud agents as a package made from the staged tree of `hcloud-image dist`: the same static
# binaries and unit files the Arch Linux image and the distribution packages install, laid out
# like the output of nix/package.nix (bin, lib/systemd/system, lib/udev/rules.d, ...), with the
# programs the units run pointing into the Nix store.
{
  lib,
  stdenv,
  runCommand,
  systemd,
}:
let
  manifest = builtins.fromJSON (builtins.readFile ./dist/usr/share/hcloud-agents/manifest.json);
  cpu = stdenv.hostPlatform.parsed.cpu.name;
in
assert lib.assertMsg (manifest.arch == cpu)
  "the staged tree is for ${manifest.arch}, this system is ${cpu}: run hcloud-image dist --arch ${cpu}";
runCommand "hcloud-agents-${manifest.label}"
  {
    meta.description = "hcloud agents ${manifest.label} from the staged tree";
  }
  ''
    mkdir -p $out
    cp -r ${./dist/usr}/. $out/
    chmod -R u+w $out
    for f in $(find $out/lib -type f); do
      sed -i \
        -e "s|/usr/bin/hcloud-|$out/bin/hcloud-|g" \
        -e "s|/usr/bin/systemctl|${systemd}/bin/systemctl|g" \
        -e "s|/usr/bin/networkctl|${systemd}/bin/networkctl|g" \
        -e "s|/usr/bin/udevadm|${systemd}/bin/udevadm|g" \
        -e "s|/usr/bin/systemd-|${systemd}/bin/systemd-|g" \
        "$f"
    done
    for a in ${lib.escapeShellArgs manifest.binaries}; do
      test -x "$out/bin/$a" || { echo "agents-from-dist: $a is missing from the staged tree" >&2; exit 1; }
    done
  ''
