#!/usr/bin/env bash
# Removes the egress rules `devenv-gw serve` installed for one instance prefix: the jumps
# from INPUT and DOCKER-USER and the chain DEVENV-EG-PREFIX. serve keeps its rules when it
# stops (workspaces stay protected); benchmarks and throw-away instances call this.
#   scripts/remove-egress-rules.sh PREFIX
set -uo pipefail
prefix=${1:?usage: scripts/remove-egress-rules.sh PREFIX}
chain="DEVENV-EG-$prefix"
command -v iptables >/dev/null || exit 0
for entry in INPUT DOCKER-USER; do
  iptables -w 5 -S "$entry" 2>/dev/null | grep -- "-j $chain\$" | while read -r _ rule; do
    # shellcheck disable=SC2086 # the rule's words, as iptables printed them
    iptables -w 5 -D $rule
  done
done
iptables -w 5 -F "$chain" 2>/dev/null
iptables -w 5 -X "$chain" 2>/dev/null
exit 0
