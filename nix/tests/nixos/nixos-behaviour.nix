# What the rest of NixOS does with the options of ./options.nix, as far as the hcloud module's
# behaviour depends on it (current nixpkgs, 26.11):
#   - nixos/modules/tasks/network-interfaces-systemd.nix: with networkd and networking.useDHCP,
#     99-ethernet-default-dhcp runs DHCP on every ethernet NIC (private ones included);
#   - nixos/modules/virtualisation/qemu-guest-agent.nix: the guest agent's unit, whose PATH has
#     no chpasswd unless someone adds it (nixpkgs #370546);
#   - nixos/modules/config/nix-channel.nix: NIX_PATH for channel configurations;
#   - the values other modules read: nix.package, system.build.nixos-rebuild.
{
  config,
  lib,
  pkgs,
  ...
}:
{
  config = lib.mkMerge [
    (lib.mkIf (config.networking.useNetworkd && config.networking.useDHCP) {
      systemd.network.networks."99-ethernet-default-dhcp" = {
        matchConfig = {
          Type = "ether";
          Kind = "!*";
        };
        networkConfig.DHCP = "yes";
      };
    })
    (lib.mkIf config.services.qemuGuest.enable {
      systemd.services.qemu-guest-agent = {
        description = "QEMU Guest Agent";
        serviceConfig.ExecStart = "${pkgs.qemu_kvm}/bin/qemu-ga --statedir /run/qemu-ga";
      };
    })
    {
      # nix.nixPath's default, a list.
      environment.sessionVariables.NIX_PATH = [
        "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
        "nixos-config=/etc/nixos/configuration.nix"
        "/nix/var/nix/profiles/per-user/root/channels"
      ];
      nix.package = lib.mkDefault pkgs.nix;
      system.build.nixos-rebuild = pkgs.nixos-rebuild;
    }
  ];
}
