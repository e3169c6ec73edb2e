#!/bin/sh
# convert.sh FN --url URL SIZE: fetch the image at URL, apply FN (resize) with SIZE (50% or
# WxH); write <stem>-resize.<ext>, a STAC item <stem>-resize.json and catalog.json into the
# working directory, as the eoepca/convert image does (there with ImageMagick).
set -eu
exec python3 /opt/convert/convert.py "$@"
