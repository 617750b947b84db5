# Typed stand-ins for the NixOS options that nix/module.nix, packer/nixos/hcloud-image.nix,
# nix/example/configuration.nix and a generated hardware-configuration.nix set or read, for
# evaluating them with the real module system (lib.evalModules of nixpkgs' lib) without the
# whole of nixpkgs. Each option has the type current nixpkgs (26.11) declares for it; for
# systemd.network.networks the sections carry the value checks nixpkgs' networkd module applies
# to the keys the module emits (nixos/lib/systemd-network-units.nix, systemd-lib.nix).
#
# Where nixpkgs has more (options nobody here sets, keys of a section nobody here writes), the
# stand-in has less: a key not listed in a section is refused, as nixpkgs refuses unknown keys.
# The behaviour the hcloud module depends on is modelled in ./nixos-behaviour.nix.
{ lib, ... }:
let
  inherit (lib) mkOption types;

  opt =
    type: default:
    mkOption {
      inherit type default;
    };
  bool = default: opt types.bool default;
  strList = opt (types.listOf types.str) [ ];

  # nixos/lib/systemd-lib.nix: a unit setting; definitions that are lists are concatenated,
  # others must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if builtins.any (def: builtins.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  # nixos/lib/systemd-lib.nix's checkUnitConfig: each check gives an error or nothing; any
  # error is traced and the definition does not fit the section's type.
  boolValues = [
    true
    false
    "yes"
    "no"
  ];
  # As there, the check sees each definition before merging: a value under mkOverride (mkDefault)
  # or mkIf is checked as its content.
  checkSection =
    group: fields: checks: defs:
    let
      attrs = builtins.mapAttrs (
        _: v: if builtins.elem (v._type or "") [ "override" "if" ] then v.content else v
      ) defs;
      unknown = builtins.filter (k: !builtins.elem k fields) (builtins.attrNames attrs);
      errors =
        map (k: "systemd: ${group}: `${k}' is not a ${group} setting the stand-in knows") unknown
        ++ lib.concatMap (c: c attrs) checks;
    in
    if errors == [ ] then true else builtins.trace (lib.concatStringsSep "\n" errors) false;
  oneOf =
    name: values: attrs:
    lib.optional (
      attrs ? ${name} && !builtins.elem attrs.${name} values
    ) "systemd: the value `${toString attrs.${name}}' of ${name} is not one of ${builtins.toJSON values}";
  byteFormat =
    name: attrs:
    lib.optional (
      attrs ? ${name} && builtins.match "[0-9]+[KMG]?" (toString attrs.${name}) == null
    ) "systemd: ${name} `${toString attrs.${name}}' must be in byte format [0-9]+[KMG]";
  section =
    group: fields: checks:
    opt (types.addCheck (types.attrsOf unitOption) (checkSection group fields checks)) { };

  networkOptions = {
    options = {
      enable = bool true;
      matchConfig = section "[Match]" [ "MACAddress" "Name" "Type" "OriginalName" "Driver" "Kind" ] [ ];
      linkConfig = section "[Link]" [ "MTUBytes" "MACAddress" "RequiredForOnline" "Unmanaged" ] [
        (byteFormat "MTUBytes")
      ];
      # nixpkgs since #395621 (systemd 257): KeepConfiguration takes the new names only.
      networkConfig =
        section "[Network]"
          [
            "DHCP"
            "LinkLocalAddressing"
            "IPv6AcceptRA"
            "KeepConfiguration"
            "IPv4LLRoute"
            "DefaultRouteOnDevice"
            "DNS"
            "NTP"
            "Domains"
            "Address"
            "Gateway"
          ]
          [
            (oneOf "DHCP" (boolValues ++ [ "ipv4" "ipv6" ]))
            (oneOf "LinkLocalAddressing" (boolValues ++ [ "ipv4" "ipv6" ]))
            (oneOf "IPv6AcceptRA" boolValues)
            (oneOf "KeepConfiguration" (boolValues ++ [ "static" "dynamic-on-stop" "dynamic" ]))
          ];
      dhcpV4Config =
        section "[DHCPv4]" [ "UseDNS" "UseNTP" "UseHostname" "UseDomains" "UseRoutes" "RouteMetric" ]
          [
            (oneOf "UseDNS" boolValues)
            (oneOf "UseNTP" boolValues)
            (oneOf "UseHostname" boolValues)
            (oneOf "UseDomains" (boolValues ++ [ "route" ]))
            (oneOf "UseRoutes" boolValues)
          ];
      address = strList;
      gateway = strList;
      dns = strList;
      ntp = strList;
      domains = strList;
      routes = opt (types.listOf (
        types.addCheck (types.attrsOf unitOption) (
          checkSection "[Route]"
            [ "Destination" "Gateway" "GatewayOnLink" "Scope" "PreferredSource" "Metric" "Table" ]
            [
              (oneOf "GatewayOnLink" boolValues)
              (oneOf "Scope" [ "global" "site" "link" "host" "nowhere" ])
            ]
        )
      )) [ ];
    };
  };

  # nixos/lib/systemd-unit-options.nix, the parts every kind of unit has.
  commonUnit = {
    options = {
      enable = bool true;
      description = opt types.singleLineStr "";
      wantedBy = strList;
      requiredBy = strList;
      wants = strList;
      requires = strList;
      after = strList;
      before = strList;
      conflicts = strList;
      unitConfig = opt (types.attrsOf unitOption) { };
      restartIfChanged = bool true;
    };
  };
  serviceUnit = {
    imports = [ commonUnit ];
    options = {
      serviceConfig = opt (types.attrsOf unitOption) { };
      environment = opt (types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]))) { };
      path = opt (types.listOf (types.oneOf [ types.package types.str ])) [ ];
      script = opt types.lines "";
    };
  };
  units = kind: opt (types.attrsOf (types.submodule kind)) { };
