"""``python -m reintegration.synth [--size small|full] [city ...]``: generate
the cities (default: all configured), merge the manifest, print timings."""

from __future__ import annotations

import argparse
import json
import time

from ..core.config import list_cities
from ..core.paths import SIZES
from .generate import generate_city, merge_manifests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reintegration.synth", description=__doc__)
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("cities", nargs="*", help="cities to generate (default: all configured)")
    args = ap.parse_args(argv)
    cities = args.cities or list_cities()
    total = time.perf_counter()
    for city in cities:
        t = time.perf_counter()
        manifest = generate_city(city, args.size)
        entries = json.loads(manifest.read_text(encoding="utf-8"))
        clients = next(e["rows"] for e in entries if e["table"] == "clients")
        print(f"{city:>12} {args.size}: {len(entries)} files, {clients} client rows, "
              f"{time.perf_counter() - t:6.1f} s")
    if not args.cities:
        merge_manifests(args.size)
    print(f"{'total':>12} {args.size}: {time.perf_counter() - total:6.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
