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
    length
    listToAttrs
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
  # networking.domain. A name that is not a valid hostname gives "" (dynamic) and null.
  labelRe = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  hostnameOf =
    name:
    let
      parts = if isString name then match "(${labelRe})(\\.(${labelRe}(\\.${labelRe})*))?\\.?" name else null;
    in
    if parts == null then
      {
        hostName = "";
        domain = null;
      }
    else
      {
        hostName = head parts;
        domain = builtins.elemAt parts 3;
      };

  # Root keys: one line, a known key type, a base64 blob, an optional comment. Lines with
  # options (command=, from=, ...) or anything else are dropped, as hcloud-ssh-keys does.
  keyTypes = [
    "ssh-ed25519"
    "ssh-rsa"
    "ecdsa-sha2-nistp256"
    "ecdsa-sha2-nistp384"
    "ecdsa-sha2-nistp521"
    "sk-ssh-ed25519@openssh.com"
    "sk-ecdsa-sha2-nistp256@openssh.com"
  ];
  validKey =
    key:
    let
      m = match "([^ ]+) ([A-Za-z0-9+/]+={0,2})( [^\n\r]*)?" key;
    in
    isString key && m != null && elem (head m) keyTypes;

  # The public interface: IPv4 by DHCP (a /32 with 172.31.1.1 on-link), IPv6 as the static
  # address from the metadata with fe80::1 on-link, no router advertisements, Hetzner's
  # resolvers and time servers, IPv4 link-local kept so 169.254.169.254 is reachable without a
  # DHCPv4 lease (IPv6-only servers), and the metadata service pinned to the public gateway so a
  # private network's DHCP route cannot black-hole it.
  publicNetwork =
    net:
    let
      has4 = net.ipv4_address != null;
      has6 = net.ipv6_subnet != null;
      gateway6 = if net.ipv6_gateway != null then net.ipv6_gateway else hetzner.ipv6Gateway;
      fallbackDns =
        (if has4 then hetzner.nameservers4 else [ ]) ++ (if has6 then hetzner.nameservers6 else [ ]);
    in
    {
      matchConfig.MACAddress = net.mac_address;
      networkConfig = {
        DHCP = if has4 then "ipv4" else "no";
        LinkLocalAddressing = "yes";
        IPv6AcceptRA = false;
        KeepConfiguration = "dhcp";
      };
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
                Gateway = net.ipv4_gateway;
                GatewayOnLink = true;
              }
            ]
          else
            [ ]
        );
      dns = if net.nameservers != [ ] then net.nameservers else fallbackDns;
      ntp = hetzner.timeServers;
    };

  # A private network: the IP and every alias IP as /32, the gateway on-link, the whole network
  # range via the gateway, MTU 1450, no default route, no DHCP, no IPv6.
  privateNetwork = p: {
    matchConfig.MACAddress = p.mac_address;
    linkConfig.MTUBytes = toString hetzner.privateMtu;
    networkConfig = {
      DHCP = "no";
      LinkLocalAddressing = "no";
      IPv6AcceptRA = false;
      KeepConfiguration = "static";
    };
    address = map (ip: "${ip}/32") ([ p.ip ] ++ p.alias_ips);
    routes = [
      {
        Destination = "${p.gateway}/32";
        Scope = "link";
      }
      {
        Destination = p.network;
        Gateway = p.gateway;
        GatewayOnLink = true;
      }
    ];
  };

  macName = mac: replaceStrings [ ":" ] [ "" ] mac;

  # The networkd networks for a document, named as hcloud-network names its files
  # (10-hcloud-<...>.network), in the shape of NixOS' systemd.network.networks.
  networksOf =
    net:
    listToAttrs (
      (
        if net.mac_address != null then
          [
            {
              name = "10-hcloud-public";
              value = publicNetwork net;
            }
          ]
        else
          [ ]
      )
      ++ map (p: {
        name = "10-hcloud-private-${macName p.mac_address}";
        value = privateNetwork p;
      }) (filter (p: p.mac_address != null && p.ip != null && p.gateway != null && p.network != null) net.private)
    );

  # Everything the module needs from one document.
  settings =
    doc:
    let
      d = normalize doc;
      net = d.network;
      names = hostnameOf d.hostname;
      has4 = net.ipv4_address != null;
      has6 = net.ipv6_subnet != null;
    in
    {
      inherit (names) hostName domain;
      instanceId = d.instance_id;
      sshKeys = filter validKey d.ssh_keys;
      nameservers =
        if net.nameservers != [ ] then
          net.nameservers
        else
          (if has4 || !has6 then hetzner.nameservers4 else [ ])
          ++ (if has6 || !has4 then hetzner.nameservers6 else [ ]);
      timeServers = hetzner.timeServers;
      networks = networksOf net;
    };

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
        ++ map (renderSection "Route") (n.routes or [ ])
      )
    );

in
{
  inherit
    hetzner
    emptyDocument
    normalize
    readDocument
    hostnameOf
    validKey
    settings
    renderNetwork
    ;
  # Convenience for `import ./hcloud.nix` users: settings of the document at a path, or of the
  # empty document when it cannot be read at evaluation time.
  settingsFromFile = path: settings (readDocument path);
}
