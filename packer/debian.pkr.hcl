# Debian snapshot for Hetzner Cloud with the hcloud agents (no cloud-init), for x86_64 and (CAX)
# aarch64.
#
#   hcloud-image dist [--arch aarch64]           # stage the agents (target/dist/<arch>)
#   packer init packer/debian.pkr.hcl
#   HCLOUD_TOKEN=... packer build [-var arch=aarch64] [-var debian-release=trixie] packer/debian.pkr.hcl
#
# or `hcloud-image build debian [--arch aarch64]`. The build server boots the rescue system; the
# disk is partitioned there, Debian is debootstrapped from the mirror (the Release signature
# checked against Debian's archive keyring) with the packages of files/debian/packages.txt, the
# agents are installed from the staged tree, and the snapshot is taken after cleaning everything
# per-server out of it. See docs/images.md.

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

variable "debian-release" {
  type        = string
  default     = "trixie"
  description = "Debian release to install, by codename (trixie, forky, sid); also the distro-release label."
  validation {
    condition     = can(regex("^[a-z]+$", var.debian-release))
    error_message = "The release is a Debian codename in lower case such as trixie."
  }
}

variable "debian-mirror" {
  type        = string
  default     = "http://deb.debian.org/debian"
  description = "Mirror debootstrap installs from (http is fine: the Release file's signature is checked against Debian's archive keyring in the rescue system)."
  validation {
    condition     = can(regex("^https?://[^ ]+$", var.debian-mirror))
    error_message = "The mirror is an http(s) URL without spaces."
  }
}

variable "debian-keyring" {
  type        = string
  default     = ""
  description = "An ASCII-armored public key file on this machine (gpg --armor --export) that the mirror's Release signature is checked against, for a mirror signed with your own key. Empty: Debian's archive keyring in the rescue system."
}

variable "debian-apt-mirror" {
  type        = string
  default     = ""
  description = "Mirror the image's apt sources name (/etc/apt/sources.list.d/debian.sources), e.g. https://mirror.hetzner.com/debian/packages. Empty: debian-mirror."
  validation {
    condition     = var.debian-apt-mirror == "" || can(regex("^https?://[^ ]+$", var.debian-apt-mirror))
    error_message = "The apt mirror is empty or an http(s) URL without spaces."
  }
}

variable "debian-security-mirror" {
  type        = string
  default     = "http://deb.debian.org/debian-security"
  description = "Security mirror in the image's apt sources (<release>-security; none for sid). Empty: no security source."
  validation {
    condition     = var.debian-security-mirror == "" || can(regex("^https?://[^ ]+$", var.debian-security-mirror))
    error_message = "The security mirror is empty or an http(s) URL without spaces."
  }
}

