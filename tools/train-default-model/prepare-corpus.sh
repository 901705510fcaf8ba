#!/usr/bin/env bash
# Builds corpus.txt (and the committed corpus.txt.xz) for the default model from Debian's
# King James Bible packages.
#
# Source: Debian package `bible-kjv-text` (text data, /usr/lib/bible.data, a compressed
# random-access format) read through the `bible` program of its companion package
# `bible-kjv` (same source package; `bible-kjv-text` Recommends it and apt installs it by
# default). Both are version 4.38 on Debian 12 (bookworm). The KJV text is in the public
# domain (see /usr/share/doc/bible-kjv-text/copyright).
#
# Preprocessing (deliberately minimal):
#   1. `bible -f Gen1:1-Rev22:21` dumps all 31,102 verses, one per line, each preceded by
#      its reference ("Ge1:1 In the beginning God created ...").
#   2. the leading reference (first space-delimited field) is stripped: the model sees plain
#      verse text, one verse per line, in canonical order; no book or chapter markers.
#   3. runs of spaces are collapsed to one and trailing spaces removed (the source has two
#      double spaces and one trailing space).
# The result is pure ASCII, 31,102 lines, LF line endings, ending with a newline.
#
# usage: tools/train-default-model/prepare-corpus.sh   (as root, or with the packages installed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! dpkg -s bible-kjv-text >/dev/null 2>&1 || ! command -v bible >/dev/null 2>&1; then
  apt-get install -y bible-kjv-text bible-kjv
fi
text_version="$(dpkg-query -W -f='${Version}' bible-kjv-text)"
prog_version="$(dpkg-query -W -f='${Version}' bible-kjv)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# -p /usr/lib: read the packaged data file, never a bible.data lying in the current directory.
(cd "$work" && bible -f -p /usr/lib Gen1:1-Rev22:21) >"$work/raw.txt"
sed -E -e 's/^[^ ]+ //' -e 's/ +/ /g' -e 's/ +$//' "$work/raw.txt" >"$here/corpus.txt"
lines="$(wc -l <"$here/corpus.txt")"
if [ "$lines" -ne 31102 ]; then
  echo "prepare-corpus: expected 31102 verses, got $lines" >&2
  exit 1
fi
if LC_ALL=C grep -q '[^ -~]' "$here/corpus.txt"; then
  echo "prepare-corpus: corpus is not plain printable ASCII" >&2
  exit 1
fi
xz -9e -T1 -c "$here/corpus.txt" >"$here/corpus.txt.xz"
cat >"$here/corpus.source.txt" <<INFO
source: Debian bible-kjv-text $text_version (data /usr/lib/bible.data sha256 $(sha256sum /usr/lib/bible.data | cut -d' ' -f1)), decoded by bible-kjv $prog_version: bible -f -p /usr/lib Gen1:1-Rev22:21
preprocessing: strip the leading verse reference; collapse runs of spaces; strip trailing spaces; one verse per line
corpus.txt: $lines lines, $(wc -c <"$here/corpus.txt") bytes, sha256 $(sha256sum "$here/corpus.txt" | cut -d' ' -f1)
INFO
cat "$here/corpus.source.txt"
