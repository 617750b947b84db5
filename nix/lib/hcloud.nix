# The metadata document (/etc/hcloud-metadata.json, docs/metadata-document.md) turned into
# NixOS settings: networkd networks, hostname, root keys, resolvers, time servers.
#
# Builtins only (no nixpkgs): the NixOS module imports it, and the tests evaluate it with a bare
# `nix-instantiate --eval --strict --json` against the same documents the Rust tests produce.
# The networks follow what `hcloud-network` renders for the same document, so a NixOS server
# and one from the Arch image are configured the same way.
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    elem
    filter
    head
    isAttrs
    isList
    isString
    map
    match
    replaceStrings
    ;

  # What Hetzner uses everywhere (hetzner-guest-spec.md §5, §6).
  hetzner = {
    ipv4Gateway = "172.31.1.1";
    ipv6Gateway = "fe80::1";
    metadataAddress = "169.254.169.254";
    nameservers4 = [
      "185.12.64.1"
      "185.12.64.2"
    ];
    nameservers6 = [
      "2a01:4ff:ff00::add:1"
      "2a01:4ff:ff00::add:2"
    ];
    timeServers = [
      "ntp1.hetzner.de"
      "ntp2.hetzner.com"
      "ntp3.hetzner.net"
    ];
    privateMtu = 1450;
  };

  # The document of a machine without metadata (the build machine, pure flake evaluation):
  # every key present, every value empty, so configurations that use them always evaluate.
  emptyDocument = {
    instance_id = null;
    hostname = null;
    region = null;
    availability_zone = null;
    ssh_keys = [ ];
    network = emptyNetwork;
  };
  emptyNetwork = {
    mac_address = null;
    ipv4_address = null;
    ipv4_subnet = null;
    ipv4_gateway = null;
    ipv6_address = null;
    ipv6_subnet = null;
    ipv6_gateway = null;
    nameservers = [ ];
    private = [ ];
  };
  emptyPrivate = {
    ip = null;
    alias_ips = [ ];
    interface_num = null;
    mac_address = null;
    network_id = null;
    network_name = null;
    network = null;
    subnet = null;
    gateway = null;
  };

  # Fill every missing key with its empty value; keys added to the document later are kept.
  # `null` (no document) gives the empty document.
  normalize =
    doc:
    let
      d = if doc == null then { } else doc;
      net = if d ? network && isAttrs d.network then d.network else { };
      orList = v: if isList v then v else [ ];
      privates = map (p: emptyPrivate // p // { alias_ips = orList (p.alias_ips or null); }) (
        orList (net.private or null)
      );
    in
    emptyDocument
    // d
    // {
      ssh_keys = orList (d.ssh_keys or null);
      network =
        emptyNetwork
        // net
        // {
          nameservers = orList (net.nameservers or null);
          private = privates;
        };
    };

  # Read the document at evaluation time when that is allowed and it exists; otherwise null.
  # Pure evaluation (flakes without --impure) has no builtins.currentSystem and may not read
  # absolute paths, so the document is treated as absent there instead of failing.
  readDocument =
    path:
    if builtins ? currentSystem && builtins.pathExists path then
      builtins.fromJSON (builtins.readFile path)
    else
      null;

  # networking.hostName takes one RFC 1123 label (no dots); the rest of an FQDN goes to
  # networking.domain. Checked as hcloud-hostname checks it: letters, digits, hyphens, dots
  # between labels, no label starting or ending with a hyphen, labels of at most 63 characters;
  # a name longer than the kernel's 64 is cut at its first dot (the domain is then dropped, as
  # hcloud-hostname sets only the first label). Anything else gives "" (dynamic) and null.
  hostnameOf =
    name:
    let
      len = builtins.stringLength name;
      labels = filter isString (builtins.split "[.]" name);
      labelOk = l: match "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?" l != null;
      short = l: builtins.stringLength l <= 63;
      first = head labels;
      rest = builtins.substring (builtins.stringLength first + 1) len name;
      none = {
        hostName = "";
        domain = null;
      };
    in
    if !(isString name) || name == "" || !(builtins.all labelOk labels) then
      none
    else if len <= 64 then
      (
        if builtins.all short labels then
          {
            hostName = first;
            domain = if rest == "" then null else rest;
          }
        else
          none
      )
    else if builtins.length labels > 1 && short first then
      {
        hostName = first;
        domain = null;
      }
    else
      none;

  # Root keys, checked and written in canonical form as hcloud-ssh-keys does (ssh-key.nix).
  sshKey = import ./ssh-key.nix;
  keysOf =
    keys:
    let
      checked = builtins.genList (i: {
        index = i;
        result = sshKey.check (builtins.elemAt keys i);
      }) (builtins.length keys);
    in
    {
      keys = map (c: c.result.key) (filter (c: c.result.problem == null) checked);
      problems = map (c: "ssh_keys[${toString c.index}] refused: ${c.result.problem}") (
        filter (c: c.result.problem != null) checked
      );
    };
  validKey = key: (sshKey.check key).problem == null;

  # ---- Addresses, checked as hcloud-network checks them --------------------------------------

  pow2 = n: builtins.foldl' (a: _: a * 2) 1 (builtins.genList (x: x) n);
  mod = a: b: a - (a / b) * b;
  octetRe = "(0|[1-9][0-9]{0,2})";
  # An IPv4 address as an integer, or null.
  parseIPv4 =
    s:
    let
      m = if isString s then match "${octetRe}\\.${octetRe}\\.${octetRe}\\.${octetRe}" s else null;
      octets = if m == null then [ ] else map builtins.fromJSON m;
    in
    if m == null || builtins.any (o: o > 255) octets then
      null
    else
      builtins.foldl' (acc: o: acc * 256 + o) 0 octets;
  formatIPv4 =
    n:
    concatStringsSep "." (
      map (shift: toString (mod (n / pow2 shift) 256)) [
        24
        16
        8
        0
      ]
    );
  # An IPv4 CIDR as { network (integer, host bits cleared); prefix; text (normalized) }, or null.
  parseCIDR4 =
    s:
    let
      m = if isString s then match "([0-9.]+)/([0-9]{1,2})" s else null;
      ip = if m == null then null else parseIPv4 (head m);
      prefix = if m == null then 33 else builtins.fromJSON (builtins.elemAt m 1);
      size = pow2 (32 - prefix);
      network = if ip == null || prefix > 32 then 0 else ip - mod ip size;
    in
    if ip == null || prefix > 32 then
      null
    else
      {
        inherit network prefix size;
        text = "${formatIPv4 network}/${toString prefix}";
      };
  inCIDR4 = cidr: ip: ip - mod ip cidr.size == cidr.network;

  # IPv6 is checked for its shape only (hex groups, colons, an optional dotted IPv4 tail); the
  # documents come from hcloud-dl-metadata, which writes addresses in canonical form.
  isIPv6 = s: isString s && match "[0-9a-fA-F:]*:[0-9a-fA-F:]*(:[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+)?" s != null;
  isCIDR6 =
    s:
    let
      m = if isString s then match "([^/]+)/([0-9]{1,3})" s else null;
    in
    m != null && isIPv6 (head m) && builtins.fromJSON (builtins.elemAt m 1) <= 128;
  isIPv4 = s: parseIPv4 s != null;

  trim =
    s:
    let
      m = match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
    in
    if m == null then "" else head m;
  # A MAC as aa:bb:cc:dd:ee:ff (lower case), or null.
  parseMac =
    s:
    let
      t = if isString s then trim s else "";
    in
    if match "[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}" t != null then
      replaceStrings [ "A" "B" "C" "D" "E" "F" ] [ "a" "b" "c" "d" "e" "f" ] t
    else
      null;

  ok = value: {
    inherit value;
    problem = null;
  };
  bad = problem: {
    value = null;
    inherit problem;
  };

  # ---- The public interface ---------------------------------------------------------------
  # IPv4 by DHCP (a /32 with 172.31.1.1 on-link), IPv6 as the static address from the metadata
  # with fe80::1 on-link, no router advertisements, resolvers of the families the server has
  # (Hetzner's when the document names none of a family), Hetzner's time servers, IPv4
  # link-local kept so 169.254.169.254 is on-link without a DHCPv4 lease (IPv6-only servers), and
  # the metadata service pinned to the public gateway so a private network's DHCP route cannot
  # black-hole it. { value = null or { mac; dropped; network }; problem = null or text; }
  publicOf =
    net:
    let
      mac = parseMac net.mac_address;
      ipv4Given = net.ipv4_address != null;
      ipv4 = parseIPv4 net.ipv4_address;
      gateway4 = if net.ipv4_gateway == null then hetzner.ipv4Gateway else net.ipv4_gateway;
      ipv6Given = net.ipv6_subnet != null;
      gateway6 =
        if net.ipv6_gateway == null then hetzner.ipv6Gateway else head (builtins.split "%" net.ipv6_gateway);
      has4 = ipv4Given;
      has6 = ipv6Given;
      validDns = filter (s: isIPv4 s || isIPv6 s) (map trim net.nameservers);
      dropped = map (s: "nameserver \"${s}\" is not an IP address; it is left out") (
        filter (s: !(isIPv4 (trim s) || isIPv6 (trim s))) net.nameservers
      );
      dedup = builtins.foldl' (acc: s: if elem s acc then acc else acc ++ [ s ]) [ ];
      dns4 = filter isIPv4 (dedup validDns);
      dns6 = filter isIPv6 (dedup validDns);
      dns =
        (if has4 then (if dns4 != [ ] then dns4 else hetzner.nameservers4) else [ ])
        ++ (if has6 then (if dns6 != [ ] then dns6 else hetzner.nameservers6) else [ ]);
      settings = {
        matchConfig.MACAddress = mac;
        networkConfig =
          (if has4 then { DHCP = "ipv4"; } else { })
          // {
            LinkLocalAddressing = if has6 then "yes" else "ipv4";
            IPv6AcceptRA = false;
          }
          # systemd 257's name for "dhcp", the only one current nixpkgs accepts (the agent's
          # files may keep the old name, which systemd still reads the same).
          // (if has4 then { KeepConfiguration = "dynamic"; } else { });
        address = if has6 then [ net.ipv6_subnet ] else [ ];
        routes =
          (
            if has6 then
              [
                {
                  Gateway = gateway6;
                  GatewayOnLink = true;
                }
              ]
            else
              [ ]
          )
          ++ (
            if has4 then
              [
                {
                  Destination = "${hetzner.metadataAddress}/32";
                  Gateway = gateway4;
                  GatewayOnLink = true;
                }
              ]
            else
              [ ]
          );
        inherit dns;
        ntp = hetzner.timeServers;
      }
      # The hostname is hcloud-hostname's, from the metadata, not the DHCP server's.
      // (if has4 then { dhcpV4Config.UseHostname = false; } else { });
    in
    if net.mac_address == null then
      (
        if ipv4Given || ipv6Given then
          bad "public addresses are given but mac_address is null: the interface cannot be matched"
        else
          ok null
      )
    else if mac == null then
      bad "mac_address \"${toString net.mac_address}\" is not of the form aa:bb:cc:dd:ee:ff"
    else if ipv4Given && ipv4 == null then
      bad "ipv4_address \"${toString net.ipv4_address}\" is not a valid IPv4 address"
    else if ipv4Given && !isIPv4 gateway4 then
      bad "ipv4_gateway \"${gateway4}\" is not a valid IPv4 address"
    else if !ipv6Given && net.ipv6_address != null then
      bad "ipv6_address is \"${net.ipv6_address}\" but ipv6_subnet (its prefix) is null"
    else if ipv6Given && !isCIDR6 net.ipv6_subnet then
      bad "ipv6_subnet \"${toString net.ipv6_subnet}\" is not a valid IPv6 address with prefix (CIDR)"
    else if ipv6Given && !isIPv6 gateway6 then
      bad "ipv6_gateway \"${gateway6}\" is not a valid IPv6 address"
    else
      ok {
        inherit mac dropped;
        network = settings;
      };

  # ---- A private network --------------------------------------------------------------------
  # The IP and every alias IP as /32, the gateway on-link, the whole network range via the
  # gateway, both with the IP as source, MTU 1450, no default route, no DHCP, no IPv6.
  # With privateDhcp (hcloud-network --private-dhcp): DHCPv4 instead, alias IPs still static.
  privateOf =
    privateDhcp: p:
    let
      mac = parseMac p.mac_address;
      ip = parseIPv4 p.ip;
      cidr = parseCIDR4 p.network;
      gateway = parseIPv4 p.gateway;
      aliasChecks = map (a: {
        text = a;
        value = parseIPv4 a;
      }) p.alias_ips;
      badAlias = filter (a: a.value == null || !inCIDR4 cidr a.value || a.value == gateway) aliasChecks;
      firstBad = head badAlias;
      aliases = builtins.foldl' (
        acc: a: if a.value == ip || elem a.value acc then acc else acc ++ [ a.value ]
      ) [ ] aliasChecks;
      ipText = formatIPv4 ip;
      gatewayText = formatIPv4 gateway;
    in
    if p.mac_address == null then
      bad "mac_address is missing: the interface cannot be matched"
    else if mac == null then
      bad "mac_address: MAC address \"${toString p.mac_address}\" is not of the form aa:bb:cc:dd:ee:ff"
    else if p.ip == null then
      bad "ip is missing"
    else if ip == null then
      bad "ip \"${toString p.ip}\" is not a valid IPv4 address"
    else if p.network == null then
      bad "network (the CIDR range) is missing"
    else if cidr == null then
      bad "network \"${toString p.network}\" is not a valid IPv4 CIDR"
    else if p.subnet != null && parseCIDR4 p.subnet == null then
      bad "subnet \"${toString p.subnet}\" is not a valid IPv4 CIDR"
    else if p.gateway == null then
      bad "gateway is missing"
    else if gateway == null then
      bad "gateway \"${toString p.gateway}\" is not a valid IPv4 address"
    else if !inCIDR4 cidr gateway then
      bad "gateway ${gatewayText} is outside its network ${cidr.text}"
    else if !inCIDR4 cidr ip then
      bad "ip ${ipText} is outside its network ${cidr.text}"
    else if ip == gateway then
      bad "ip ${ipText} is the network's gateway"
    else if badAlias != [ ] then
      (
        if firstBad.value == null then
          bad "alias_ips entry \"${toString firstBad.text}\" is not a valid IPv4 address"
        else if firstBad.value == gateway then
          bad "alias IP ${formatIPv4 firstBad.value} is the network's gateway"
        else
          bad "alias IP ${formatIPv4 firstBad.value} is outside its network ${cidr.text}"
      )
    else
      ok {
        inherit mac ipText gatewayText;
        network =
          if privateDhcp then
            {
              matchConfig.MACAddress = mac;
              linkConfig.MTUBytes = toString hetzner.privateMtu;
              networkConfig = {
                DHCP = "ipv4";
                LinkLocalAddressing = "no";
                IPv6AcceptRA = false;
              };
              # DHCP carries the IP and the routes, not the alias IPs.
              address = map (a: "${formatIPv4 a}/32") aliases;
              dhcpV4Config = {
                UseDNS = false;
                UseNTP = false;
                UseHostname = false;
                UseDomains = false;
              };
            }
          else
            {
              matchConfig.MACAddress = mac;
              linkConfig.MTUBytes = toString hetzner.privateMtu;
              networkConfig = {
                DHCP = "no";
                LinkLocalAddressing = "no";
                IPv6AcceptRA = false;
              };
              address = map (a: "${formatIPv4 a}/32") ([ ip ] ++ aliases);
              routes = [
                {
                  Destination = "${gatewayText}/32";
                  Scope = "link";
                  PreferredSource = ipText;
                }
                {
                  Destination = cidr.text;
                  Gateway = gatewayText;
                  GatewayOnLink = true;
                  PreferredSource = ipText;
                }
              ];
            };
      };

  privateEntryName =
    i: p:
    let
      what =
        (
          if p.network_name != null then
            [ p.network_name ]
          else if p.network_id != null then
            [ "network ${toString p.network_id}" ]
          else
            [ ]
        )
        ++ (if p.mac_address != null then [ p.mac_address ] else [ ]);
    in
    "network.private[${toString i}]" + (if what == [ ] then "" else " (${concatStringsSep ", " what})");

  # The networkd networks for a document, named as hcloud-network names its files
  # (10-hcloud-public, 10-hcloud-private-<mac without colons>), in the shape of NixOS'
  # systemd.network.networks, and the problems met (entries skipped, values dropped).
  # A MAC is configured once: the public interface claims its MAC first, then private entries in
  # order.
  networksOf =
    { privateDhcp }:
    net:
    let
      public = publicOf net;
      publicEntry = "network (public interface)";
      publicMac = if public.value != null then public.value.mac else parseMac net.mac_address;
      start = {
        claimed = if publicMac != null then { ${publicMac} = publicEntry; } else { };
        networks =
          if public.value != null then { "10-hcloud-public" = public.value.network; } else { };
        problems =
          (if public.problem != null then [ "skipped ${publicEntry}: ${public.problem}" ] else [ ])
          ++ (if public.value != null then map (d: "${publicEntry}: ${d}") public.value.dropped else [ ]);
        index = 0;
        # Without a public network the first private network configured routes the metadata
        # service through its gateway (with privateDhcp the lease brings that route).
        metadataDue = net.mac_address == null && !privateDhcp;
      };
      withMetadataRoute =
        r:
        r.value.network
        // {
          routes = r.value.network.routes ++ [
            {
              Destination = "${hetzner.metadataAddress}/32";
              Gateway = r.value.gatewayText;
              GatewayOnLink = true;
              PreferredSource = r.value.ipText;
            }
          ];
        };
      step =
        acc: p:
        let
          name = privateEntryName acc.index p;
          r = privateOf privateDhcp p;
          taken = r.value != null && acc.claimed ? ${r.value.mac};
          problem =
            if r.problem != null then
              r.problem
            else if taken then
              "MAC address ${r.value.mac} is already used by ${acc.claimed.${r.value.mac}}; only the first is configured"
            else
              null;
        in
        {
          index = acc.index + 1;
          metadataDue = acc.metadataDue && problem != null;
          claimed = if problem == null then acc.claimed // { ${r.value.mac} = name; } else acc.claimed;
          networks =
            if problem == null then
              acc.networks
              // {
                "10-hcloud-private-${replaceStrings [ ":" ] [ "" ] r.value.mac}" =
                  if acc.metadataDue then withMetadataRoute r else r.value.network;
              }
            else
              acc.networks;
          problems = acc.problems ++ (if problem == null then [ ] else [ "skipped ${name}: ${problem}" ]);
        };
      result = builtins.foldl' step start net.private;
    in
    {
      inherit (result) networks problems;
    };

  # Everything the module needs from one document. Options as hcloud-network's flags:
  # privateDhcp = --private-dhcp.
  settingsWith =
    {
      privateDhcp ? false,
    }:
    doc:
    let
      d = normalize doc;
      names = hostnameOf d.hostname;
      nets = networksOf { inherit privateDhcp; } d.network;
      public = if nets.networks ? "10-hcloud-public" then nets.networks."10-hcloud-public" else null;
      keys = keysOf d.ssh_keys;
    in
    {
      inherit (names) hostName domain;
      instanceId = d.instance_id;
      sshKeys = keys.keys;
      # The public interface's resolvers; Hetzner's four without a public interface.
      nameservers = if public != null then public.dns else hetzner.nameservers4 ++ hetzner.nameservers6;
      timeServers = hetzner.timeServers;
      inherit (nets) networks;
      problems = nets.problems ++ keys.problems;
    };
  settings = settingsWith { };

  # Render networks as networkd unit text, as NixOS writes them (booleans as true/false, one
  # [Route] section per route). Used by the tests to compare with hcloud-network's files.
  renderValue =
    v:
    if v == true then
      "true"
    else if v == false then
      "false"
    else
      toString v;
  renderSection =
    name: attrs:
    if attrs == { } then
      ""
    else
      "[${name}]\n"
      + concatStringsSep "" (map (k: "${k}=${renderValue attrs.${k}}\n") (attrNames attrs));
  renderNetwork =
    n:
    let
      networkSection =
        (n.networkConfig or { })
        // (if (n.address or [ ]) != [ ] then { Address = n.address; } else { })
        // (if (n.dns or [ ]) != [ ] then { DNS = n.dns; } else { })
        // (if (n.ntp or [ ]) != [ ] then { NTP = n.ntp; } else { });
      multi =
        name: attrs:
        "[${name}]\n"
        + concatStringsSep "" (
          concatLists (
            map (
              k:
              let
                v = attrs.${k};
              in
              if isList v then map (x: "${k}=${renderValue x}\n") v else [ "${k}=${renderValue v}\n" ]
            ) (attrNames attrs)
          )
        );
    in
    concatStringsSep "\n" (
      filter (s: s != "") (
        [
          (renderSection "Match" (n.matchConfig or { }))
          (renderSection "Link" (n.linkConfig or { }))
          (multi "Network" networkSection)
        ]
        ++ [ (renderSection "DHCPv4" (n.dhcpV4Config or { })) ]
        ++ map (renderSection "Route") (n.routes or [ ])
      )
    );

in
{
  inherit
    hetzner
    emptyDocument
    emptyPrivate
    normalize
    readDocument
    hostnameOf
    validKey
    parseIPv4
    parseCIDR4
    parseMac
    settings
    settingsWith
    renderNetwork
    ;
  # Convenience for `import ./hcloud.nix` users: settings of the document at a path, or of the
  # empty document when it cannot be read at evaluation time.
  settingsFromFile = path: settings (readDocument path);
}
