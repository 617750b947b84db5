# What the typed stand-ins must refuse, as nixpkgs does: each case's modules must not evaluate,
# and the error must match `error`. Shows that the offline scenarios' stand-ins check something.
{ root }:
let
  base = [
    (root + "/nix/tests/nixos/hardware/x86_64.nix")
    { system.stateVersion = "26.05"; }
  ];
in
{
  # Current nixpkgs' networkd checks take systemd 257's names only.
  keep-configuration-dhcp = {
    modules = base ++ [ { systemd.network.networks."10-x".networkConfig.KeepConfiguration = "dhcp"; } ];
    error = "KeepConfiguration";
  };
  # types.bool: two defaults that differ are a conflict (the generated hardware configuration's
  # against a module's mkDefault false).
  use-dhcp-two-defaults = {
    modules = base ++ [ ({ lib, ... }: { networking.useDHCP = lib.mkDefault false; }) ];
    error = "conflicting definition values";
  };
  # A key nixpkgs does not know in a section.
  unknown-network-key = {
    modules = base ++ [ { systemd.network.networks."10-x".networkConfig.NoSuchKey = "yes"; } ];
    error = "NoSuchKey";
  };
  # networking.hostName is one label.
  hostname-with-a-dot = {
    modules = base ++ [ { networking.hostName = "web.example.com"; } ];
    error = "networking.hostName";
  };
}
