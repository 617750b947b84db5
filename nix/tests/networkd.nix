# Read systemd-networkd .network text and reduce it to what configures the server: the MAC it
# matches, MTU, DHCP, addresses, routes, resolvers, time servers, router advertisements.
# Builtins only. Used to compare NixOS' networks (rendered by nix/lib/hcloud.nix) with the files
# hcloud-network writes for the same document: equal projections configure the server the same way.
let
  inherit (builtins)
    concatLists
    elemAt
    filter
    foldl'
    head
    isString
    length
    map
    match
    sort
    split
    ;

  ini = import ../lib/systemd-ini.nix;
  inherit (ini) lower parse sectionsNamed;

  valuesOf = ini.values;
  lastValue =
    name: key: default: sections:
    let
      vs = valuesOf name key sections;
    in
    if vs == [ ] then default else elemAt vs (length vs - 1);

  boolOf =
    v:
    if
      builtins.elem (lower v) [
        "yes"
        "true"
        "1"
        "on"
      ]
    then
      true
    else if
      builtins.elem (lower v) [
        "no"
        "false"
        "0"
        "off"
      ]
    then
      false
    else
      throw "networkd text: '${v}' is not a boolean";

  dhcpOf =
    v:
    let
      l = lower v;
    in
    if
      builtins.elem l [
        "yes"
        "true"
        "1"
        "on"
      ]
    then
      "yes"
    else if
      builtins.elem l [
        "no"
        "false"
        "0"
        "off"
      ]
    then
      "no"
    else
      l;

  # Booleans in one spelling, other values as written.
  boolWord =
    v:
    let
      l = lower v;
    in
    if builtins.elem l [ "yes" "true" "on" ] then
      "yes"
    else if builtins.elem l [ "no" "false" "off" ] then
      "no"
    else
      v;

  isV6 = a: match ".*:.*" a != null;

  # One route as a comparable string. Defaults made explicit: no Destination is the default route
  # of the gateway's family; a route without a gateway has link scope, one with a gateway global
  # scope; GatewayOnLink only matters with a gateway.
  routeOf =
    entries:
    let
      get =
        k: d:
        let
          es = filter (e: e.key == k) entries;
        in
        if es == [ ] then d else (elemAt es (length es - 1)).value;
      gw = get "Gateway" null;
      dest = get "Destination" (
        if gw == null then
          "none"
        else if isV6 gw then
          "::/0"
        else
          "0.0.0.0/0"
      );
      scope = get "Scope" (if gw == null then "link" else "global");
      onlink = if gw == null then false else boolOf (get "GatewayOnLink" "no");
      src = get "PreferredSource" "-";
      known = [
        "Gateway"
        "Destination"
        "Scope"
        "GatewayOnLink"
        "PreferredSource"
      ];
      others = map (e: " ${e.key} ${e.value}") (filter (e: !builtins.elem e.key known) entries);
    in
    "to ${dest} via ${if gw == null then "-" else gw} onlink ${if onlink then "yes" else "no"} scope ${scope} src ${src}"
    + builtins.concatStringsSep "" (sort (a: b: a < b) others);

  # The projection. Lists whose order does not matter are sorted; resolvers keep their order.
  project =
    text:
    let
      s = parse text;
      networkGateways = map (gw: [
        {
          key = "Gateway";
          value = gw;
        }
      ]) (valuesOf "Network" "Gateway" s);
    in
    {
      mac = map lower (valuesOf "Match" "MACAddress" s);
      mtu = lastValue "Link" "MTUBytes" null s;
      dhcp = dhcpOf (lastValue "Network" "DHCP" "no" s);
      ipv6AcceptRA =
        let
          v = lastValue "Network" "IPv6AcceptRA" null s;
        in
        if v == null then null else boolOf v;
      addresses = sort (a: b: a < b) (valuesOf "Network" "Address" s ++ valuesOf "Address" "Address" s);
      routes = sort (a: b: a < b) (
        map routeOf (map (x: x.entries) (sectionsNamed "Route" s) ++ networkGateways)
      );
      dns = valuesOf "Network" "DNS" s;
      ntp = valuesOf "Network" "NTP" s;
      # networkd's default is IPv6 link-local only.
      linkLocal = lower (lastValue "Network" "LinkLocalAddressing" "ipv6" s);
      # systemd 257 renamed dhcp and dhcp-on-stop (still read, same meaning).
      keepConfiguration =
        let
          v = lower (lastValue "Network" "KeepConfiguration" "no" s);
        in
        { dhcp = "dynamic"; dhcp-on-stop = "dynamic-on-stop"; }.${v} or v;
      # Anything else, so that no setting goes unnoticed.
      other = sort (a: b: a < b) (
        concatLists (
          map (
            sec:
            map (e: "${sec.name}.${e.key}=${boolWord e.value}") (
              filter (
                e:
                !builtins.elem "${sec.name}.${e.key}" [
                  "Match.MACAddress"
                  "Link.MTUBytes"
                  "Network.DHCP"
                  "Network.IPv6AcceptRA"
                  "Network.Address"
                  "Network.Gateway"
                  "Network.DNS"
                  "Network.NTP"
                  "Network.LinkLocalAddressing"
                  "Network.KeepConfiguration"
                  "Address.Address"
                ]
              ) sec.entries
            )
          ) (filter (sec: sec.name != "Route") s)
        )
      );
    };
in
{
  inherit parse project;
}
