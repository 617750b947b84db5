# Just enough of nixpkgs' lib to evaluate nix/module.nix without nixpkgs (nix-bin 2.8 offline):
# options keep their declaration, mkIf/mkMerge/mkDefault keep their meaning, and `resolve` turns a
# module's config into plain values (mkDefault and friends stay visible as overrides so tests
# can check priorities). Types can check values, so option defaults are checked too.
let
  inherit (builtins)
    all
    attrNames
    concatStringsSep
    elem
    filter
    foldl'
    isAttrs
    isBool
    isInt
    isList
    isString
    length
    listToAttrs
    mapAttrs
    replaceStrings
    stringLength
    substring
    ;

  absent = {
    _type = "absent";
  };
  isAbsent = v: isAttrs v && (v._type or null) == "absent";

  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };

  mkType = name: check: { inherit name check; };
  types = rec {
    str = mkType "str" isString;
    int = mkType "int" isInt;
    bool = mkType "bool" isBool;
    package = mkType "package" (v: isString v || (isAttrs v && v ? outPath));
    nullOr = t: mkType "nullOr ${t.name}" (v: v == null || t.check v);
    listOf = t: mkType "listOf ${t.name}" (v: isList v && all t.check v);
    submodule =
      m:
      mkType "submodule" (
        v:
        let
          opts = m.options;
        in
        isAttrs v
        && all (k: elem k (attrNames opts)) (filter (k: k != "_module") (attrNames v))
        && all (k: !(v ? ${k}) || opts.${k}.type.check v.${k}) (attrNames opts)
      );
  };

  mkOption = attrs: attrs // { _type = "option"; };
  isOption = v: isAttrs v && (v._type or null) == "option";

  # Merge two resolved definitions the way the module system would for these shapes.
  merge =
    path: a: b:
    if isAttrs a && isAttrs b && !(a ? _type) && !(b ? _type) then
      a
      // mapAttrs (k: v: if a ? ${k} then merge "${path}.${k}" a.${k} v else v) b
    else if isList a && isList b then
      a ++ b
    else
      throw "stub lib: conflicting definitions of ${path}";

  resolve =
    v:
    let
      t = if isAttrs v then v._type or null else null;
    in
    if t == "if" then
      (if v.condition then resolve v.content else absent)
    else if t == "merge" then
      foldl' (merge "config") { } (filter (x: !isAbsent x) (map resolve v.contents))
    else if t == "override" then
      mkOverride v.priority (resolve v.content)
    else if isAttrs v && t == null && !(v ? outPath) then
      let
        r = mapAttrs (_: resolve) v;
      in
      listToAttrs (
        map (k: {
          name = k;
          value = r.${k};
        }) (filter (k: !isAbsent r.${k}) (attrNames r))
      )
    else
      v;

  # Option declarations → their defaults (what config holds when nobody sets them).
  defaultsOf = opts: if isOption opts then opts.default or null else mapAttrs (_: defaultsOf) opts;
  # Option declarations → failed type checks of the given values ([] when all fit).
  typeErrors =
    path: opts: values:
    if isOption opts then
      (
        if opts ? type && !(opts.type.check values) then
          [ "${path}: value does not fit type ${opts.type.name}" ]
        else
          [ ]
      )
    else
      builtins.concatLists (map (k: typeErrors "${path}.${k}" opts.${k} values.${k}) (attrNames opts));

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  hasSuffix =
    suffix: s:
    let
      n = stringLength s;
      m = stringLength suffix;
    in
    m <= n && substring (n - m) m s == suffix;
in
{
  inherit
    types
    mkOption
    mkOverride
    resolve
    defaultsOf
    typeErrors
    hasPrefix
    hasSuffix
    ;
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkEnableOption =
    what:
    mkOption {
      type = types.bool;
      default = false;
      description = "Whether to enable ${what}.";
    };
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };
  optionals = cond: list: if cond then list else [ ];
  optionalString = cond: s: if cond then s else "";
  concatMapStrings = f: list: concatStringsSep "" (map f list);
  optionalAttrs = cond: attrs: if cond then attrs else { };
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: attrs: listToAttrs (map (k: f k attrs.${k}) (attrNames attrs));
  inherit listToAttrs concatStringsSep;
  escapeShellArg = s: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
  count = length;
}
