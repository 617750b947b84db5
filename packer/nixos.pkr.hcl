# NixOS snapshot for Hetzner Cloud with the hcloud agents, for x86_64 and (CAX) aarch64.
#
#   hcloud-image dist [--arch aarch64]           # stage the agents (target/dist/<arch>)
#   packer init packer/nixos.pkr.hcl
#   HCLOUD_TOKEN=... packer build [-var arch=aarch64] [-var nix-config-path=DIR] packer/nixos.pkr.hcl
#
# or `hcloud-image build nixos [--arch aarch64]`. The build server boots the rescue system; the disk
# is partitioned there, Nix is installed with its store on the target disk, and nixos-install
# installs a configuration that imports the project's NixOS module (nix/module.nix), the agents
# from the staged tree and your configuration directory. See docs/images.md.

packer {
  required_version = ">= 1.11.0"
  required_plugins {
    hcloud = {
      source  = "github.com/hetznercloud/hcloud"
      version = "~> 1.7"
    }
  }
}

variable "hcloud-token" {
  type        = string
  default     = env("HCLOUD_TOKEN")
  sensitive   = true
  description = "Hetzner Cloud API token (read & write). Defaults to $HCLOUD_TOKEN."
  validation {
    condition     = length(var.hcloud-token) > 0
    error_message = "Set HCLOUD_TOKEN or -var hcloud-token=... (an API token with read & write access)."
  }
}

variable "location" {
  type        = string
  default     = "fsn1"
  description = "Location of the build server (the snapshot is usable in every location)."
  validation {
    condition     = can(regex("^[a-z]+[0-9]*$", var.location))
    error_message = "The location is a Hetzner location name such as fsn1, nbg1, hel1, ash, hil or sin."
  }
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "CPU architecture: x86_64 (CX, CPX, CCX) or aarch64 (CAX, UEFI only)."
  validation {
    condition     = contains(["x86_64", "aarch64"], var.arch)
    error_message = "The architecture is x86_64 or aarch64."
  }
}

variable "server-type" {
  type        = string
  default     = ""
  description = "Server type of the build server (empty: cx23 for x86_64, cax11 for aarch64). Its disk size is the smallest disk the snapshot fits on."
  validation {
    condition     = var.server-type == "" || can(regex("^c(x|px|cx|ax)[0-9]+$", var.server-type))
    error_message = "The server type is empty or a type name such as cx23, cpx12 or cax11."
  }
}

variable "upgrade-server-type" {
  type        = string
  default     = ""
  description = "Optional bigger server type (same architecture) for a faster build; the disk is not upgraded, so the snapshot still fits server-type. Empty: no upgrade."
  validation {
    condition     = var.upgrade-server-type == "" || can(regex("^c(x|px|cx|ax)[0-9]+$", var.upgrade-server-type))
    error_message = "The upgrade server type is empty or a type name such as cx33 or cax21."
  }
}

variable "base-image" {
  type        = string
  default     = "debian-13"
  description = "Any current image: the build server only boots it to enter the rescue system."
}

variable "disk" {
  type        = string
  default     = "/dev/sda"
  description = "The build server's disk as the rescue system sees it."
  validation {
    condition     = can(regex("^/dev/[a-z0-9]+$", var.disk))
    error_message = "The disk is a device path such as /dev/sda."
  }
}

variable "nixos-channel" {
  type        = string
  default     = "nixos-26.05"
  description = "NixOS release channel to install, e.g. nixos-26.05 (also the system.stateVersion)."
  validation {
    condition     = can(regex("^nixos-([0-9]{2}[.][0-9]{2}|unstable)$", var.nixos-channel))
    error_message = "The channel is nixos-YY.MM or nixos-unstable."
  }
}

variable "nix-version" {
  type        = string
  default     = "2.35.1"
  description = "Nix version installed in the rescue system to run nixos-install (change together with the checksums)."
  validation {
    condition     = can(regex("^[0-9]+[.][0-9]+[.][0-9]+$", var.nix-version))
    error_message = "The Nix version looks like 2.35.1."
  }
}

variable "nix-mirror" {
  type        = string
  default     = "https://releases.nixos.org/nix"
  description = "Where nix-<nix-version>/nix-<nix-version>-<arch>-linux.tar.xz is downloaded from (checked against nix-sha256 either way)."
  validation {
    condition     = can(regex("^https?://", var.nix-mirror))
    error_message = "The Nix mirror is an http(s) URL."
  }
}

