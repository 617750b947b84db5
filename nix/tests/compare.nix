# NixOS' networks for a document next to the networkd files hcloud-network rendered for the same
# document, both reduced to what configures the server (networkd.nix). Builtins only.
#   nix-instantiate --eval --strict --json nix/tests/compare.nix \
#     --argstr document DOC.json --argstr golden DIR -A ours   (or -A theirs)
{
  document,
  golden ? null,
}:
let
  inherit (builtins)
    attrNames
    attrValues
    concatLists
    concatStringsSep
    filter
    map
    match
    readDir
    readFile
    sort
    ;
  hcloud = import ../lib/hcloud.nix;
  networkd = import ./networkd.nix;

  settings = hcloud.settings (builtins.fromJSON (readFile document));
  byMac = sort (a: b: concatStringsSep "," a.mac < concatStringsSep "," b.mac);

  # Every *.network file below a directory.
  networkFiles =
    dir:
    let
      entries = readDir dir;
    in
    concatLists (
      map (
        name:
        let
          path = "${dir}/${name}";
        in
        if entries.${name} == "directory" then
          networkFiles path
        else if match ".*\\.network" name != null then
          [ path ]
        else
          [ ]
      ) (attrNames entries)
    );
in
{
  rendered = builtins.mapAttrs (_: hcloud.renderNetwork) settings.networks;
  ours = byMac (map (n: networkd.project (hcloud.renderNetwork n)) (attrValues settings.networks));
  theirs = byMac (
    map (f: networkd.project (readFile f)) (if golden == null then [ ] else networkFiles golden)
  );
  theirFiles = if golden == null then [ ] else networkFiles golden;
}
