#!/bin/sh
# Install the Debian packages the test run needs, only when missing. Idempotent and quiet.
#   chromium, chromium-driver  browser tests (Playwright cannot download its own browsers here;
#                              the tests point it at /usr/bin/chromium)
#   prometheus                 promtool: `promtool check rules` / `promtool test rules` on deploy/prometheus
#   wrk                        the HTTP load generator of `carepath bench`
# Only the binaries are used: no Prometheus server is started.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
[ -x /usr/bin/promtool ] || missing="$missing prometheus"
[ -x /usr/bin/wrk ] || missing="$missing wrk"
if [ -z "$missing" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
for binary in chromium chromedriver promtool wrk; do
    [ -x "/usr/bin/$binary" ] || { echo "install-debian-tools: /usr/bin/$binary still missing" >&2; exit 1; }
done
