# The NixOS configurations the checks evaluate, the same in both modes of ./eval.nix (offline:
# the real module system with the stand-ins; with a full nixpkgs: nixos/lib/eval-config.nix).
# Each scenario: { modules; checks = { config, pkgs }: [ { name; ok; } ]; }.
#   root:   the repository
#   images: { x86_64 = DIR; aarch64 = DIR; }, the image's /etc/nixos as packer/scripts/nixos-etc.sh
#           writes it, with hardware-configuration.nix (./hardware/<arch>.nix) beside it
{ root, images }:
let
  inherit (builtins)
    all
    attrNames
    elem
    filter
    fromJSON
    readFile
    ;
  module = root + "/nix/module.nix";
  # hardware-configuration.nix as nixos-generate-config --no-filesystems writes it in Hetzner's
  # rescue system, a KVM guest: the qemu-guest profile, no microcode (virtualised), the initrd
  # modules of a CX or CAX server's disk and USB (representative), the platform, and
  # `networking.useDHCP = lib.mkDefault true;`.
  hardware = arch: root + "/nix/tests/nixos/hardware/${arch}.nix";
  fixture = name: toString root + "/nix/tests/fixtures/${name}/document.json";
  noDocument = "/nonexistent/hcloud-metadata.json";
  docOf = name: fromJSON (readFile (fixture name));

  # A server configured as docs/nixos.md says: the generated hardware configuration, the
  # module, a root file system and a boot loader.
  server =
    arch: metadataFile: extra:
    [
      (hardware arch)
      module
      {
        fileSystems."/" = {
          device = "/dev/disk/by-label/nixos";
          fsType = "ext4";
        };
        boot.loader.grub.device = if arch == "x86_64" then "/dev/sda" else "nodev";
        boot.loader.grub.efiSupport = arch == "aarch64";
        boot.loader.grub.efiInstallAsRemovable = arch == "aarch64";
        system.stateVersion = "26.05";
        services.hcloud.metadataFile = metadataFile;
      }
    ]
    ++ extra;

  check = name: ok: { inherit name ok; };
  contains = needle: s: builtins.match ".*${needle}.*" s != null;
  networksOf = config: config.systemd.network.networks;

  # Every configuration: networkd and no scripted DHCP, also over the generated
  # `networking.useDHCP = lib.mkDefault true;`, so that NixOS' 99-ethernet-default-dhcp does not
  # take every NIC (private ones included); the agents' units are wanted.
  common =
    { config, ... }:
    [
      (check "networking.useDHCP is false over the generated mkDefault true" (
        config.networking.useDHCP == false
      ))
      (check "no 99-ethernet-default-dhcp network" (!(networksOf config ? "99-ethernet-default-dhcp")))
      (check "networkd and resolved" (
        config.networking.useNetworkd && config.systemd.network.enable && config.services.resolved.enable
      ))
      (check "the agents run at boot" (
        all (a: elem "multi-user.target" config.systemd.services.${a}.wantedBy) [
          "hcloud-dl-metadata"
          "hcloud-network"
          "hcloud-hostname"
          "hcloud-ssh-keys"
        ]
      ))
      (check "the image's fallback network is installed" (
        config.environment.etc ? "systemd/network/99-hcloud-fallback.network"
      ))
      (check "systemd-imds hands its jobs to the agents (no credential import, no early network)" (
        all (a: elem a config.boot.kernelParams) [
          "systemd.imds.import=0"
          "systemd.imds.network=off"
        ]
      ))
      (check "hcloud-hostname leaves NixOS' /etc/hosts alone" (
        elem "+${config.services.hcloud.package}/bin/hcloud-hostname --etc-only --no-etc-hosts"
          config.systemd.services.hcloud-hostname.serviceConfig.ExecStartPost
      ))
    ];
  # The public network hcloud-network writes for a document with a public IPv4.
  publicNetwork =
    config: mac:
    let
      n = (networksOf config)."10-hcloud-public";
    in
    [
      (check "10-hcloud-public matches the public NIC" (n.matchConfig.MACAddress == mac))
      (check "10-hcloud-public: DHCPv4 kept over a restart of networkd (KeepConfiguration=dynamic)" (
        n.networkConfig.KeepConfiguration == "dynamic"
      ))
    ];
  # The guest agent can run chpasswd for Hetzner's "reset root password".
  guestAgent =
    { config, pkgs }:
    [
      (check "qemu-guest-agent has chpasswd (pkgs.shadow) on its PATH" (
        config.services.qemuGuest.enable -> elem pkgs.shadow config.systemd.services.qemu-guest-agent.path
      ))
    ];

  image =
    arch: extra:
    [ (images.${arch} + "/configuration.nix") ] ++ extra;
  imageChecks =
    arch:
    { config, pkgs }:
    common { inherit config; }
    ++ guestAgent { inherit config pkgs; }
    ++ [
      (check "system.stateVersion is the release written at install time" (
        config.system.stateVersion == (fromJSON (readFile (images.${arch} + "/image-settings.json"))).stateVersion
      ))
      (check "the guest agent runs" config.services.qemuGuest.enable)
      (check "root file system by label" (config.fileSystems."/".device == "/dev/disk/by-label/nixos"))
      (check "the platform is ${arch}" (pkgs.stdenv.hostPlatform.parsed.cpu.name == arch))
    ];
