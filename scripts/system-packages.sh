#!/usr/bin/env bash
# Debian packages Tongbao needs, installed only when missing: espeak-ng for speech
# (pyttsx3's engine); with "test", Chromium and its driver for the browser tests, npm for
# axe-core (package.json), and Chinese fonts so screenshots of the console show its text.
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
if [ "${1:-}" = "test" ]; then
    command -v chromium >/dev/null || missing+=(chromium chromium-driver)
    command -v npm >/dev/null || missing+=(npm)
    fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
# Another apt run (a second checkout installing at the same moment, unattended upgrades)
# holds dpkg's lock for a while: wait for it rather than fail the install.
wait_lock=(-o DPkg::Lock::Timeout=600)
$sudo_cmd apt-get "${wait_lock[@]}" update -qq
$sudo_cmd apt-get "${wait_lock[@]}" install -y -qq --no-install-recommends "${missing[@]}"