in
{
  options = {
    # nixos/modules/misc/assertions.nix
    warnings = opt (types.listOf types.str) [ ];
    assertions = opt (types.listOf types.unspecified) [ ];

    networking = {
      hostName = opt (types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$") "nixos";
      domain = opt (types.nullOr types.str) null;
      useNetworkd = bool false;
      useDHCP = bool true;
      nameservers = strList;
      timeServers = opt (types.listOf types.str) [
        "0.nixos.pool.ntp.org"
        "1.nixos.pool.ntp.org"
        "2.nixos.pool.ntp.org"
        "3.nixos.pool.ntp.org"
      ];
    };

    systemd = {
      packages = opt (types.listOf types.package) [ ];
      services = units serviceUnit;
      paths = units commonUnit;
      timers = units commonUnit;
      sockets = units commonUnit;
      targets = units commonUnit;
      network = {
        enable = bool false;
        networks = opt (types.attrsOf (types.submodule networkOptions)) { };
      };
    };

    services = {
      udev.packages = opt (types.listOf types.path) [ ];
      resolved.enable = bool false;
      openssh = {
        enable = bool false;
        settings = opt (types.submodule {
          freeformType = types.attrsOf types.anything;
          options.PermitRootLogin = opt (types.enum [
            "yes"
            "without-password"
            "prohibit-password"
            "forced-commands-only"
            "no"
          ]) "prohibit-password";
        }) { };
      };
      qemuGuest.enable = bool false;
    };

    environment = {
      systemPackages = opt (types.listOf types.package) [ ];
      etc = opt (types.attrsOf (types.submodule {
        options = {
          enable = bool true;
          source = opt types.path null;
          text = opt (types.nullOr types.lines) null;
          mode = opt types.str "symlink";
        };
      })) { };
      # nixos/modules/config/shells-environment.nix (environment.variables, whose type and apply
      # sessionVariables shares): lists are joined with ":".
      sessionVariables = mkOption {
        type = types.attrsOf (types.oneOf [
          (types.listOf (types.oneOf [ types.int types.str types.path ]))
          types.int
          types.str
          types.path
        ]);
        default = { };
        apply = builtins.mapAttrs (
          _: v: if builtins.isList v then lib.concatMapStringsSep ":" toString v else toString v
        );
      };
    };

    users = {
      motd = opt (types.nullOr types.lines) null;
      users = opt (types.attrsOf (types.submodule {
        options.openssh.authorizedKeys.keys = opt (types.listOf types.singleLineStr) [ ];
      })) { };
    };

    nix = {
      envVars = opt (types.attrsOf types.str) { };
      package = opt types.package null;
    };

    boot = {
      loader = {
        grub = {
          enable = bool true;
          device = opt types.str "";
          efiSupport = bool false;
          efiInstallAsRemovable = bool false;
        };
        efi.efiSysMountPoint = opt types.str "/boot";
        timeout = opt (types.nullOr types.int) 5;
      };
      growPartition = bool false;
      kernelParams = opt (types.listOf (types.strMatching ''([^"[:space:]]|"[^"]*")+'')) [ ];
      kernelModules = strList;
      extraModulePackages = opt (types.listOf types.package) [ ];
      initrd = {
        kernelModules = strList;
        availableKernelModules = strList;
      };
    };

    fileSystems = opt (types.attrsOf (types.submodule {
      options = {
        device = opt (types.nullOr types.nonEmptyStr) null;
        fsType = opt types.nonEmptyStr "auto";
        autoResize = bool false;
        options = opt (types.nonEmptyListOf types.nonEmptyStr) [ "defaults" ];
      };
    })) { };
    swapDevices = opt (types.listOf (types.submodule {
      options = {
        device = opt types.str null;
        size = opt (types.nullOr types.int) null;
      };
    })) [ ];

    i18n.defaultLocale = opt types.str "en_US.UTF-8";
    console.keyMap = opt (types.either types.str types.path) "us";
    time.timeZone = opt (types.nullOr (types.addCheck types.str (s: builtins.match ".*[[:space:]].*" s == null))) null;

    nixpkgs.hostPlatform = mkOption {
      type = types.either types.str types.attrs;
      apply = lib.systems.elaborate;
    };

    system = {
      stateVersion = opt types.str lib.trivial.release;
      build = opt (types.lazyAttrsOf types.unspecified) { };
    };
  };
}
