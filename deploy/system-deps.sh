#!/usr/bin/env bash
# Installs the Debian packages tunnelpi needs, only those missing (idempotent).
# OCR: Tesseract with the label languages; fonts for the simulator's labels (Latin + CJK);
# shared libraries OpenCV expects on a minimal image.
set -euo pipefail
PACKAGES=(
  tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-fra tesseract-ocr-spa
  tesseract-ocr-ita tesseract-ocr-por tesseract-ocr-jpn tesseract-ocr-kor
  fonts-dejavu-core fonts-liberation fonts-noto-cjk
  libgl1 libglib2.0-0
  chromium
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages to install: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root (or sudo) to apt-get install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
