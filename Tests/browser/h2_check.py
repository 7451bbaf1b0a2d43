#!/usr/bin/env python3
"""Open URL in headless Chromium (certificate errors ignored: the test's own CA) and report, as one JSON line, the
protocol the page came by, its text, and what 20 parallel fetches of the same origin and an upload of 100 kB to
UPLOAD_PATH (echoed back) gave.

usage: h2_check.py URL UPLOAD_PATH
"""
import json
import sys

import chromium

FETCHES = """
const done = arguments[arguments.length - 1];
const gets = Array.from({length: 20}, () => fetch(location.href).then(r => r.text()));
const body = 'x'.repeat(100000);
const upload = fetch(arguments[0], {method: 'POST', body}).then(r => r.text()).then(t => t === body);
const timing = () => performance.getEntriesByType('resource').map(e => e.nextHopProtocol);
Promise.all([Promise.all(gets), upload])
  .then(([texts, echoed]) => done({texts, echoed, protocols: timing()}))
  .catch(e => done({error: String(e)}));
"""


def main() -> int:
    url, upload_path = sys.argv[1], sys.argv[2]
    driver = chromium.start("--ignore-certificate-errors")
    try:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(20)
        driver.get(url)
        protocol = driver.execute_script("return performance.getEntriesByType('navigation')[0].nextHopProtocol")
        text = driver.execute_script("return document.body.innerText")
        result = driver.execute_async_script(FETCHES, upload_path)
        print(json.dumps({"protocol": protocol, "text": text, **result}))
        return 0
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
