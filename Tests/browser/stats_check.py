#!/usr/bin/env python3
"""Open the director's live stats page in headless Chromium, phone-sized, and report what it shows.

Prints one JSON line when the page shows its real servers ({"ready": [{service, address, state, weight}], "overflow"}),
then waits for GO_FILE, and prints how long the page took to show SERVER as down after it appeared
({"downAfter": seconds, "errors": [...]}).

usage: stats_check.py URL GO_FILE SERVER
"""
import json
import os
import sys
import time

import chromium

ROWS = """
return [...document.querySelectorAll('section[data-service] tr[data-server]')].map(row => ({
  service: row.closest('section').dataset.service,
  address: row.dataset.server,
  state: row.querySelector('[data-field=state]').textContent,
  weight: Number(row.querySelector('[data-field=weight]').textContent),
}));
"""


def main() -> int:
    url, go_file, server = sys.argv[1], sys.argv[2], sys.argv[3]
    driver = chromium.start("--window-size=390,844")
    try:
        driver.set_page_load_timeout(20)
        driver.get(url)
        deadline = time.time() + 20
        rows = []
        while time.time() < deadline:
            rows = driver.execute_script(ROWS)
            if rows:
                break
            time.sleep(0.05)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth;")
        print(json.dumps({"ready": rows, "overflow": overflow, "title": driver.title}), flush=True)
        deadline = time.time() + 30
        while not os.path.exists(go_file) and time.time() < deadline:
            time.sleep(0.02)
        start = time.time()
        down_after = None
        while time.time() < start + 10:
            states = [r["state"] for r in driver.execute_script(ROWS) if r["address"] == server]
            if states and states[0] == "down":
                down_after = time.time() - start
                break
            time.sleep(0.05)
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        print(json.dumps({"downAfter": down_after, "errors": errors}), flush=True)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
