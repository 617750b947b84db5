{
  description = "hcloud agents: make a server from a custom image behave like a native Hetzner Cloud server";

  # No flake.lock is committed yet: it is written by the first `nix flake lock` (or any flake
  # command) on a machine that can reach GitHub.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      hcloud = import ./nix/lib/hcloud.nix;

      # The pure function against every expected settings file (pure evaluation reads the
      # flake's own files): the names of the documents whose settings differ.
      settingsMismatches =
        let
          fixtures = builtins.attrNames (builtins.readDir ./nix/tests/fixtures);
          cases = builtins.attrNames (builtins.readDir ./nix/tests/cases);
          readJSON = path: builtins.fromJSON (builtins.readFile path);
          differs =
            doc: expected: hcloud.settings (readJSON doc) != readJSON expected;
        in
        builtins.filter (
          n: differs ./nix/tests/fixtures/${n}/document.json ./nix/tests/expected/${n}.json
        ) fixtures
        ++ builtins.filter (
          n: differs ./nix/tests/cases/${n}/document.json ./nix/tests/cases/${n}/expected.json
        ) cases;
    in
    {
      # The NixOS module. Reading /etc/hcloud-metadata.json into config.hcloud.* needs
      # `--impure` with flakes; the runtime agents do not need it (docs/nixos.md).
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.hcloud.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.hcloud = self.nixosModules.default;

      packages = forAllSystems (pkgs: rec {
        hcloud-agents = pkgs.callPackage ./nix/package.nix { };
        default = hcloud-agents;
      });

      # The metadata → NixOS settings function (builtins only): settings, settingsWith,
      # readDocument, normalize, emptyDocument, hetzner.
      lib = hcloud;

      nixosConfigurations.example = nixpkgs.lib.nixosSystem {
        modules = [
          self.nixosModules.default
          ./nix/example/configuration.nix
          { nixpkgs.hostPlatform = "x86_64-linux"; }
        ];
      };

      checks = forAllSystems (
        pkgs:
        {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          settings = pkgs.runCommand "hcloud-settings" { } (
            if settingsMismatches == [ ] then
              "touch $out"
            else
              throw "NixOS settings differ from the expected ones for: ${toString settingsMismatches}"
          );
        }
        // nixpkgs.lib.optionalAttrs (pkgs.stdenv.hostPlatform.system == "x86_64-linux") {
          example = self.nixosConfigurations.example.config.system.build.toplevel;
        }
      );

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
