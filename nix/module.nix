# NixOS module of the hcloud agents: a NixOS server on Hetzner Cloud that behaves like a native one
# (and like the Arch image): the same agents with the same unit files, a dynamic hostname,
# systemd-networkd with the generated files in /run/systemd/network, root's keys from the metadata,
# Hetzner's resolvers and time servers. Importing the module turns it on; every setting it makes is
# a default (lib.mkDefault) or has an enable option, so a configuration can override it.
#
# It also exports the metadata document as config.hcloud.* (same keys as
# /etc/hcloud-metadata.json), read at evaluation time when the file exists and evaluation may read
# it, and empty otherwise, so configurations that use the values always evaluate.
#
# Documentation: docs/nixos.md.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkDefault
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    types
    ;

  hcloudLib = import ./lib/hcloud.nix;
  cfg = config.services.hcloud;

  # The document as evaluation sees it (normalized: every key present).
  evalDocument = hcloudLib.normalize (hcloudLib.readDocument cfg.metadataFile);

  # config.hcloud as a document again, for the settings function.
  document = {
    inherit (config.hcloud)
      instance_id
      hostname
      region
      availability_zone
      ssh_keys
      ;
    network = removeAttrs config.hcloud.network [ "private" ] // {
      private = map (p: removeAttrs p [ "_module" ]) config.hcloud.network.private;
    };
  };
  settings = hcloudLib.settingsWith { inherit (cfg.network) privateDhcp; } document;

  nullOrStr =
    description: default:
    mkOption {
      type = types.nullOr types.str;
      inherit default description;
      defaultText = fromFile;
    };
  # What the manual shows for defaults read from the document.
  fromFile = lib.literalExpression "the value in services.hcloud.metadataFile, if evaluation can read it, else empty";

  plainStr =
    description:
    mkOption {
      type = types.nullOr types.str;
      default = null;
      inherit description;
    };
  privateNetworkOptions = {
    options = {
      ip = plainStr "The server's primary IP in this network.";
      alias_ips = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Extra IPs of the server in this network.";
      };
      interface_num = mkOption {
        type = types.nullOr types.int;
        default = null;
        description = "1-based order of the NIC.";
      };
      mac_address = plainStr "MAC (lower case) of the private NIC, 86:00:00:xx:xx:xx.";
      network_id = mkOption {
        type = types.nullOr types.int;
        default = null;
        description = "API network id.";
      };
      network_name = plainStr "API network name.";
      network = plainStr "The whole network range (CIDR), e.g. 10.0.0.0/16.";
      subnet = plainStr "The subnet (CIDR) the IP lies in.";
      gateway = plainStr "The network's gateway (first IP of the range).";
    };
  };

  # The agents: option name → unit.
  agents = {
    metadata = "hcloud-dl-metadata";
    userdata = "hcloud-dl-userdata";
    hostname = "hcloud-hostname";
    sshKeys = "hcloud-ssh-keys";
    network = "hcloud-network";
    volumes = "hcloud-volumes";
  };
  agentEnable =
    unit:
    mkOption {
      type = types.bool;
      default = true;
      description = "Whether to run ${unit}.service on every boot.";
    };

  # The files of systemd/, as the package installs them.
  ini = import ./lib/systemd-ini.nix;
  unitFiles = builtins.attrNames (builtins.readDir ../systemd);
  unitText = name: builtins.readFile (../systemd + "/${name}");

  # The udev rules of the enabled agents only (81-hcloud-network.rules belongs to network): a rule
  # starts its agent's units by itself, so a turned-off agent's rule is left out.
  ruleAgent =
    file:
    let
      m = builtins.match "([0-9]+-)?(.+)[.]rules" file;
    in
    if m == null then null else agentOf (builtins.elemAt m 1);
  enabledRules = builtins.filter (
    f:
    lib.hasSuffix ".rules" f
    && (
      let
        a = ruleAgent f;
      in
      a == null || cfg.${a}.enable
    )
  ) unitFiles;
  udevRules = pkgs.runCommand "hcloud-agents-udev-rules" { } (
    "mkdir -p $out/lib/udev/rules.d\n"
    + lib.concatMapStrings (
      f: "cp ${cfg.package}/lib/udev/rules.d/${f} $out/lib/udev/rules.d/${f}\n"
    ) enabledRules
  );

  # The image's low-priority fallback networks (systemd/*.network), installed from the package.
  fallbackNetworks = builtins.filter (n: lib.hasSuffix ".network" n) unitFiles;

  # NixOS ignores the [Install] sections of packaged units: each unit's WantedBy=/RequiredBy= is
  # read here and becomes wantedBy/requiredBy, when the agent the unit belongs to is enabled (the
  # agent whose name starts the unit's name: hcloud-network-refresh.path belongs to network,
  # hcloud-volumes@.service to volumes).
  unitKinds = {
    service = "services";
    path = "paths";
    timer = "timers";
    socket = "sockets";
    target = "targets";
  };
  splitUnit =
    file:
    let
      m = builtins.match "(.+)[.]([a-z]+)" file;
    in
    if m == null || !(unitKinds ? ${builtins.elemAt m 1}) then
      null
    else
      {
        name = builtins.head m;
        kind = unitKinds.${builtins.elemAt m 1};
      };
  agentOf =
    unitName:
    let
      owners = builtins.filter (
        a:
        unitName == agents.${a}
        || lib.hasPrefix "${agents.${a}}-" unitName
        || lib.hasPrefix "${agents.${a}}@" unitName
      ) (builtins.attrNames agents);
    in
    if owners == [ ] then null else builtins.head owners;
  unitEnabled =
    unitName:
    let
      a = agentOf unitName;
    in
    a == null || cfg.${a}.enable;
  installed = builtins.filter (u: u.wantedBy != [ ] || u.requiredBy != [ ]) (
    map (
      file:
      let
        sections = ini.parse (unitText file);
      in
      splitUnit file
      // {
        wantedBy = ini.values "Install" "WantedBy" sections;
        requiredBy = ini.values "Install" "RequiredBy" sections;
      }
    ) (builtins.filter (f: splitUnit f != null) unitFiles)
  );
  enableUnits = lib.mkMerge (
    map (
      u:
      {
        ${u.kind}.${u.name} = mkIf (unitEnabled u.name) (
          lib.optionalAttrs (u.wantedBy != [ ]) { inherit (u) wantedBy; }
          // lib.optionalAttrs (u.requiredBy != [ ]) { inherit (u) requiredBy; }
        );
      }
    ) installed
  );

  # --private-dhcp for every run of hcloud-network in the units (not the udev rule's
  # --queue-refresh, nor --clear-refresh-queue): ExecStart= replaced with the same commands.
  runsNetwork = line: builtins.match ".*/usr/bin/hcloud-network( .*)?" line != null;
  refreshOnly = line: builtins.match ".*--(queue-refresh|clear-refresh-queue).*" line != null;
  privateDhcpUnits = builtins.filter (u: builtins.any (l: runsNetwork l && !refreshOnly l) u.execStart) (
    map (
      file:
      splitUnit file
      // {
        execStart = ini.rawValues "Service" "ExecStart" (ini.parse (unitText file));
      }
    ) (builtins.filter (f: lib.hasSuffix ".service" f) unitFiles)
  );
  withPrivateDhcp =
    line:
    if builtins.match ".*/usr/bin/hcloud-[^ ]+( .*)?" line == null then
      throw "services.hcloud.network.privateDhcp: cannot rewrite '${line}' (not an hcloud agent)"
    else
      builtins.replaceStrings [ "/usr/bin/" ] [ "${cfg.package}/bin/" ] line
      + (if runsNetwork line && !refreshOnly line then " --private-dhcp" else "");

  # A network's sections (matchConfig, networkConfig, ...) key by key, lists (address, routes,
  # dns, ntp) whole.
  defaultPerKey = builtins.mapAttrs (
    _: v: if builtins.isAttrs v then builtins.mapAttrs (_: mkDefault) v else mkDefault v
  );

  firstBoot = cfg.firstBootRebuild;
  rebuildCommand = lib.concatStringsSep " " (
    [ "nixos-rebuild switch" ]
    ++ lib.optionals (firstBoot.flake != null) [
      "--flake ${lib.escapeShellArg firstBoot.flake}"
      "--impure"
    ]
    ++ map lib.escapeShellArg firstBoot.extraArgs
  );