variable "locale" {
  type        = string
  default     = "C.UTF-8"
  description = "System locale (LANG), e.g. C.UTF-8 (built in) or en_US.UTF-8 (adds the locales package)."
  validation {
    condition     = can(regex("^[A-Za-z_]+([.][A-Za-z0-9-]+)?(@[a-z]+)?$", var.locale))
    error_message = "The locale looks like en_US.UTF-8 or C.UTF-8."
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
  description = "More packages from main for debootstrap to install (with their dependencies, not their recommendations), e.g. [\"vim\", \"htop\"]."
  validation {
    condition     = alltrue([for p in var.extra-packages : can(regex("^[a-z0-9][a-z0-9+.-]+$", p))])
    error_message = "Package names are Debian package names such as vim or python3-requests."
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
  default     = "debian"
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
  dist-dir    = var.dist-dir != "" ? var.dist-dir : "${path.root}/../target/dist/${var.arch}"
  agents      = jsondecode(file("${local.dist-dir}/usr/share/hcloud-agents/manifest.json"))
  server-type = var.server-type != "" ? var.server-type : (var.arch == "aarch64" ? "cax11" : "cx23")
  # What only a combination of variables shows, checked when packer starts, before any server
  # exists (a validation block sees one variable only): file() of a path that cannot exist is
  # how the template stops with a message. substr, not can(regex()): packer 1.6.6, which the
  # offline checks run, evaluates can() to false here.
  checks = [
    (var.arch == "aarch64") == (substr(local.server-type, 0, 3) == "cax") ? "" : file("ERROR: server type ${local.server-type} is not for ${var.arch} (aarch64: cax*; x86_64: cx*, cpx*, ccx*)"),
    var.upgrade-server-type == "" || (var.arch == "aarch64") == (substr(var.upgrade-server-type, 0, 3) == "cax") ? "" : file("ERROR: upgrade server type ${var.upgrade-server-type} is not for ${var.arch}"),
  ]
  apt-mirror = var.debian-apt-mirror != "" ? var.debian-apt-mirror : var.debian-mirror
  # Handed to debian.sh in its environment (a few hundred bytes for a key or two).
  keyring-base64 = var.debian-keyring == "" ? "" : base64encode(file(var.debian-keyring))
  build-time     = formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  build-id       = uuidv4()
  labels = {
    "os-flavor"      = "debian"
    "arch"           = var.arch
    "distro-release" = var.debian-release
    "build-id"       = local.build-id
    "build-time"     = local.build-time
    "agents-version" = local.agents.label
  }
  snapshot-name = "${var.snapshot-prefix}-${var.debian-release}-${var.arch}-${local.build-time}"
}

source "hcloud" "debian" {
  token               = var.hcloud-token
  location            = var.location
  server_type         = local.server-type
  upgrade_server_type = var.upgrade-server-type == "" ? null : var.upgrade-server-type
  image               = var.base-image
  rescue              = "linux64"
  ssh_username        = "root"
  server_name         = "packer-debian-${replace(var.arch, "_", "-")}-${local.build-time}"
  server_labels       = { "packer-build-id" = local.build-id }
  ssh_keys_labels     = { "packer-build-id" = local.build-id }
  snapshot_name       = local.snapshot-name
  snapshot_labels     = local.labels
}

build {
  sources = ["source.hcloud.debian"]

  provisioner "shell" {
    inline = ["mkdir -p /root/hcloud/scripts /root/hcloud/files /root/hcloud/dist"]
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
    source      = "${local.dist-dir}/"
    destination = "/root/hcloud/dist/"
  }

  # GPT with BIOS boot partition, ESP and a labelled root file system, mounted on /mnt.
  provisioner "shell" {
    environment_vars = ["ROOT_LABEL=debian", "ARCH=${var.arch}"]
    inline           = ["bash /root/hcloud/scripts/disk.sh ${var.disk} /mnt"]
  }

  # Verified debootstrap, configuration in the chroot, initramfs and GRUB for BIOS and UEFI.
  provisioner "shell" {
    environment_vars = [
      "DEBIAN_RELEASE=${var.debian-release}",
      "DEBIAN_MIRROR=${var.debian-mirror}",
      "DEBIAN_KEYRING_BASE64=${local.keyring-base64}",
      "DEBIAN_APT_MIRROR=${local.apt-mirror}",
      "DEBIAN_SECURITY_MIRROR=${var.debian-security-mirror}",
      "EXTRA_PACKAGES=${join(" ", var.extra-packages)}",
      "LOCALE=${var.locale}",
      "TIMEZONE=${var.timezone}",
      "SWAP_SIZE_MIB=${var.swap-size-mib}",
      "ROOT_LABEL=debian",
      "ARCH=${var.arch}",
    ]
    inline = ["bash /root/hcloud/scripts/debian.sh /mnt ${var.disk}"]
  }

  # The agents and units from the staged tree, enabled through their presets.
  provisioner "shell" {
    inline = ["bash /root/hcloud/scripts/install-agents.sh /root/hcloud/dist /mnt"]
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
