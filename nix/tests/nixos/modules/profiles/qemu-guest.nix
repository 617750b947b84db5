# Stand-in for nixpkgs' nixos/modules/profiles/qemu-guest.nix (what `modulesPath +
# "/profiles/qemu-guest.nix"` imports in the offline evaluation): the same settings.
{ ... }:
{
  boot.initrd.availableKernelModules = [
    "virtio_net"
    "virtio_pci"
    "virtio_mmio"
    "virtio_blk"
    "virtio_scsi"
    "9p"
    "9pnet_virtio"
  ];
  boot.initrd.kernelModules = [
    "virtio_balloon"
    "virtio_console"
    "virtio_rng"
    "virtio_gpu"
  ];
}
