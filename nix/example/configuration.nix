# An example NixOS configuration for a Hetzner Cloud server built with the hcloud agents module
# (the flake's nixosConfigurations.example). With channels, put
#   imports = [ /path/to/hcloud-agents/nix/module.nix ];
# in /etc/nixos/configuration.nix instead of using the flake.
{
  config,
  lib,
  modulesPath,
  ...
}:
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  # A disk like the images': /dev/sda with a BIOS boot partition, an ESP (label ESP, on /efi) and
  # an ext4 root (label nixos). Adjust to your own layout.
  boot.loader.grub = {
    enable = true;
    device = "/dev/sda";
    efiSupport = true;
    efiInstallAsRemovable = true;
  };
  boot.loader.efi.efiSysMountPoint = "/efi";
  boot.growPartition = true;
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  fileSystems."/efi" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
  };

  # Everything Hetzner-specific comes from the module: agents, networkd, resolvers, time servers.
  # Examples of overriding it:
  #   services.hcloud.userdata.enable = false;          # no /etc/hcloud-userdata
  #   networking.hostName = "web";                      # a fixed hostname instead of the server name
  #   services.hcloud.firstBootRebuild.enable = true;   # rebuild once per instance
  # and of using the metadata (empty on the build machine):
  users.motd = lib.mkIf (config.hcloud.instance_id != null) ''
    Hetzner Cloud server ${toString config.hcloud.hostname} (${toString config.hcloud.availability_zone})
  '';

  system.stateVersion = "26.05";
}