in
{
  x86_64-no-document = {
    modules = server "x86_64" noDocument [ ];
    checks =
      { config, pkgs }:
      common { inherit config; }
      ++ [
        (check "no document: config.hcloud is empty" (config.hcloud.instance_id == null))
        (check "no document: the hostname stays dynamic" (config.networking.hostName == ""))
        (check "the platform is x86_64" pkgs.stdenv.hostPlatform.isx86_64)
      ];
  };
  aarch64-document = {
    modules = server "aarch64" (fixture "dual-stack") [ ];
    checks =
      { config, pkgs }:
      common { inherit config; }
      ++ [
        (check "config.hcloud has the document's values" (config.hcloud.instance_id == (docOf "dual-stack").instance_id))
        (check "without staticConfig no networks are baked in" (
          filter (n: contains "hcloud" n) (attrNames (networksOf config)) == [ ]
        ))
        (check "the platform is aarch64" pkgs.stdenv.hostPlatform.isAarch64)
      ];
  };
  x86_64-static-config = {
    modules = server "x86_64" (fixture "dual-stack") [ { services.hcloud.staticConfig.enable = true; } ];
    checks =
      { config, ... }:
      common { inherit config; }
      ++ publicNetwork config (docOf "dual-stack").network.mac_address
      ++ [
        (check "staticConfig: the hostname from the document" (config.networking.hostName == "app-7"))
        (check "staticConfig: root's keys" (
          config.users.users.root.openssh.authorizedKeys.keys == (docOf "dual-stack").ssh_keys
        ))
        (check "staticConfig: no warnings for a good document" (config.warnings == [ ]))
      ];
  };
  aarch64-static-config-private-dhcp = {
    modules = server "aarch64" (fixture "three-private-networks") [
      {
        services.hcloud.staticConfig.enable = true;
        services.hcloud.network.privateDhcp = true;
      }
    ];
    checks =
      { config, ... }:
      common { inherit config; }
      ++ publicNetwork config (docOf "three-private-networks").network.mac_address
      ++ [
        (check "privateDhcp: DHCPv4 on a private NIC" (
          (networksOf config)."10-hcloud-private-860000000003".networkConfig.DHCP == "ipv4"
        ))
        (check "privateDhcp: hcloud-network runs with --private-dhcp" (
          elem "${config.services.hcloud.package}/bin/hcloud-network --private-dhcp"
            config.systemd.services.hcloud-network.serviceConfig.ExecStart
        ))
      ];
  };
  x86_64-first-boot-channel = {
    modules = server "x86_64" (fixture "dual-stack") [ { services.hcloud.firstBootRebuild.enable = true; } ];
    checks =
      { config, ... }:
      common { inherit config; }
      ++ [
        (check "first boot: channel update, then nixos-rebuild switch" (
          contains "nix-channel --update\n.*nixos-rebuild switch" config.systemd.services.hcloud-first-boot-rebuild.script
        ))
        (check "first boot: NIX_PATH of the channel configuration" (
          let
            p = config.systemd.services.hcloud-first-boot-rebuild.environment.NIX_PATH;
          in
          p == config.environment.sessionVariables.NIX_PATH && contains "nixpkgs=" p
        ))
      ];
  };
  aarch64-first-boot-flake = {
    modules = server "aarch64" (fixture "dual-stack") [
      {
        services.hcloud.firstBootRebuild = {
          enable = true;
          flake = "/etc/nixos#web";
        };
      }
    ];
    checks =
      { config, ... }:
      common { inherit config; }
      ++ [
        (check "first boot with a flake: --flake and --impure, no channel" (
          let
            s = config.systemd.services.hcloud-first-boot-rebuild.script;
          in
          contains "nixos-rebuild switch --flake '/etc/nixos#web' --impure" s && !(contains "nix-channel" s)
        ))
      ];
  };
  x86_64-override-one-network-key = {
    modules = server "x86_64" (fixture "dual-stack") [
      {
        services.hcloud.staticConfig.enable = true;
        systemd.network.networks."10-hcloud-public".networkConfig.KeepConfiguration = "static";
        systemd.network.networks."10-hcloud-private-8600005e6f70".linkConfig.MTUBytes = "1400";
      }
    ];
    checks =
      { config, ... }:
      let
        public = (networksOf config)."10-hcloud-public";
        private = (networksOf config)."10-hcloud-private-8600005e6f70";
      in
      common { inherit config; }
      ++ [
        (check "override: the overridden key has the user's value" (
          (public.networkConfig.KeepConfiguration or null) == "static"
          && (private.linkConfig.MTUBytes or null) == "1400"
        ))
        (check "override: [Match] is kept (the network does not match every link)" (
          (public.matchConfig.MACAddress or null) == (docOf "dual-stack").network.mac_address
          && private.matchConfig ? MACAddress
        ))
        (check "override: the other keys of the network are kept" (
          (public.networkConfig.DHCP or null) == "ipv4"
          && public.address != [ ]
          && public.routes != [ ]
          && private.address != [ ]
          && (private.networkConfig.DHCP or null) == "no"
        ))
      ];
  };
  # The module's useDHCP is above the generated default, not forced: the user's own wins.
  x86_64-user-sets-use-dhcp = {
    modules = server "x86_64" noDocument [ { networking.useDHCP = true; } ];
    checks =
      { config, ... }:
      [
        (check "the user's networking.useDHCP = true wins over the module" config.networking.useDHCP)
        (check "and NixOS then adds its DHCP network" (networksOf config ? "99-ethernet-default-dhcp"))
      ];
  };
  example = {
    modules = [
      module
      (root + "/nix/example/configuration.nix")
      { nixpkgs.hostPlatform = "x86_64-linux"; }
    ];
    checks =
      { config, ... }:
      [
        (check "example: networkd, no scripted DHCP" (config.networking.useNetworkd && !config.networking.useDHCP))
        (check "example: no motd without a document at evaluation time" (
          config.hcloud.instance_id == null -> config.users.motd == null
        ))
      ];
  };
  image-x86_64 = {
    modules = image "x86_64" [ ];
    checks = imageChecks "x86_64";
  };
  image-aarch64 = {
    modules = image "aarch64" [ ];
    checks = imageChecks "aarch64";
  };
  image-x86_64-document-static-config = {
    modules = image "x86_64" [
      {
        services.hcloud.metadataFile = fixture "ipv4-only";
        services.hcloud.staticConfig.enable = true;
      }
    ];
    checks =
      { config, pkgs }:
      imageChecks "x86_64" { inherit config pkgs; } ++ publicNetwork config (docOf "ipv4-only").network.mac_address;
  };
}
