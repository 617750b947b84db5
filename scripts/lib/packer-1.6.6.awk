# Reduce a template to what Debian's packer 1.6.6 (built-in hcloud builder) understands: drop
# the packer {} block (required_plugins), the variable validation blocks (1.6.6 evaluates them
# without functions) and the plugin-only options upgrade_server_type, server_labels and
# ssh_keys_labels. Everything else stays as written. Used by scripts/checks/images.sh (packer
# validate) and by the simulator's image builds (packer build).
#   awk -f scripts/lib/packer-1.6.6.awk packer/debian.pkr.hcl > reduced.pkr.hcl
/^packer \{/ { skip = 1; depth = 0 }
/^[[:space:]]*validation \{/ { skip = 1; depth = 0 }
skip { depth += gsub(/\{/, "{"); depth -= gsub(/\}/, "}"); if (depth <= 0) skip = 0; next }
/^[[:space:]]*(upgrade_server_type|server_labels|ssh_keys_labels)[[:space:]]*=/ { next }
{ print }
