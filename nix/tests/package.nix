# nix/package.nix evaluated with a stub rustPlatform (no nixpkgs): the failed assertions, and the
# postInstall script for scripts/checks/nix.sh to run against a copy of systemd/.
#   nix-instantiate --eval --strict --json nix/tests/package.nix --argstr root "$PWD" -A failed
{ root }:
let
  inherit (builtins)
    attrNames
    concatLists
    elem
    filter
    length
    map
    match
    readDir
    readFile
    split
    ;
  stubLib = import ./stub-lib.nix;
  lib = {
    fileset = {
      unions = paths: paths;
      toSource = { root, fileset }: { inherit root fileset; };
    };
    concatMap = f: list: concatLists (map f list);
    escapeShellArgs = list: builtins.concatStringsSep " " (map stubLib.escapeShellArg list);
    licenses.gpl3Plus = "GPL-3.0-or-later";
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };
  # buildRustPackage (finalAttrs: { ... }): the attributes, with finalAttrs tied.
  rustPlatform.buildRustPackage = f: let attrs = f attrs; in attrs;
  systemd = "/nix/store/00000000000000000000000000000000-systemd";
  pkg = import ../package.nix { inherit lib rustPlatform systemd; };

  flags = pkg.cargoBuildFlags;
  built = filter (f: f != "-p") flags;
  workspace = builtins.fromTOML (readFile (root + "/Cargo.toml"));
  unitDir = root + "/systemd";
  unitFiles = attrNames (readDir unitDir);
  # Every hcloud-* program the units and rules run.
  programsRun = concatLists (
    map (
      f:
      map (m: builtins.head m) (
        filter (m: builtins.isList m) (split "/usr/bin/(hcloud-[a-z0-9-]+)" (readFile (unitDir + "/${f}")))
      )
    ) unitFiles
  );
  check = name: ok: { inherit name ok; };
  checks = [
    (check "version is the workspace's" (pkg.version == workspace.workspace.package.version))
    (check "built from the workspace's Cargo.lock" (
      toString pkg.cargoLock.lockFile == toString (root + "/Cargo.lock")
    ))
    (check "the source holds the workspace, its crates and systemd/" (
      map toString pkg.src.fileset == map (p: toString (root + p)) [
        "/Cargo.toml"
        "/Cargo.lock"
        "/crates"
        "/systemd"
      ]
    ))
    (check "builds each agent with -p" (length flags == 2 * length built && built != [ ]))
    (check "Cargo.lock has only registry sources (git sources would need cargoLock.outputHashes)" (
      length (split "source = \"git[+]" (readFile (root + "/Cargo.lock"))) == 1
    ))
    (check "the unit tests run for the agents (--lib)" (pkg.cargoTestFlags == flags ++ [ "--lib" ]))
  ]
  ++ map (c: check "crate ${c} exists with a binary and a library (for --lib)" (
    builtins.pathExists (root + "/crates/${c}/Cargo.toml")
    && builtins.pathExists (root + "/crates/${c}/src/main.rs")
    && builtins.pathExists (root + "/crates/${c}/src/lib.rs")
  )) built
  ++ map (p: check "the package builds ${p}, which a unit or rule runs" (elem p built)) programsRun
  ++ map (c: check "${c} is run by a unit in systemd/" (elem c programsRun)) built;
in
{
  failed = map (c: c.name) (filter (c: !c.ok) checks);
  count = length checks;
  inherit (pkg) postInstall;
  agents = built;
}
