# OpenSSH public key lines checked as hcloud-ssh-keys checks them (builtins only): one line of
# printable text `TYPE BASE64 [COMMENT]`, a known type, canonical base64 whose decoded blob
# embeds the same type and has that type's shape (ed25519: a 32-byte key; RSA: positive
# exponent, modulus of at least 1024 bits; ECDSA: the curve's name and an uncompressed point;
# security keys: an application string), nothing after it. Options (command=, from=, ...) are
# refused. `check line` gives { key = canonical line or null; problem = null or text; }.
let
  inherit (builtins)
    elem
    elemAt
    foldl'
    genList
    head
    length
    listToAttrs
    match
    stringLength
    substring
    ;

  chars = s: genList (i: substring i 1 s) (stringLength s);
  alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  sixBits = listToAttrs (
    genList (i: {
      name = substring i 1 alphabet;
      value = i;
    }) 64
  );
  # ASCII codes of printable characters (key type names, curve names).
  printable = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
  codes = listToAttrs (
    genList (i: {
      name = substring i 1 printable;
      value = i + 32;
    }) (stringLength printable)
  );
  bytesOf = s: map (c: codes.${c}) (chars s);
  mod = a: b: a - (a / b) * b;

  types = {
    "ssh-ed25519" = "ed25519";
    "ssh-rsa" = "rsa";
    "ecdsa-sha2-nistp256" = "ecdsa";
    "ecdsa-sha2-nistp384" = "ecdsa";
    "ecdsa-sha2-nistp521" = "ecdsa";
    "sk-ssh-ed25519@openssh.com" = "sk-ed25519";
    "sk-ecdsa-sha2-nistp256@openssh.com" = "sk-ecdsa";
  };
  curves = {
    "ecdsa-sha2-nistp256" = {
      name = "nistp256";
      point = 65;
    };
    "ecdsa-sha2-nistp384" = {
      name = "nistp384";
      point = 97;
    };
    "ecdsa-sha2-nistp521" = {
      name = "nistp521";
      point = 133;
    };
    "sk-ecdsa-sha2-nistp256@openssh.com" = {
      name = "nistp256";
      point = 65;
    };
  };

  # Canonical, padded base64 (as Rust's base64 STANDARD engine requires) → list of bytes, or null.
  decode =
    s:
    let
      n = stringLength s;
      pad =
        if match ".*==" s != null then
          2
        else if match ".*=" s != null then
          1
        else
          0;
      body = substring 0 (n - pad) s;
      values = map (c: sixBits.${c}) (chars body);
      groups = n / 4;
      at = i: if i < length values then elemAt values i else 0;
      group =
        g:
        let
          v = at (4 * g) * 262144 + at (4 * g + 1) * 4096 + at (4 * g + 2) * 64 + at (4 * g + 3);
          all3 = [
            (v / 65536)
            (mod (v / 256) 256)
            (mod v 256)
          ];
        in
        if g == groups - 1 then genList (i: elemAt all3 i) (3 - pad) else all3;
      # Bits left over in the last character must be zero (canonical encoding).
      lastValue = at (length values - 1);
      trailingZero =
        if pad == 2 then
          mod lastValue 16 == 0
        else if pad == 1 then
          mod lastValue 4 == 0
        else
          true;
    in
    if n == 0 || mod n 4 != 0 || match "[A-Za-z0-9+/]*={0,2}" s == null || !trailingZero then
      null
    else
      builtins.concatLists (genList group groups);

  # SSH wire format: a uint32 length, then that many bytes.
  readString =
    buf: off: field:
    if off + 4 > length buf then
      { error = "it ends before the ${field}"; }
    else
      let
        len = foldl' (acc: i: acc * 256 + elemAt buf (off + i)) 0 (genList (i: i) 4);
        left = length buf - off - 4;
      in
      if len > left then
        { error = "the ${field} claims ${toString len} bytes but only ${toString left} follow"; }
      else
        {
          value = genList (i: elemAt buf (off + 4 + i)) len;
          next = off + 4 + len;
        };

  leadingZeros = b: if b >= 128 then 0 else 1 + leadingZeros (b * 2);
  mpintBits =
    v:
    let
      nonzero = builtins.filter (i: elemAt v i != 0) (genList (i: i) (length v));
    in
    if nonzero == [ ] then
      0
    else
      let
        i = head nonzero;
      in
      (length v - i) * 8 - leadingZeros (elemAt v i);

  # Read fields in order; `checks` is a list of { field; test = value → null or problem; }.
  readFields =
    buf: off: steps:
    if steps == [ ] then
      {
        inherit off;
        error = null;
      }
    else
      let
        step = head steps;
        r = readString buf off step.field;
        problem = if r ? error then r.error else step.test r.value;
      in
      if problem != null then
        {
          error = problem;
          inherit off;
        }
      else
        readFields buf r.next (builtins.tail steps);

  checkBlob =
    type: blob:
    let
      kind = types.${type};
      curve = curves.${type} or null;
      typeStep = {
        field = "key type";
        test = v: if v == bytesOf type then null else "the key data says it is another type than ${type}";
      };
      keyStep = {
        field = "public key";
        test = v: if length v == 32 then null else "the public key is ${toString (length v)} bytes, not 32";
      };
      appStep = {
        field = "application";
        test = v: if v != [ ] then null else "the security key application is empty or not text";
      };
      rsaSteps = [
        {
          field = "exponent";
          test =
            v:
            if v != [ ] && head v >= 128 then
              "a negative number"
            else if mpintBits v == 0 then
              "the exponent is zero"
            else
              null;
        }
        {
          field = "modulus";
          test =
            v:
            if v != [ ] && head v >= 128 then
              "a negative number"
            else if mpintBits v < 1024 then
              "the modulus has ${toString (mpintBits v)} bits, fewer than the 1024 OpenSSH accepts"
            else
              null;
        }
      ];
      ecdsaSteps = [
        {
          field = "curve name";
          test = v: if v == bytesOf curve.name then null else "the curve is not ${curve.name}";
        }
        {
          field = "public point";
          test =
            v:
            if length v == curve.point && head v == 4 then
              null
            else
              "the public point is not an uncompressed ${curve.name} point (${toString (length v)} bytes)";
        }
      ];
      steps =
        [ typeStep ]
        ++ (
          if kind == "ed25519" then
            [ keyStep ]
          else if kind == "sk-ed25519" then
            [
              keyStep
              appStep
            ]
          else if kind == "rsa" then
            rsaSteps
          else if kind == "ecdsa" then
            ecdsaSteps
          else
            ecdsaSteps ++ [ appStep ]
        );
      r = readFields blob 0 steps;
    in
    if r.error != null then
      r.error
    else if r.off != length blob then
      "${toString (length blob - r.off)} unexpected bytes after the key"
    else
      null;

  sep = "[ \t]";
  check =
    line:
    let
      trimmed = match "${sep}*(.*[^ \t])${sep}*" line;
      t = if trimmed == null then "" else head trimmed;
      fields = match "([^ \t]+)${sep}*([^ \t]*)${sep}*(.*)" t;
      type = elemAt fields 0;
      encoded = elemAt fields 1;
      comment = elemAt fields 2;
      blob = decode encoded;
      blobProblem = if blob == null then null else checkBlob type blob;
      words = builtins.filter (w: builtins.isString w && w != "") (builtins.split "[ \t]+" t);
      bad = problem: {
        key = null;
        inherit problem;
      };
    in
    if !(builtins.isString line) then
      bad "it is not text"
    else if match "([^[:cntrl:]]|\t)*" line == null then
      bad "it contains a control character (a newline?); a key must be one line of printable text"
    else if t == "" then
      bad "it is empty"
    else if !(types ? ${type}) then
      (
        if builtins.any (w: types ? ${w}) words then
          bad "it starts with options before the key; options such as command= or from= are not accepted from the metadata"
        else
          bad "\"${substring 0 40 type}\" is not a supported key type"
      )
    else if encoded == "" then
      bad "it has a key type but no key data"
    else if blob == null then
      bad "the key data is not valid base64"
    else if blobProblem != null then
      bad "the ${type} key data is malformed: ${blobProblem}"
    else
      {
        key = "${type} ${encoded}" + (if comment == "" then "" else " ${comment}");
        problem = null;
      };
in
{
  inherit check decode;
  keyTypes = builtins.attrNames types;
}
