"""Time from a labeling key press to the next pair painted on screen, in Chromium.

    .venv/bin/python bench/labeling_swap.py [--decisions 60] [--think-ms 400]

Builds a throwaway project state in a temporary folder (SQLite, media with 400x533 JPEGs, one
stylist, open pairs), starts the development server on it, and drives /pairs/label/ with
Playwright and Debian's Chromium: press → , wait for the next pair's images to be decoded and
painted (static/js/labeling.js records data-swap-ms), pause --think-ms, repeat. The target of
issue 4 is 100 ms. Prints one JSON line: decisions, p50_ms, p95_ms, max_ms, waits (decisions that
found no prefetched pair and had to wait for the server). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(n_pairs: int) -> None:
    """Products with real JPEGs and open pairs in the temporary database."""
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from PIL import Image, ImageDraw

    from curation.accounts.services import user_create_with_role
    from curation.catalog.models import Category, Product
    from curation.pairs.models import CandidatePair

    call_command("migrate", verbosity=0)
    root = Category.objects.create(name="Apparel", path="Apparel", level=0)
    groups = [Category.objects.create(name=n, parent=root, level=1, path=f"Apparel > {n}") for n in ("Topwear", "Bottomwear")]
    products = []
    for i in range(n_pairs + 1):
        img = Image.new("RGB", (400, 533), (250, 250, 250))
        ImageDraw.Draw(img).rectangle([60, 60, 340, 470], fill=((i * 37) % 255, (i * 91) % 255, (i * 53) % 255))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        p = Product(sku=f"S{i:05d}", title=f"Swap product {i}", brand="Bench", category=groups[i % 2], colour="Mixed")
        p.image.save(f"S{i:05d}.jpg", ContentFile(buf.getvalue()), save=False)
        p.save()
        products.append(p)
    for i in range(n_pairs):
        a, b = sorted((products[i].pk, products[i + 1].pk))
        CandidatePair.objects.create(a_id=a, b_id=b, source="exploration", priority=n_pairs - i)
    user_create_with_role(username="swap-stylist", password="swap-password-1", role="stylist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=60)
    parser.add_argument("--think-ms", type=int, default=400, help="pause after each pair is shown (a stylist looks at it)")
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        sys.exit(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")

    tmp = Path(tempfile.mkdtemp(prefix="labeling-swap-"))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="curation.settings", VAR_DIR=str(tmp), DEBUG="1", LOG_LEVEL="WARNING")
    env["DATABASE_URL"] = f"sqlite:///{tmp / 'db.sqlite3'}"
    env.pop("MEDIA_ROOT", None)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    log(f"preparing {args.decisions + 5} pairs in {tmp}")
    prepare(args.decisions + 5)

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the development server did not start; see {tmp / 'server.log'}")
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        swaps: list[float] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/accounts/login/")
            page.fill("input[name=username]", "swap-stylist")
            page.fill("input[name=password]", "swap-password-1")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            page.goto(f"{base}/pairs/label/")
            page.wait_for_selector('#labeler[data-state="ready"]')
            for i in range(args.decisions):
                time.sleep(args.think_ms / 1000)
                page.keyboard.press("ArrowRight")
                # Each decision ends in a swap to the prefetched pair, or (no prefetch) in a wait.
                page.wait_for_function(
                    "n => { const d = document.getElementById('labeler').dataset;"
                    " return Number(d.swaps || 0) + Number(d.waits || 0) >= n && d.state === 'ready'; }",
                    arg=i + 1,
                    timeout=15_000,
                )
                data = page.evaluate("() => Object.assign({}, document.getElementById('labeler').dataset)")
                if int(data.get("swaps", 0)) > len(swaps):
                    swaps.append(float(data["swapMs"]))
                if (i + 1) % 10 == 0:
                    log(f"{i + 1}/{args.decisions} decisions")
            waits = int(page.evaluate("() => Number(document.getElementById('labeler').dataset.waits || 0)"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    swaps.sort()
    print(
        json.dumps(
            {
                "bench": "labeling_swap",
                "decisions": args.decisions,
                "think_ms": args.think_ms,
                "swaps": len(swaps),
                "p50_ms": round(statistics.median(swaps), 1),
                "p95_ms": round(swaps[int(0.95 * (len(swaps) - 1))], 1),
                "max_ms": round(swaps[-1], 1),
                "waits": waits,
                "target_ms": 100,
            }
        )
    )


if __name__ == "__main__":
    main()
