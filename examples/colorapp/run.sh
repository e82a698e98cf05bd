#!/usr/bin/env bash
# The color app on a local mesh: builds meshd, the test application and this example, then
# runs it as root (network namespaces, veth, a bridge, iptables). Pass --hold to keep the
# mesh up until Enter is pressed.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --bin meshd --example testapp --example colorapp
if [ "$(id -u)" -ne 0 ]; then
    exec sudo -E env "PATH=$PATH" target/debug/examples/colorapp "$@"
fi
exec target/debug/examples/colorapp "$@"
