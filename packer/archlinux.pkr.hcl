# Arch Linux snapshot for Hetzner Cloud with the hcloud agents.
#
#   hcloud-image dist                           # stage the agents (target/dist/x86_64)
#   packer init packer/archlinux.pkr.hcl
#   HCLOUD_TOKEN=... packer build packer/archlinux.pkr.hcl
#
# or `hcloud-image build archlinux`, which does all three and pins the latest release.
# The build server boots the rescue system; the disk is partitioned there, Arch Linux is
# pacstrapped from the signed bootstrap tarball, the agents are installed from the staged tree,
# and the snapshot is taken after cleaning everything per-server out of it. See docs/images.md.

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

variable "server-type" {
  type        = string
  default     = "cx23"
  description = "Server type of the build server. Its disk size is the smallest disk the snapshot fits on."
  validation {
    condition     = can(regex("^c(x|px|cx)[0-9]+$", var.server-type))
    error_message = "The server type is an x86 type name such as cx23, cpx12 or ccx13 (Arch Linux is x86_64 only)."
  }
}

variable "upgrade-server-type" {
  type        = string
  default     = ""
  description = "Optional bigger server type for a faster build; the disk is not upgraded, so the snapshot still fits server-type. Empty: no upgrade."
  validation {
    condition     = var.upgrade-server-type == "" || can(regex("^c(x|px|cx)[0-9]+$", var.upgrade-server-type))
    error_message = "The upgrade server type is empty or an x86 type name such as cx33."
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

variable "arch-image" {
  type        = string
  default     = "latest"
  description = "Arch Linux release to install: latest (iso/latest) or a release date YYYY.MM.DD (`hcloud-image arch-release` prints the newest)."
  validation {
    condition     = var.arch-image == "latest" || can(regex("^[0-9]{4}[.][0-9]{2}[.][0-9]{2}$", var.arch-image))
    error_message = "The Arch Linux release is latest or a date like 2026.11.01."
  }
}

variable "arch-iso-mirror" {
  type        = string
  default     = "https://geo.mirror.pkgbuild.com"
  description = "Mirror the bootstrap tarball and its signature are downloaded from (the signature is checked against packer/keys/archlinux-release.asc either way)."
  validation {
    condition     = can(regex("^https?://", var.arch-iso-mirror))
    error_message = "The mirror is an http(s) URL."
  }
}

variable "arch-package-mirrors" {
  type        = list(string)
  default     = ["https://mirror.hetzner.com/archlinux/$repo/os/$arch", "https://geo.mirror.pkgbuild.com/$repo/os/$arch"]
  description = "Package mirrors in the order pacman tries them, for pacstrap and the image's /etc/pacman.d/mirrorlist ($repo and $arch as pacman expands them). Hetzner's public mirror first (mirror.hetzner.de is its legacy host)."
  validation {
    condition     = length(var.arch-package-mirrors) > 0 && alltrue([for m in var.arch-package-mirrors : can(regex("^https?://[^ ]*[$]repo[^ ]*[$]arch[^ ]*$", m))])
    error_message = "The package mirrors are http(s) URLs with $repo and $arch in them and no spaces."
  }
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
  description = "More packages to pacstrap, e.g. [\"vim\", \"htop\"]."
  validation {
    condition     = alltrue([for p in var.extra-packages : can(regex("^[a-z0-9@._+-]+$", p))])
    error_message = "Package names are lower-case pacman package names."
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

variable "snapshot-prefix" {
  type        = string
  default     = "archlinux"
  description = "Snapshot names are <prefix>-<release>-<build time>."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.snapshot-prefix))
    error_message = "The prefix uses lower-case letters, digits and dashes."
  }
}

variable "dist-dir" {
  type        = string
  default     = ""
  description = "The staged tree of `hcloud-image dist` (empty: target/dist/x86_64 of this checkout)."
}

locals {
  dist-dir   = var.dist-dir != "" ? var.dist-dir : "${path.root}/../target/dist/x86_64"
  agents     = jsondecode(file("${local.dist-dir}/usr/share/hcloud-agents/manifest.json"))
  build-time = formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  build-id   = uuidv4()
  labels = {
    "os-flavor"      = "archlinux"
    "arch"           = "x86_64"
    "distro-release" = var.arch-image
    "build-id"       = local.build-id
    "build-time"     = local.build-time
    "agents-version" = local.agents.label
  }
  snapshot-name = "${var.snapshot-prefix}-${var.arch-image}-${local.build-time}"
}

source "hcloud" "archlinux" {
  token               = var.hcloud-token
  location            = var.location
  server_type         = var.server-type
  upgrade_server_type = var.upgrade-server-type == "" ? null : var.upgrade-server-type
  image               = var.base-image
  rescue              = "linux64"
  ssh_username        = "root"
  server_name         = "packer-archlinux-${local.build-time}"
  server_labels       = { "packer-build-id" = local.build-id }
  ssh_keys_labels     = { "packer-build-id" = local.build-id }
  snapshot_name       = local.snapshot-name
  snapshot_labels     = local.labels
}

build {
  sources = ["source.hcloud.archlinux"]

  provisioner "shell" {
    inline = ["mkdir -p /root/hcloud/scripts /root/hcloud/files /root/hcloud/keys /root/hcloud/dist /root/hcloud/pkg/archlinux /root/hcloud/pkg/lib"]
  }
  provisioner "file" {
    source      = "${path.root}/scripts/"
    destination = "/root/hcloud/scripts/"
  }
  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/root/hcloud/files/"
  }
  provisioner "file" {
    source      = "${path.root}/keys/archlinux-release.asc"
    destination = "/root/hcloud/keys/archlinux-release.asc"
  }
  provisioner "file" {
    source      = "${local.dist-dir}/"
    destination = "/root/hcloud/dist/"
  }
  # The Arch package split (PKGBUILD, tree-packages) and what it reads.
  provisioner "file" {
    source      = "${path.root}/../pkg/archlinux/"
    destination = "/root/hcloud/pkg/archlinux/"
  }
  provisioner "file" {
    source      = "${path.root}/../pkg/lib/"
    destination = "/root/hcloud/pkg/lib/"
  }

  # GPT with BIOS boot partition, ESP and a labelled root file system, mounted on /mnt.
  provisioner "shell" {
    environment_vars = ["ROOT_LABEL=archlinux", "ARCH=x86_64"]
    inline           = ["bash /root/hcloud/scripts/disk.sh ${var.disk} /mnt"]
  }

  # Verified bootstrap, pacstrap, configuration, GRUB for BIOS and UEFI, and the agents as
  # packages pacman owns (made from the staged tree by pkg/archlinux/tree-packages).
  provisioner "shell" {
    environment_vars = [
      "ARCH_RELEASE=${var.arch-image}",
      "ARCH_ISO_MIRROR=${var.arch-iso-mirror}",
      "ARCH_PACKAGE_MIRRORS=${join(" ", var.arch-package-mirrors)}",
      "EXTRA_PACKAGES=${join(" ", var.extra-packages)}",
      "LOCALE=${var.locale}",
      "KEYMAP=${var.keymap}",
      "TIMEZONE=${var.timezone}",
      "SWAP_SIZE_MIB=${var.swap-size-mib}",
      "ROOT_LABEL=archlinux",
      "ARCH=x86_64",
    ]
    inline = ["bash /root/hcloud/scripts/archlinux.sh /mnt ${var.disk}"]
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
