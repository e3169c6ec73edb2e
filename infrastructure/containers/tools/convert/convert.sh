#!/bin/sh
# convert.sh FN --url URL SIZE: fetch the image at URL, apply FN (e.g. resize) with SIZE
# (e.g. 50%), write <FN>-<SIZE without %>.png into the working directory. Stand-in for
# the eoepca/convert image: Python with Pillow does what ImageMagick does there.
set -eu
exec python3 /opt/convert/convert.py "$@"