in
{
  options.services.hcloud = {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether to run the hcloud agents (metadata, user data, hostname, root SSH keys, networks)
        and set up networkd, resolved, Hetzner's resolvers and time servers. On by default:
        importing the module is the opt-in.
      '';
    };
    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage <hcloud-agents>/nix/package.nix { }";
      description = "The hcloud agents: binaries, unit files and udev rules.";
    };
    metadataFile = mkOption {
      type = types.str;
      default = "/etc/hcloud-metadata.json";
      description = ''
        The metadata document hcloud-dl-metadata writes, read at evaluation time to fill
        config.hcloud.* (when evaluation may read it: not under pure flake evaluation).
      '';
    };
    metadata.enable = agentEnable agents.metadata;
    userdata.enable = agentEnable agents.userdata;
    hostname.enable = agentEnable agents.hostname;
    sshKeys.enable = agentEnable agents.sshKeys;
    network.enable = agentEnable agents.network;
    volumes.enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether to mount Hetzner Cloud Volumes attached with automount (hcloud-volumes, started
        by its udev rule). Off on NixOS: the agent records a volume in /etc/fstab, which NixOS
        generates from fileSystems, so the line would not survive the next activation. Declare
        volumes instead: fileSystems."/mnt/data" = { device =
        "/dev/disk/by-id/scsi-0HC_Volume_<id>"; fsType = "ext4"; options = [ "nofail" ]; };
      '';
    };
    network.privateDhcp = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Configure private networks by DHCPv4 instead of the static addresses and routes from
        the metadata (alias IPs stay static): hcloud-network --private-dhcp.
      '';
    };
    systemdImdsHandOver = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Boot with systemd.imds.import=0 systemd.imds.network=off, so that systemd's own IMDS
        client (systemd 261+, when installed) imports no credential (a key it imports would land
        outside the agents' managed block and outlive its removal in Hetzner) and brings up no
        network of its own; its Varlink API (systemd-imds) stays. Harmless where it is absent.
      '';
    };
    staticConfig.enable = mkEnableOption ''
      baking the metadata read at evaluation time into the configuration: networking.hostName
      and networking.domain, root's keys in users.users.root.openssh.authorizedKeys.keys, and
      the same networkd networks hcloud-network writes, as files in /etc/systemd/network
      (which take precedence over the agent's files of the same name in /run). Values change
      only with the next rebuild; the runtime agents keep running for what changes later
    '';
    firstBootRebuild = {
      enable = mkEnableOption ''
        a rebuild once per instance: after hcloud-dl-metadata has run on a new instance (a new
        server or a snapshot clone, told apart by the instance id), update the channel and run
        nixos-rebuild switch, so config.hcloud.* has the server's values. Not needed for the
        dynamic features, which the runtime agents cover
      '';
      updateChannel = mkOption {
        type = types.bool;
        default = true;
        description = "Run nix-channel --update before the rebuild (channel-based configurations).";
      };
      flake = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/nixos#myserver";
        description = ''
          Rebuild this flake (nixos-rebuild switch --flake FLAKE --impure: reading the metadata
          at evaluation time needs an impure evaluation) instead of the channel configuration.
        '';
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Extra arguments for nixos-rebuild switch.";
      };
    };
  };

  # The document, key for key (docs/metadata-document.md). Defaults come from the file; set them
  # yourself to pin values, e.g. hcloud = lib.importJSON ./hcloud-metadata.json;
  options.hcloud = {
    instance_id = mkOption {
      type = types.nullOr types.int;
      default = evalDocument.instance_id;
      defaultText = fromFile;
      description = "The server id (equals the DMI product_serial of the server).";
    };
    hostname = nullOrStr "The server name as set in the API (not necessarily an FQDN)." evalDocument.hostname;
    region = nullOrStr "Network zone, e.g. eu-central." evalDocument.region;
    availability_zone = nullOrStr "<location>-dc<N>, e.g. fsn1-dc14." evalDocument.availability_zone;
    ssh_keys = mkOption {
      type = types.listOf types.str;
      default = evalDocument.ssh_keys;
      defaultText = fromFile;
      description = "The project's SSH public keys.";
    };
    network = {
      mac_address = nullOrStr "MAC (lower case) of the public NIC." evalDocument.network.mac_address;
      ipv4_address = nullOrStr "Primary public IPv4." evalDocument.network.ipv4_address;
      ipv4_subnet = nullOrStr "<ipv4_address>/32." evalDocument.network.ipv4_subnet;
      ipv4_gateway = nullOrStr "172.31.1.1 when there is a public IPv4." evalDocument.network.ipv4_gateway;
      ipv6_address = nullOrStr "The static public IPv6 address, without prefix." evalDocument.network.ipv6_address;
      ipv6_subnet = nullOrStr "The public IPv6 address with its prefix, e.g. 2001:db8::1/64." evalDocument.network.ipv6_subnet;
      ipv6_gateway = nullOrStr "IPv6 gateway (fe80::1)." evalDocument.network.ipv6_gateway;
      nameservers = mkOption {
        type = types.listOf types.str;
        default = evalDocument.network.nameservers;
        defaultText = fromFile;
        description = "Every resolver named in the metadata, IPv4 first.";
      };
      private = mkOption {
        type = types.listOf (types.submodule privateNetworkOptions);
        # Only the keys declared here: a key a newer agent adds must not break evaluation.
        default = map (p: builtins.intersectAttrs hcloudLib.emptyPrivate p) evalDocument.network.private;
        defaultText = fromFile;
        description = "Attached private networks, sorted by interface_num.";
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      # The units, udev rules and binaries, as every other distribution gets them; enableUnits
      # turns their [Install] sections into wantedBy.
      systemd.packages = [ cfg.package ];
      services.udev.packages = [ udevRules ];
      environment.systemPackages = [ cfg.package ];

      # Dynamic hostname: set at runtime by hcloud-hostname (through hostnamed).
      networking.hostName = mkDefault (if cfg.staticConfig.enable then settings.hostName else "");

      # networkd with the agent's files in /run/systemd/network and the image's fallback.
      networking.useNetworkd = mkDefault true;
      # Above mkDefault (1000), below a plain definition (100): nixos-generate-config writes
      # `networking.useDHCP = lib.mkDefault true;` into hardware-configuration.nix, and two
      # defaults that differ are an evaluation error; true would also let NixOS'
      # 99-ethernet-default-dhcp take every NIC, private ones included. The user's own
      # networking.useDHCP = true still wins (mkForce would not let it).
      networking.useDHCP = lib.mkOverride 900 false;
      systemd.network.enable = mkDefault true;
      services.resolved.enable = mkDefault true;
      networking.nameservers = mkDefault (hcloudLib.hetzner.nameservers4 ++ hcloudLib.hetzner.nameservers6);
      networking.timeServers = mkDefault hcloudLib.hetzner.timeServers;
      environment.etc = lib.listToAttrs (
        map (
          name:
          lib.nameValuePair "systemd/network/${name}" {
            source = "${cfg.package}/lib/systemd/network/${name}";
          }
        ) fallbackNetworks
      );

      # Root logs in with the keys hcloud-ssh-keys writes to /root/.ssh/authorized_keys.
      services.openssh.enable = mkDefault true;
    }

    { systemd = enableUnits; }

    # Hetzner's "reset root password" runs chpasswd through the guest agent, which NixOS starts
    # without it on its PATH (nixpkgs #370546).
    (mkIf config.services.qemuGuest.enable {
      systemd.services.qemu-guest-agent.path = [ pkgs.shadow ];
    })

    (mkIf cfg.systemdImdsHandOver {
      boot.kernelParams = [
        "systemd.imds.import=0"
        "systemd.imds.network=off"
      ];
    })

    # NixOS writes /etc/hosts itself (a link into the store) and resolves the local hostname
    # through nss-myhostname: the step of hcloud-hostname that writes /etc leaves the file alone.
    (mkIf cfg.hostname.enable {
      systemd.services.hcloud-hostname.serviceConfig.ExecStartPost = [
        ""
        "+${cfg.package}/bin/hcloud-hostname --etc-only --no-etc-hosts"
      ];
    })

    (mkIf (cfg.network.enable && cfg.network.privateDhcp) {
      systemd.services = lib.listToAttrs (
        map (
          u: lib.nameValuePair u.name { serviceConfig.ExecStart = [ "" ] ++ map withPrivateDhcp u.execStart; }
        ) privateDhcpUnits
      );
    })

    (mkIf cfg.staticConfig.enable {
      networking.domain = mkIf (settings.domain != null) (mkDefault settings.domain);
      users.users.root.openssh.authorizedKeys.keys = settings.sshKeys;
      # Each key its own default: a user's definition of one key (networkConfig.DHCP, address)
      # replaces that key only; a default on the whole network would be replaced by any user
      # definition of it, leaving e.g. an empty [Match] that matches every link.
      systemd.network.networks = builtins.mapAttrs (_: defaultPerKey) settings.networks;
      warnings = map (p: "hcloud (metadata at evaluation time): ${p}") settings.problems;
    })

    (mkIf firstBoot.enable {
      systemd.services.hcloud-first-boot-rebuild = {
        description = "Rebuild NixOS once per Hetzner Cloud instance, with its metadata";
        wantedBy = [ "multi-user.target" ];
        wants = [
          "network-online.target"
          "hcloud-dl-metadata.service"
        ];
        # Without default dependencies multi-user.target does not wait for it: the server boots
        # and can be logged into while the rebuild runs.
        after = [
          "sysinit.target"
          "basic.target"
          "network-online.target"
          "hcloud-dl-metadata.service"
        ];
        conflicts = [ "shutdown.target" ];
        before = [ "shutdown.target" ];
        # It switches the system itself: a switch must neither restart nor stop it.
        restartIfChanged = false;
        unitConfig = {
          DefaultDependencies = false;
          X-StopOnRemoval = false;
          ConditionPathExists = cfg.metadataFile;
        };
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          StateDirectory = "hcloud";
        };
        environment =
          config.nix.envVars
          // lib.optionalAttrs (config.environment.sessionVariables ? NIX_PATH) {
            inherit (config.environment.sessionVariables) NIX_PATH;
          }
          // {
            HOME = "/root";
          };
        path = [
          pkgs.coreutils
          pkgs.jq
          config.nix.package.out
          config.system.build.nixos-rebuild
        ];
        script = ''
          set -euo pipefail
          doc=${lib.escapeShellArg cfg.metadataFile}
          stamp=/var/lib/hcloud/first-boot-rebuild
          id=$(jq -er '.instance_id' "$doc")
          serial=$(tr -d '[:space:]' </sys/class/dmi/id/product_serial 2>/dev/null || true)
          if [ -n "$serial" ] && [ "$serial" != "$id" ]; then
            echo "$doc belongs to instance $id, this server is $serial: not rebuilding" >&2
            exit 0
          fi
          if [ "$(cat "$stamp" 2>/dev/null || true)" = "$id" ]; then
            echo "already rebuilt for instance $id"
            exit 0
          fi
          ${lib.optionalString (firstBoot.flake == null && firstBoot.updateChannel) "nix-channel --update"}
          echo "rebuilding for instance $id: ${rebuildCommand}"
          ${rebuildCommand}
          echo "$id" >"$stamp.tmp"
          mv "$stamp.tmp" "$stamp"
        '';
      };
    })
  ]);
}