variable "nix-sha256" {
  type = map(string)
  default = {
    "x86_64"  = "c3fe29778acaa93b5095ee66e36f11ec7c6a284c40970a24cc83ac4f04809db3"
    "aarch64" = "79b739996f1751573b4d2b56e4ae607855184c711f2cc1274fa0952a13d4bfc9"
  }
  description = "SHA-256 of nix-<nix-version>-<arch>-linux.tar.xz per architecture (as listed in that release's install script)."
  validation {
    condition     = alltrue([for a in ["x86_64", "aarch64"] : can(regex("^[0-9a-f]{64}$", lookup(var.nix-sha256, a, "")))])
    error_message = "The checksums are a map with a 64-digit hex SHA-256 for x86_64 and aarch64."
  }
}

variable "nix-config-path" {
  type        = string
  default     = ""
  description = "Your NixOS configuration directory (configuration.nix as entry point), installed whole (.git included) as /etc/nixos/user. Empty: packer/nixos/default-config."
}

variable "locale" {
  type        = string
  default     = "C.UTF-8"
  description = "System locale (LANG), e.g. C.UTF-8 or en_US.UTF-8."
  validation {
    condition     = can(regex("^[A-Za-z_]+([.][A-Za-z0-9-]+)?(@[a-z]+)?$", var.locale))
    error_message = "The locale looks like en_US.UTF-8 or C.UTF-8."
  }
}

variable "keymap" {
  type        = string
  default     = "us"
  description = "Console keymap, e.g. us or de-latin1."
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.keymap))
    error_message = "The keymap is a name such as us or de-latin1."
  }
}

variable "timezone" {
  type        = string
  default     = "UTC"
  description = "Time zone, e.g. UTC or Europe/Berlin."
  validation {
    condition     = can(regex("^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$", var.timezone))
    error_message = "The time zone is a tz database name such as UTC or Europe/Berlin."
  }
}

variable "extra-packages" {
  type        = list(string)
  default     = []
  description = "More packages (nixpkgs attribute paths) for environment.systemPackages, e.g. [\"vim\", \"htop\"]."
  validation {
    condition     = alltrue([for p in var.extra-packages : can(regex("^[A-Za-z0-9_][A-Za-z0-9_.+-]*$", p))])
    error_message = "Packages are nixpkgs attribute paths such as vim or python3Packages.requests."
  }
}

variable "swap-size-mib" {
  type        = number
  default     = 0
  description = "Size of /swapfile in MiB; 0 for no swap."
  validation {
    condition     = var.swap-size-mib >= 0 && var.swap-size-mib == floor(var.swap-size-mib)
    error_message = "The swap size is a whole number of MiB, 0 or more."
  }
}

variable "install-swap-mib" {
  type        = number
  default     = 2048
  description = "Swap (MiB) on the target disk while nixos-install runs, for 4 GB build servers (cx23, cax11); removed before the snapshot. 0 for none (a bigger upgrade-server-type instead)."
  validation {
    condition     = var.install-swap-mib >= 0 && var.install-swap-mib == floor(var.install-swap-mib)
    error_message = "The install swap size is a whole number of MiB, 0 or more."
  }
}

variable "snapshot-prefix" {
  type        = string
  default     = "nixos"
  description = "Snapshot names are <prefix>-<release>-<arch>-<build time>."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.snapshot-prefix))
    error_message = "The prefix uses lower-case letters, digits and dashes."
  }
}

variable "dist-dir" {
  type        = string
  default     = ""
  description = "The staged tree of `hcloud-image dist --arch <arch>` (empty: target/dist/<arch> of this checkout)."
}

