# Evaluate the scenarios of ./scenarios.nix with the NixOS module system, in one of two modes:
#   offline (libPath): lib.evalModules of nixpkgs' lib (the pinned nixpkgs.lib, ../nixpkgs-lib.json)
#     with the typed stand-ins of ./options.nix and ./nixos-behaviour.nix and a stand-in pkgs whose
#     packages are placeholders; `system` is the whole configuration, forced;
#   full (nixpkgs): nixpkgs' nixos/lib/eval-config.nix, as nixos-rebuild evaluates a system;
#     `system` is config.system.build.toplevel.drvPath.
#
#   nix-instantiate --eval --strict --json nix/tests/nixos/eval.nix --argstr root "$PWD" \
#     --argstr libPath DIR/lib --argstr images '{"x86_64":DIR,"aarch64":DIR}' -A names
#   ... -A scenarios.NAME → { failed = [ check names ]; count; system; warnings; }
#   ... -A configs.NAME.OPTION → one value of a scenario's configuration
#   ... -A refused.NAME → must fail with an error matching -A refusedErrors.NAME
{
  root,
  images,
  libPath ? null,
  nixpkgs ? null,
}:
let
  rootPath = /. + root;
  imageDirs = builtins.mapAttrs (_: d: /. + d) (builtins.fromJSON images);
  scenarios = import ./scenarios.nix {
    root = rootPath;
    images = imageDirs;
  };
  refusedCases = import ./refused.nix { root = rootPath; };

  offline =
    let
      lib = import (/. + libPath);
      # A placeholder derivation: what the options' types see of a package.
      placeholder =
        name:
        let
          drv = {
            type = "derivation";
            inherit name;
            outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
            drvPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha1" name)}-${name}.drv";
            out = drv;
            outputs = [ "out" ];
          };
        in
        drv;
      pkgsFor = hostPlatform: {
        inherit lib;
        stdenv = { inherit hostPlatform; };
        callPackage = path: _: placeholder (baseNameOf (toString path));
        runCommand =
          name: _: script:
          placeholder name // { inherit script; };
        coreutils = placeholder "coreutils";
        jq = placeholder "jq";
        shadow = placeholder "shadow";
        nix = placeholder "nix";
        nixos-rebuild = placeholder "nixos-rebuild";
        qemu_kvm = placeholder "qemu";
      };
      evalScenario =
        s:
        let
          e = lib.evalModules {
            specialArgs.modulesPath = ./modules;
            modules = [
              ./options.nix
              ./nixos-behaviour.nix
              ({ config, ... }: { _module.args.pkgs = pkgsFor config.nixpkgs.hostPlatform; })
            ]
            ++ s.modules;
          };
          pkgs = e._module.args.pkgs;
        in
        {
          inherit (e) config;
          inherit pkgs;
          # Everything declared, merged and type-checked (the platform has functions: its name).
          system = removeAttrs e.config [ "_module" "nixpkgs" ] // {
            nixpkgs.hostPlatform = e.config.nixpkgs.hostPlatform.system;
          };
        };
    in
    evalScenario;

  full =
    s:
    let
      e = import (/. + nixpkgs + "/nixos/lib/eval-config.nix") {
        system = null;
        inherit (s) modules;
      };
    in
    {
      inherit (e) config pkgs;
      system = e.config.system.build.toplevel.drvPath;
    };

  evaluate =
    if nixpkgs != null then
      full
    else if libPath != null then
      offline
    else
      throw "eval.nix: give libPath (nixpkgs' lib, offline) or nixpkgs (a full nixpkgs)";

  run =
    s:
    let
      e = evaluate s;
      checks = s.checks { inherit (e) config pkgs; };
    in
    {
      failed = map (c: c.name) (builtins.filter (c: !c.ok) checks);
      count = builtins.length checks;
      inherit (e) system;
      inherit (e.config) warnings;
    };
in
{
  names = builtins.attrNames scenarios;
  scenarios = builtins.mapAttrs (_: run) scenarios;
  # Each scenario's whole configuration, for looking at one value (-A configs.NAME.system.stateVersion).
  configs = builtins.mapAttrs (_: s: (evaluate s).config) scenarios;
  # ./refused.nix: each case's configuration, forced (must fail), and the error it must give.
  refused = builtins.mapAttrs (_: c: (evaluate c).system) refusedCases;
  refusedErrors = builtins.mapAttrs (_: c: c.error) refusedCases;
}
