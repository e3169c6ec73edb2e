"""convert.sh FN --url URL SIZE: fetch an image, resize it, save ``FN-SIZE.png`` here."""

import argparse
import io
import sys
import urllib.request

from PIL import Image


def main() -> int:
    parser = argparse.ArgumentParser(prog="convert.sh")
    parser.add_argument("fn", choices=["resize"])
    parser.add_argument("--url", required=True)
    parser.add_argument("size", help="a percentage (50%%) or WIDTHxHEIGHT")
    args = parser.parse_args()
    with urllib.request.urlopen(args.url, timeout=60) as response:
        image = Image.open(io.BytesIO(response.read()))
        image.load()
    if args.size.endswith("%"):
        factor = float(args.size[:-1]) / 100.0
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    else:
        width, _, height = args.size.partition("x")
        size = (int(width), int(height or width))
    resized = image.resize(size, Image.LANCZOS)
    name = f"{args.fn}-{args.size.replace('%', '')}.png"
    resized.save(name, format="PNG")
    print(f"{args.url}: {image.width}x{image.height} -> {name}: {size[0]}x{size[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
