"""Headless Chromium under Selenium, as every browser check here starts it (Debian's chromium and chromedriver)."""
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def start(*flags: str) -> webdriver.Chrome:
    """A headless Chromium with the browser console kept (driver.get_log("browser")); `flags` add to the usual."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", *flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
