# nix/lib/systemd-ini.nix on unit-file text: the failed assertions.
#   nix-instantiate --eval --strict --json nix/tests/ini.nix -A failed
let
  ini = import ../lib/systemd-ini.nix;
  unit = ''
    # A comment
    ; another
    [Unit]
    Description=Test unit
    After=a.service b.service

    [Service]
    Type=oneshot
    ExecStart=/usr/bin/hcloud-network \
        --private-dhcp
    ExecStart=/usr/bin/true
    Environment="A=1" "B=2"

    [Install]
    WantedBy=multi-user.target
    WantedBy=sshd.service  other.target
    Also=x.path
  '';
  s = ini.parse unit;
  check = name: ok: { inherit name ok; };
  checks = [
    (check "sections in file order" (map (x: x.name) s == [ "Unit" "Service" "Install" ]))
    (check "a continued line is one value, joined with a space" (
      builtins.match "/usr/bin/hcloud-network +--private-dhcp" (builtins.head (ini.rawValues "Service" "ExecStart" s)) != null
      && builtins.length (ini.rawValues "Service" "ExecStart" s) == 2
    ))
    (check "values split into items, across repeated keys" (
      ini.values "Install" "WantedBy" s == [ "multi-user.target" "sshd.service" "other.target" ]
    ))
    (check "values keep their text after the first =" (ini.rawValues "Service" "Environment" s == [ "\"A=1\" \"B=2\"" ]))
    (check "a key of another section is not found" (ini.values "Unit" "WantedBy" s == [ ]))
    (check "garbage is an error, not ignored" (
      !(builtins.tryEval (builtins.deepSeq (ini.parse "[Unit]\nthis is not a setting\n") true)).success
    ))
    (check "a setting before any section is an error" (
      !(builtins.tryEval (builtins.deepSeq (ini.parse "Key=value\n") true)).success
    ))
    (check "lower-cases every letter" (ini.lower "YES No MiXeD" == "yes no mixed"))
  ];
in
{
  failed = map (c: c.name) (builtins.filter (c: !c.ok) checks);
  count = builtins.length checks;
}
