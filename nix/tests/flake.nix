# flake.nix's outputs evaluated against a stub nixpkgs (no download): the failed assertions.
#   nix-instantiate --eval --strict --json nix/tests/flake.nix -A failed
let
  flake = import ../../flake.nix;
  stubPackage = system: {
    outPath = "/nix/store/00000000000000000000000000000000-hcloud-agents-${system}";
    inherit system;
  };
  legacyPackages = builtins.listToAttrs (
    map
      (system: {
        name = system;
        value = {
          callPackage = path: args: stubPackage system // { inherit path args; };
          runCommand = name: env: script: {
            inherit name env script;
          };
          stdenv.hostPlatform.system = system;
          nixfmt = "nixfmt-${system}";
        };
      })
      [
        "x86_64-linux"
        "aarch64-linux"
      ]
  );
  nixpkgs = {
    inherit legacyPackages;
    lib = {
      genAttrs =
        names: f:
        builtins.listToAttrs (
          map (n: {
            name = n;
            value = f n;
          }) names
        );
      optionalAttrs = cond: attrs: if cond then attrs else { };
      nixosSystem = args: {
        inherit (args) modules;
        config.system.build.toplevel = "toplevel";
      };
    };
  };
  self = flake.outputs {
    inherit self nixpkgs;
  };
  # The module the flake exports, applied as NixOS would call it.
  exported = self.nixosModules.default {
    lib.mkDefault = v: {
      _type = "override";
      priority = 1000;
      content = v;
    };
    pkgs = legacyPackages.aarch64-linux;
  };
  check = name: ok: { inherit name ok; };
  checks = [
    (check "nixpkgs input is a NixOS release branch" (
      builtins.match "github:NixOS/nixpkgs/nixos-[0-9][0-9][.][0-9][0-9]" flake.inputs.nixpkgs.url != null
    ))
    (check "nixosModules.default imports nix/module.nix" (
      map toString exported.imports == [ (toString ../module.nix) ]
    ))
    (check "nixosModules.default uses the flake's package for the system, as a default" (
      exported.services.hcloud.package.content.system == "aarch64-linux"
      && exported.services.hcloud.package.priority == 1000
    ))
    (check "packages for x86_64 and aarch64, built by nix/package.nix" (
      builtins.all (
        s: toString self.packages.${s}.default.path == toString ../package.nix
      ) [ "x86_64-linux" "aarch64-linux" ]
    ))
    (check "lib is the pure function file" (self.lib == import ../lib/hcloud.nix))
    (check "the example configuration uses the module and the example file" (
      let
        m = self.nixosConfigurations.example.modules;
      in
      builtins.isFunction (builtins.elemAt m 0)
      && toString (builtins.elemAt m 1) == toString ../example/configuration.nix
      && (builtins.elemAt m 2).nixpkgs.hostPlatform == "x86_64-linux"
    ))
    (check "checks.settings passes: every expected settings file matches" (
      builtins.all (s: self.checks.${s}.settings.script == "touch $out") [ "x86_64-linux" "aarch64-linux" ]
    ))
    (check "checks build the package everywhere and the example system on x86_64" (
      self.checks.x86_64-linux ? example && !(self.checks.aarch64-linux ? example)
      && self.checks.aarch64-linux.package.system == "aarch64-linux"
    ))
  ];
in
{
  failed = map (c: c.name) (builtins.filter (c: !c.ok) checks);
  count = builtins.length checks;
}
