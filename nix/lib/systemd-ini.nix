# Reading systemd's ini-style files (units, .network files) with builtins only: the module reads
# the [Install] and ExecStart= lines of the unit files in systemd/, the tests read networkd files.
let
  inherit (builtins)
    concatLists
    elemAt
    filter
    foldl'
    genList
    head
    isString
    length
    map
    match
    split
    stringLength
    substring
    ;

  upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  lowerChars = "abcdefghijklmnopqrstuvwxyz";
  chars = s: genList (i: substring i 1 s) (stringLength s);

  trim =
    s:
    let
      m = match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
    in
    if m == null then "" else head m;
  lower = builtins.replaceStrings (chars upper) (chars lowerChars);

  # [ { name = "Service"; entries = [ { key; value; } ... ]; } ... ] in file order. Comments and
  # blank lines are skipped, a line ending in a backslash continues on the next (joined with a
  # space, as systemd does); a line that is neither a section nor key=value is an error.
  parse =
    text:
    let
      joined = builtins.replaceStrings [ "\\\n" ] [ " " ] text;
      lines = filter (l: l != "" && match "[#;].*" l == null) (map trim (filter isString (split "\n" joined)));
      step =
        acc: line:
        let
          header = match "[[](.+)[]]" line;
          kv = match "([^=]+)=(.*)" line;
          last = elemAt acc (length acc - 1);
          before = genList (i: elemAt acc i) (length acc - 1);
        in
        if header != null then
          acc
          ++ [
            {
              name = head header;
              entries = [ ];
            }
          ]
        else if kv != null && acc != [ ] then
          before
          ++ [
            (
              last
              // {
                entries = last.entries ++ [
                  {
                    key = trim (head kv);
                    value = trim (elemAt kv 1);
                  }
                ];
              }
            )
          ]
        else
          throw "systemd ini: cannot read line '${line}'";
    in
    foldl' step [ ] lines;

  sectionsNamed = name: sections: filter (s: s.name == name) sections;

  # The raw values of `key` in sections called `name`, in file order.
  rawValues =
    name: key: sections:
    concatLists (
      map (s: map (e: e.value) (filter (e: e.key == key) s.entries)) (sectionsNamed name sections)
    );

  # The same, each value split into its space-separated items (WantedBy=, Address=, DNS=, ...).
  values =
    name: key: sections:
    concatLists (map (v: filter (w: isString w && w != "") (split "[[:space:]]+" v)) (rawValues name key sections));
in
{
  inherit
    trim
    lower
    parse
    sectionsNamed
    rawValues
    values
    ;
}
