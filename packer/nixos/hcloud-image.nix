# The NixOS image's own settings, installed as /etc/nixos/hcloud-image.nix next to the user's
# configuration (/etc/nixos/user/configuration.nix), which may override any of it:
#   - the disk layout of packer/scripts/disk.sh (root labelled nixos, ESP labelled ESP on /efi),
#     GRUB for BIOS and UEFI on x86_64, UEFI only on aarch64 (CAX), growing root at boot
#   - the hcloud agents module (nix/module.nix) with the agents from the staged tree that the
#     other images install (hcloud-agents/agents-from-dist.nix)
#   - the build's variables (image-settings.json): locale, keymap, time zone, packages, swap,
#     the system.stateVersion of the release installed
{
  lib,
  pkgs,
  modulesPath,
  ...
}:
let
  settings = builtins.fromJSON (builtins.readFile ./image-settings.json);
  isx86 = pkgs.stdenv.hostPlatform.isx86_64;
in
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    ./hcloud-agents/nix/module.nix
  ];

  services.hcloud.package = lib.mkDefault (pkgs.callPackage ./hcloud-agents/agents-from-dist.nix { });

  boot.loader.grub = {
    enable = true;
    device = if isx86 then settings.disk else "nodev";
    efiSupport = true;
    efiInstallAsRemovable = true;
  };
  boot.loader.efi.efiSysMountPoint = "/efi";
  boot.loader.timeout = lib.mkDefault 1;
  boot.growPartition = true;
  boot.kernelParams = if isx86 then [ "console=ttyS0,115200" "console=tty0" ] else [ "console=tty" ];
  boot.initrd.kernelModules = lib.optionals (!isx86) [ "virtio_gpu" ];

  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  fileSystems."/efi" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
    options = [
      "fmask=0077"
      "dmask=0077"
    ];
  };
  swapDevices = lib.optional (settings.swapSizeMiB > 0) {
    device = "/swapfile";
    size = settings.swapSizeMiB;
  };

  i18n.defaultLocale = lib.mkDefault settings.locale;
  console.keyMap = lib.mkDefault settings.keymap;
  time.timeZone = lib.mkDefault settings.timezone;
  environment.systemPackages = map (name: lib.getAttrFromPath (lib.splitString "." name) pkgs) settings.extraPackages;

  # Hetzner's password reset goes through the guest agent.
  services.qemuGuest.enable = lib.mkDefault true;
  services.openssh.settings.PermitRootLogin = lib.mkDefault "prohibit-password";

  # The release installed, written by the build (packer/scripts/nixos-etc.sh), never
  # lib.trivial.release: on nixos-unstable that moves with every rebuild after a branch-off.
  system.stateVersion = lib.mkDefault (
    if builtins.match "[0-9][0-9][.][0-9][0-9]" settings.stateVersion != null then
      settings.stateVersion
    else
      throw "image-settings.json: stateVersion \"${settings.stateVersion}\" is not a NixOS release (YY.MM); the image build writes it"
  );
}
