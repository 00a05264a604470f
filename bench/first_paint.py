#!/usr/bin/env python3
"""First paint of the dashboard in headless Chromium (issue 16, speed), driven through
chromedriver's WebDriver API with the standard library only.

    bench/first_paint.py BASE_URL TOKEN ORG [RUNS]

Each run opens `BASE_URL/#/` in a fresh load with the browser cache disabled and prints:
- fcp: the browser's first-contentful-paint (the page's frame, before any API answer);
- tiles: when the nine "last 30 days" tiles hold the API's numbers and the frame after them
  was painted (the figure a user waits for);
- bytes: what the page, its assets and its API calls transferred.
The closing line gives the median of each. Exits non-zero if the tiles never appear.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

# Installed before the app's script runs: records when the tiles hold numbers, then waits one
# frame so the figure includes painting them.
OBSERVER = r"""
(() => {
  const done = () => {
    const values = document.querySelectorAll('.tiles .tile .value');
    return values.length >= 9 && Array.from(values).every(v => /\d/.test(v.textContent));
  };
  const observer = new MutationObserver(() => {
    if (window.__tilesAt === undefined && done()) {
      observer.disconnect();
      window.__tilesAt = -1;
      requestAnimationFrame(() => requestAnimationFrame(() => { window.__tilesAt = performance.now(); }));
    }
  });
  observer.observe(document, { childList: true, subtree: true, characterData: true });
})();
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null").get("value")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    base, token, org = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    driver_bin = os.environ.get("HERALD_CHROMEDRIVER") or shutil.which("chromedriver")
    if not driver_bin:
        sys.exit("chromedriver is missing: apt-get install -y chromium chromium-driver")
    port = free_port()
    driver = subprocess.Popen([driver_bin, f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wd = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if call(wd, "GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"]}}}}
        session = call(wd, "POST", "/session", caps)["sessionId"]
        s = f"/session/{session}"
        cdp = lambda cmd, params=None: call(wd, "POST", f"{s}/goog/cdp/execute",
                                            {"cmd": cmd, "params": params or {}})
        run = lambda script, *args: call(wd, "POST", f"{s}/execute/sync",
                                         {"script": script, "args": list(args)})
        # Sign in as the page does: the token and org in the tab's sessionStorage.
        call(wd, "POST", f"{s}/url", {"url": base + "/"})
        run("sessionStorage.setItem('herald.token', arguments[0]);"
            "sessionStorage.setItem('herald.org', arguments[1]);", token, org)
        cdp("Network.enable")
        cdp("Network.setCacheDisabled", {"cacheDisabled": True})
        cdp("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
        fcps, tiles, sizes = [], [], []
        for i in range(runs + 1):
            call(wd, "POST", f"{s}/url", {"url": "about:blank"})
            call(wd, "POST", f"{s}/url", {"url": base + "/#/"})
            deadline = time.time() + 30
            while True:
                at = run("return window.__tilesAt === undefined || window.__tilesAt < 0 ? null : window.__tilesAt;")
                if at is not None:
                    break
                if time.time() > deadline:
                    text = run("return document.body.innerText.slice(0, 400);")
                    sys.exit(f"the tiles did not appear within 30 s; the page shows: {text!r}")
                time.sleep(0.02)
            fcp = run("const e = performance.getEntriesByName('first-contentful-paint')[0];"
                      "return e ? e.startTime : null;")
            size = run("return performance.getEntriesByType('navigation').concat("
                       "performance.getEntriesByType('resource'))"
                       ".reduce((n, e) => n + (e.transferSize || 0), 0);")
            label = "warm-up" if i == 0 else f"run {i}"
            print(f"{label}: fcp {fcp:.0f} ms, tiles {at:.0f} ms, {size / 1024:.1f} KiB transferred")
            if i > 0:
                fcps.append(fcp)
                tiles.append(at)
                sizes.append(size)
        print(f"median of {runs}: fcp {statistics.median(fcps):.0f} ms, tiles "
              f"{statistics.median(tiles):.0f} ms (max {max(tiles):.0f} ms), "
              f"{statistics.median(sizes) / 1024:.1f} KiB transferred")
        call(wd, "DELETE", s)
    finally:
        driver.kill()
        driver.wait()


if __name__ == "__main__":
    main()
