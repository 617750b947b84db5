# The configuration a NixOS image gets when the build is given no nix-config-path: nothing beyond
# the image's defaults (hcloud-image.nix). To build your own, copy this directory, add what your
# servers need, and pass it with -var nix-config-path=DIR. The whole directory is installed as
# /etc/nixos/user (.git included); configuration.nix is its entry point.
{ ... }:
{
}
