#!/usr/bin/env python3
"""Open a swiftvs bench HTML report in headless Chromium, take a screenshot, and print what the page holds as JSON:
the number of SVG charts and drawn series, and every console message of level SEVERE (errors).

usage: report_check.py REPORT.html SCREENSHOT.png
"""
import json
import pathlib
import sys

import chromium


def main() -> int:
    report, screenshot = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2]
    driver = chromium.start("--window-size=1200,2400")
    try:
        driver.set_page_load_timeout(20)
        driver.get(report.as_uri())
        found = driver.execute_script("""
            const charts = [...document.querySelectorAll('svg.chart')];
            return {
              title: document.title,
              charts: charts.length,
              chartIds: charts.map(c => c.id),
              series: document.querySelectorAll('svg.chart polyline.series').length,
              drawnSeries: [...document.querySelectorAll('svg.chart polyline.series')]
                  .filter(p => p.points.length >= 2).length,
              faultMarkers: document.querySelectorAll('svg.chart line.fault').length,
              replicaPoints: Math.max(0, ...[...document.querySelectorAll('svg.chart[id^=replicas] polyline.series')]
                  .map(p => p.points.length)),
              chartHeight: charts.length ? charts[0].getBoundingClientRect().height : 0,
            };
        """)
        driver.save_screenshot(screenshot)
        found["errors"] = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
