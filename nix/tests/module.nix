# nix/module.nix evaluated against the stub lib (no nixpkgs): the list of failed assertions.
#   nix-instantiate --eval --strict --json nix/tests/module.nix --argstr root "$PWD" -A failed   → []
#   ... -A count                                                                                 → checks run
{ root }:
let
  inherit (builtins)
    attrNames
    concatLists
    elem
    filter
    fromJSON
    length
    map
    match
    readDir
    readFile
    sort
    ;
  lib = import ./stub-lib.nix;
  hcloud = import ../lib/hcloud.nix;
  module = import ../module.nix;

  stubPackage = {
    outPath = "/nix/store/00000000000000000000000000000000-hcloud-agents";
    name = "hcloud-agents";
  };
  pkgs = {
    callPackage = _: _: stubPackage;
    runCommand = name: env: script: {
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
      inherit name script;
    };
    coreutils = "/nix/store/stub-coreutils";
    jq = "/nix/store/stub-jq";
    shadow = "/nix/store/stub-shadow";
  };
  # What the module reads from other NixOS modules.
  nixos = {
    nix = {
      envVars = { };
      package.out = "/nix/store/stub-nix";
    };
    environment.sessionVariables.NIX_PATH = "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos";
    system.build.nixos-rebuild = "/nix/store/stub-nixos-rebuild";
    services.qemuGuest.enable = false;
  };

  # Deep update, lists and option values replaced.
  update =
    a: b:
    a
    // builtins.mapAttrs (
      k: v:
      if a ? ${k} && builtins.isAttrs a.${k} && builtins.isAttrs v && !(v ? outPath) then update a.${k} v else v
    ) b;

  # The module with the user's definitions `user`: { config; out; options; }.
  eval =
    user:
    let
      result = module {
        inherit config lib pkgs;
      };
      config = update (update (lib.defaultsOf result.options) nixos) user;
    in
    {
      inherit config;
      inherit (result) options;
      out =
        let
          r = lib.resolve result.config;
        in
        if (r._type or null) == "absent" then { } else r;
    };
  withFile = file: user: eval (update { services.hcloud.metadataFile = file; } user);

  fixturesDir = root + "/nix/tests/fixtures";
  fixtures = attrNames (readDir fixturesDir);
  docPath = name: "${fixturesDir}/${name}/document.json";
  docOf = name: fromJSON (readFile (docPath name));

  # config.hcloud as a document.
  asDocument =
    h:
    h
    // {
      network = h.network // {
        private = map (p: removeAttrs p [ "_module" ]) h.network.private;
      };
    };

  check = name: ok: { inherit name ok; };
  mkOverrideOf = priority: content: {
    _type = "override";
    inherit priority content;
  };
  mkDefaultOf = mkOverrideOf 1000;
  # A network as the module defines it: every key of a section, and every list, a default.
  perKeyDefaults = builtins.mapAttrs (
    _: v: if builtins.isAttrs v then builtins.mapAttrs (_: mkDefaultOf) v else mkDefaultOf v
  );

  agents = [
    "hcloud-dl-metadata"
    "hcloud-dl-userdata"
    "hcloud-hostname"
    "hcloud-ssh-keys"
    "hcloud-network"
  ];

  perFixture = concatLists (
    map (
      name:
      let
        e = withFile (docPath name) { };
      in
      [
        (check "${name}: config.hcloud is the document, key for key" (
          asDocument e.config.hcloud == docOf name
        ))
        (check "${name}: every config.hcloud default fits its type" (
          lib.typeErrors "hcloud" e.options.hcloud e.config.hcloud == [ ]
        ))
        (check "${name}: hostname stays dynamic without staticConfig" (
          e.out.networking.hostName == mkDefaultOf ""
        ))
      ]
    ) fixtures
  );

  missing = withFile "/nonexistent/hcloud-metadata.json" { };
  plain = withFile (docPath "dual-stack") { };
  static = withFile (docPath "dual-stack") { services.hcloud.staticConfig.enable = true; };
  staticSettings = hcloud.settings (docOf "dual-stack");
  noHostname = withFile (docPath "dual-stack") { services.hcloud.hostname.enable = false; };
  off = withFile (docPath "dual-stack") { services.hcloud.enable = false; };
  firstBoot = withFile (docPath "dual-stack") { services.hcloud.firstBootRebuild.enable = true; };
  firstBootFlake = withFile (docPath "dual-stack") {
    services.hcloud.firstBootRebuild = {
      enable = true;
      flake = "/etc/nixos#web";
    };
  };
  privateDhcp = withFile (docPath "three-private-networks") {
    services.hcloud.network.privateDhcp = true;
    services.hcloud.staticConfig.enable = true;
  };
  hostile = withFile "${root}/nix/tests/cases/invalid-network-entries/document.json" {
    services.hcloud.staticConfig.enable = true;
  };
  fqdn = withFile "${root}/nix/tests/cases/older-document-hostile-input/document.json" {
    services.hcloud.staticConfig.enable = true;
  };

  newer = withFile "${root}/nix/tests/cases/newer-document/document.json" { };
  withVolumes = withFile (docPath "dual-stack") { services.hcloud.volumes.enable = true; };
  guestAgent = withFile (docPath "dual-stack") { services.qemuGuest.enable = true; };
  ruleFiles = filter (f: match ".+[.]rules" f != null) unitFiles;
  # The rule files the module's udev package copies from the agents' package.
  rulesCopied =
    e:
    let
      u = e.out.services.udev.packages;
      copies = filter builtins.isList (
        builtins.split "cp ${stubPackage.outPath}/lib/udev/rules.d/([^ ]+) " (builtins.head u).script
      );
    in
    if length u == 1 then sort (a: b: a < b) (map builtins.head copies) else [ "(not one package)" ];
  contains = needle: s: match ".*${needle}.*" s != null;
  # What systemd/ asks for, read independently of the module: unit → its WantedBy= items.
  kindOf = {
    service = "services";
    path = "paths";
    timer = "timers";
    socket = "sockets";
    target = "targets";
  };
  wantedByOf =
    file:
    concatLists (
      map (l: filter (w: builtins.isString w && w != "") (builtins.split " " (builtins.head l))) (
        filter builtins.isList (builtins.split "\nWantedBy=([^\n]*)" (readFile (root + "/systemd/${file}")))
      )
    );
  installedUnits = filter (u: u.wantedBy != [ ]) (
    map (
      f:
      let
        m = match "(.+)[.](service|path|timer|socket|target)" f;
      in
      {
        file = f;
        name = builtins.head m;
        kind = kindOf.${builtins.elemAt m 1};
        wantedBy = wantedByOf f;
      }
    ) (filter (f: match ".+[.](service|path|timer|socket|target)" f != null) (attrNames (readDir (root + "/systemd"))))
  );
  wants = e: u: (((e.out.systemd.${u.kind} or { }).${u.name} or { }).wantedBy or null) == u.wantedBy;
  noNetwork = withFile (docPath "dual-stack") { services.hcloud.network.enable = false; };
  execStartLines =
    file:
    map builtins.head (
      filter builtins.isList (builtins.split "\nExecStart=([^\n]*)" (readFile (root + "/systemd/${file}")))
    );
  rebuildScript = firstBoot.out.systemd.services.hcloud-first-boot-rebuild.script;
  rebuildFlakeScript = firstBootFlake.out.systemd.services.hcloud-first-boot-rebuild.script;
  unitFiles = attrNames (readDir (root + "/systemd"));

  checks = perFixture ++ [
    (check "no document: config.hcloud is the empty document" (
      asDocument missing.config.hcloud == hcloud.emptyDocument
    ))
    (check "no document: defaults fit their types" (
      lib.typeErrors "hcloud" missing.options.hcloud missing.config.hcloud == [ ]
    ))
    (check "no document: the module still enables every unit" (builtins.all (wants missing) installedUnits))
    (check "a newer document's extra keys are left out of config.hcloud, known keys kept" (
      asDocument newer.config.hcloud == docOf "dual-stack"
      && lib.typeErrors "hcloud" newer.options.hcloud newer.config.hcloud == [ ]
    ))
    (check "units come from the package" (plain.out.systemd.packages == [ stubPackage ]))
    (check "udev rules: the package's, for the enabled agents (not volumes: NixOS owns /etc/fstab)" (
      rulesCopied plain == filter (f: match ".*volumes.*" f == null) ruleFiles
      && ruleFiles != [ ]
      && rulesCopied withVolumes == ruleFiles
      && rulesCopied noNetwork == filter (f: match ".*network.*" f == null && match ".*volumes.*" f == null) ruleFiles
    ))
    (check "every unit of systemd/ with an [Install] section is enabled as it says" (
      installedUnits != [ ] && builtins.all (wants plain) installedUnits
    ))
    (check "every agent's service is started at boot" (
      builtins.all (
        a: elem "${a}.service" unitFiles -> plain.out.systemd.services.${a}.wantedBy == [ "multi-user.target" ]
      ) agents
    ))
    (check "turning the network agent off leaves its units (service, refresh path) off" (
      builtins.all (
        u: (match "hcloud-network.*" u.name != null) == !(wants noNetwork u)
      ) installedUnits
    ))
    (check "every agent's unit file exists in systemd/" (
      builtins.all (u: elem "${u}.service" unitFiles) agents
    ))
    (check "networkd, resolved, no scripted DHCP; all defaults, useDHCP above the generated mkDefault true" (
      plain.out.networking.useNetworkd == mkDefaultOf true
      && plain.out.networking.useDHCP == mkOverrideOf 900 false
      && plain.out.systemd.network.enable == mkDefaultOf true
      && plain.out.services.resolved.enable == mkDefaultOf true
    ))
    (check "Hetzner's resolvers and time servers as defaults" (
      plain.out.networking.nameservers == mkDefaultOf [
        "185.12.64.1"
        "185.12.64.2"
        "2a01:4ff:ff00::add:1"
        "2a01:4ff:ff00::add:2"
      ]
      && plain.out.networking.timeServers == mkDefaultOf [
        "ntp1.hetzner.de"
        "ntp2.hetzner.com"
        "ntp3.hetzner.net"
      ]
    ))
    (check "the image's fallback networks are installed from the package" (
      let
        wanted = filter (n: lib.hasSuffix ".network" n) unitFiles;
      in
      sort (a: b: a < b) (attrNames plain.out.environment.etc) == map (n: "systemd/network/${n}") wanted
      && builtins.all (
        n: plain.out.environment.etc."systemd/network/${n}".source == "${stubPackage.outPath}/lib/systemd/network/${n}"
      ) wanted
    ))
    (check "without staticConfig no networks, keys or domain are baked in" (
      !(plain.out.systemd ? network && plain.out.systemd.network ? networks)
      && !(plain.out ? users)
      && !(plain.out.networking ? domain)
    ))
    (check "no first-boot rebuild unless asked" (
      !(plain.out.systemd.services ? hcloud-first-boot-rebuild)
    ))
    (check "an agent can be turned off" (
      !(noHostname.out.systemd.services ? hcloud-hostname)
      && noHostname.out.systemd.services ? hcloud-network
    ))
    (check "services.hcloud.enable = false configures nothing" (off.out == { }))
    (check "the guest agent gets chpasswd (shadow) only when it runs" (
      guestAgent.out.systemd.services.qemu-guest-agent.path == [ pkgs.shadow ]
      && !(plain.out.systemd.services ? qemu-guest-agent)
    ))
    (check "staticConfig: hostname from the metadata, as a default" (
      static.out.networking.hostName == mkDefaultOf "app-7"
    ))
    (check "staticConfig: root's keys from the metadata" (
      static.out.users.users.root.openssh.authorizedKeys.keys == (docOf "dual-stack").ssh_keys
    ))
    (check "staticConfig: the networks hcloud-network writes, each key a default" (
      static.out.systemd.network.networks == builtins.mapAttrs (_: perKeyDefaults) staticSettings.networks
      && attrNames static.out.systemd.network.networks == [
        "10-hcloud-private-8600005e6f70"
        "10-hcloud-public"
      ]
    ))
    (check "staticConfig: networks use only options of NixOS' systemd.network.networks.<name>" (
      let
        known = [
          "matchConfig"
          "linkConfig"
          "networkConfig"
          "dhcpV4Config"
          "address"
          "routes"
          "dns"
          "ntp"
        ];
        used = concatLists (
          map attrNames (
            builtins.attrValues (static.out.systemd.network.networks // privateDhcp.out.systemd.network.networks)
          )
        );
      in
      builtins.all (k: elem k known) used
    ))
    (check "staticConfig: no warnings for a good document" (static.out.warnings == [ ]))
    (check "staticConfig: an FQDN splits into hostName and domain" (
      fqdn.out.networking.hostName == mkDefaultOf "web-1" && fqdn.out.networking.domain == mkDefaultOf "example.com"
    ))
    (check "staticConfig: bad entries become warnings and are left out" (
      length hostile.out.warnings == 8
      && attrNames hostile.out.systemd.network.networks == [
        "10-hcloud-private-860000000005"
        "10-hcloud-public"
      ]
      && hostile.out.networking.hostName == mkDefaultOf ""
    ))
    (check "privateDhcp: hcloud-network runs with --private-dhcp" (
      privateDhcp.out.systemd.services.hcloud-network.serviceConfig.ExecStart == [
        ""
        "${stubPackage.outPath}/bin/hcloud-network --private-dhcp"
      ]
    ))
    (check "privateDhcp: every unit that runs hcloud-network runs it with --private-dhcp, other commands kept" (
      let
        units = filter (f: builtins.any (l: match ".*/usr/bin/hcloud-network( .*)?" l != null) (execStartLines f)) (
          filter (f: match ".+[.]service" f != null) unitFiles
        );
        name = f: builtins.head (match "(.+)[.]service" f);
        expected =
          f:
          [ "" ]
          ++ map (
            l:
            builtins.replaceStrings [ "/usr/bin/" ] [ "${stubPackage.outPath}/bin/" ] l
            + (if match ".*/usr/bin/hcloud-network( .*)?" l != null then " --private-dhcp" else "")
          ) (execStartLines f);
      in
      units != [ ]
      && builtins.all (
        f: privateDhcp.out.systemd.services.${name f}.serviceConfig.ExecStart == expected f
      ) units
    ))
    (check "privateDhcp: static networks use DHCP on private NICs" (
      privateDhcp.out.systemd.network.networks."10-hcloud-private-860000000003".networkConfig.DHCP == mkDefaultOf "ipv4"
    ))
    (check "first boot: a oneshot after the metadata download" (
      let
        s = firstBoot.out.systemd.services.hcloud-first-boot-rebuild;
      in
      s.serviceConfig.Type == "oneshot"
      && elem "hcloud-dl-metadata.service" s.after
      && elem "hcloud-dl-metadata.service" s.wants
      && s.restartIfChanged == false
      && s.unitConfig.ConditionPathExists == docPath "dual-stack"
    ))
    (check "first boot: the boot does not wait for the rebuild, and a switch does not stop it" (
      let
        s = firstBoot.out.systemd.services.hcloud-first-boot-rebuild;
      in
      s.unitConfig.DefaultDependencies == false
      && s.unitConfig.X-StopOnRemoval == false
      && elem "shutdown.target" s.conflicts
    ))
    (check "first boot: once per instance id, checked against DMI" (
      contains "product_serial" rebuildScript
      && contains "first-boot-rebuild" rebuildScript
      && contains "\\.instance_id" rebuildScript
    ))
    (check "first boot: channel update, then nixos-rebuild switch" (
      contains "nix-channel --update\n.*nixos-rebuild switch" rebuildScript
    ))
    (check "first boot with a flake: --flake and --impure, no channel" (
      contains "nixos-rebuild switch --flake '/etc/nixos#web' --impure" rebuildFlakeScript
      && !(contains "nix-channel" rebuildFlakeScript)
    ))
  ];
  failed = map (c: c.name) (filter (c: !c.ok) checks);
in
{
  inherit failed;
  count = length checks;
}
