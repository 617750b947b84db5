# shellcheck shell=bash
# Checks that an installed agent comes with its manual page and its shell completions, in any
# package form (scripts/checks/packages.sh, scripts/checks/nix.sh). Sourced.

# manuals_installed ROOT PREFIX NAME SECTION ZSH_DIR: print what is missing or broken for the
# binary NAME installed under ROOT/PREFIX (PREFIX: usr, or empty for a Nix store path), zsh
# completions expected in ROOT/ZSH_DIR; return 1 if anything is.
manuals_installed() {
  local root=$1 prefix=$2 name=$3 section=$4 zsh_dir=$5 share ok=0 page warnings
  share=$root/${prefix:+$prefix/}share
  page=$share/man/man$section/$name.$section.gz
  if [ ! -f "$page" ]; then
    echo "$name: no manual page ${page#"$root"}"
    ok=1
  else
    # man -l renders the page; groff's and man's warnings (line breaking, bad requests) fail it.
    warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
    if [ -n "$warnings" ]; then
      echo "$name: man --warnings -l ${page#"$root"}: $warnings"
      ok=1
    fi
    local text
    text=$(MANWIDTH=80 man -l "$page" 2>/dev/null)
    for heading in NAME SYNOPSIS OPTIONS "EXIT STATUS" FILES; do
      grep -qx "$heading" <<<"$text" || { echo "$name: its manual page has no $heading section"; ok=1; }
    done
    if [ "$section" = 8 ]; then
      grep -qx UNITS <<<"$text" || { echo "$name: its manual page names no unit"; ok=1; }
    fi
  fi
  local bash_c=$share/bash-completion/completions/$name
  if [ ! -f "$bash_c" ]; then
    echo "$name: no bash completion ${bash_c#"$root"}"
    ok=1
  elif ! bash -n "$bash_c" || ! grep -q "complete .* $name\$" "$bash_c"; then
    echo "$name: ${bash_c#"$root"} is not a bash completion for $name"
    ok=1
  fi
  local zsh_c=$root/$zsh_dir/_$name
  if [ ! -f "$zsh_c" ]; then
    echo "$name: no zsh completion ${zsh_c#"$root"}"
    ok=1
  elif [ "$(head -n1 "$zsh_c")" != "#compdef $name" ]; then
    echo "$name: ${zsh_c#"$root"} does not start with #compdef $name"
    ok=1
  fi
  local fish_c=$share/fish/vendor_completions.d/$name.fish
  if [ ! -f "$fish_c" ]; then
    echo "$name: no fish completion ${fish_c#"$root"}"
    ok=1
  elif ! grep -q "^complete -c $name " "$fish_c"; then
    echo "$name: ${fish_c#"$root"} is not a fish completion for $name"
    ok=1
  fi
  return "$ok"
}
