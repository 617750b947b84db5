# NixOS' networks for a document next to the networkd files hcloud-network rendered for the same
# document, both reduced to what configures the server (networkd.nix). Builtins only.
#   nix-instantiate --eval --strict --json nix/tests/compare.nix \
#     --argstr document DOC.json --argstr golden DIR -A ours   (or -A theirs)
{
  document,
  golden ? null,
  # hcloud-network's flags for this case (the golden case's `args` file).
  args ? "",
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

  flags = filter (w: builtins.isString w && w != "") (builtins.split "[[:space:]]+" args);
  known = [ "--private-dhcp" ];
  settings =
    if builtins.all (f: builtins.elem f known) flags then
      hcloud.settingsWith { privateDhcp = builtins.elem "--private-dhcp" flags; } (
        builtins.fromJSON (readFile document)
      )
    else
      throw "compare.nix: hcloud-network flags '${args}' have no NixOS equivalent here";
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
  problems = settings.problems;
}