locals {
  dist-dir        = var.dist-dir != "" ? var.dist-dir : "${path.root}/../target/dist/${var.arch}"
  nix-config-path = var.nix-config-path != "" ? var.nix-config-path : "${path.root}/nixos/default-config"
  agents          = jsondecode(file("${local.dist-dir}/usr/share/hcloud-agents/manifest.json"))
  server-type     = var.server-type != "" ? var.server-type : (var.arch == "aarch64" ? "cax11" : "cx23")
  # What only a combination of variables shows, checked when packer starts, before any server
  # exists (a validation block sees one variable only): file() of a path that cannot exist is
  # how the template stops with a message. substr, not can(regex()): packer 1.6.6, which the
  # offline checks run, evaluates can() to false here.
  checks = [
    (var.arch == "aarch64") == (substr(local.server-type, 0, 3) == "cax") ? "" : file("ERROR: server type ${local.server-type} is not for ${var.arch} (aarch64: cax*; x86_64: cx*, cpx*, ccx*)"),
    var.upgrade-server-type == "" || (var.arch == "aarch64") == (substr(var.upgrade-server-type, 0, 3) == "cax") ? "" : file("ERROR: upgrade server type ${var.upgrade-server-type} is not for ${var.arch}"),
    fileexists("${local.nix-config-path}/configuration.nix") ? "" : file("ERROR: ${local.nix-config-path} has no configuration.nix"),
  ]
  release    = trimprefix(var.nixos-channel, "nixos-")
  build-time = formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  build-id   = uuidv4()
  labels = {
    "os-flavor"      = "nixos"
    "arch"           = var.arch
    "distro-release" = local.release
    "build-id"       = local.build-id
    "build-time"     = local.build-time
    "agents-version" = local.agents.label
  }
  snapshot-name = "${var.snapshot-prefix}-${local.release}-${var.arch}-${local.build-time}"
}

source "hcloud" "nixos" {
  token               = var.hcloud-token
  location            = var.location
  server_type         = local.server-type
  upgrade_server_type = var.upgrade-server-type == "" ? null : var.upgrade-server-type
  image               = var.base-image
  rescue              = "linux64"
  ssh_username        = "root"
  server_name         = "packer-nixos-${replace(var.arch, "_", "-")}-${local.build-time}"
  server_labels       = { "packer-build-id" = local.build-id }
  ssh_keys_labels     = { "packer-build-id" = local.build-id }
  snapshot_name       = local.snapshot-name
  snapshot_labels     = local.labels
}

build {
  sources = ["source.hcloud.nixos"]

  provisioner "shell" {
    inline = ["mkdir -p /root/hcloud/scripts /root/hcloud/files /root/hcloud/nixos /root/hcloud/dist /root/hcloud/agents/nix /root/hcloud/agents/systemd /root/hcloud/user"]
  }
  provisioner "file" {
    source      = "${path.root}/scripts/"
    destination = "/root/hcloud/scripts/"
  }
  provisioner "file" {
    source      = "${path.root}/nixos/"
    destination = "/root/hcloud/nixos/"
  }
  provisioner "file" {
    source      = "${local.dist-dir}/"
    destination = "/root/hcloud/dist/"
  }
  # The project's NixOS module (nix/module.nix) and the unit files it reads (systemd/).
  provisioner "file" {
    source      = "${path.root}/../nix/"
    destination = "/root/hcloud/agents/nix/"
  }
  provisioner "file" {
    source      = "${path.root}/../systemd/"
    destination = "/root/hcloud/agents/systemd/"
  }
  provisioner "file" {
    source      = "${local.nix-config-path}/"
    destination = "/root/hcloud/user/"
  }

  # GPT with BIOS boot partition, ESP and a labelled root file system, mounted on /mnt.
  provisioner "shell" {
    environment_vars = ["ROOT_LABEL=nixos", "ARCH=${var.arch}"]
    inline           = ["bash /root/hcloud/scripts/disk.sh ${var.disk} /mnt"]
  }

  provisioner "shell" {
    environment_vars = [
      "NIX_VERSION=${var.nix-version}",
      "NIX_SHA256=${var.nix-sha256[var.arch]}",
      "NIX_MIRROR=${var.nix-mirror}",
      "NIXOS_CHANNEL=${var.nixos-channel}",
      "ARCH=${var.arch}",
      "LOCALE=${var.locale}",
      "KEYMAP=${var.keymap}",
      "TIMEZONE=${var.timezone}",
      "EXTRA_PACKAGES=${join(" ", var.extra-packages)}",
      "SWAP_SIZE_MIB=${var.swap-size-mib}",
      "INSTALL_SWAP_MIB=${var.install-swap-mib}",
    ]
    inline = ["bash /root/hcloud/scripts/nixos.sh /mnt ${var.disk}"]
  }

  provisioner "shell" {
    inline = [
      "bash /root/hcloud/scripts/cleanup.sh /mnt",
      "umount -R /mnt",
    ]
  }

  post-processor "manifest" {
    output     = "packer-manifest.json"
    strip_path = true
    custom_data = merge(local.labels, {
      "snapshot-name" = local.snapshot-name
    })
  }
}
