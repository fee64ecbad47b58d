"""Take the README's picture of the review station, in headless Chromium, from a fresh ``digits up``.

Drops the sample cheque and form (``digits samples``) into their layout
folders, with every row sent to review, logs in as the terminal says, and
saves the station showing the first item:

    python -m bench.screenshot --out docs/review-station.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.drop import free_port
from bench.review import wait_for_login


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/review-station.png"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="digits-screenshot-"))
    port = free_port()
    env = dict(os.environ, DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DIGITS_REVIEW_PORT=str(port),
               DIGITS_REVIEW_THRESHOLD="0.99999", DIGITS_METRICS_PORT="0")  # fmt: skip
    subprocess.run([sys.executable, "-m", "digits.cli", "samples", str(root / "samples")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    log = open(root / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "digits.cli", "up", "--workers", "1"], cwd=root, env=env,
                          stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        password = wait_for_login(root)
        for layout, name in (("cheque", "cheque.png"), ("form", "form.tif")):
            (root / "inbox" / layout).mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "samples" / name, root / "inbox" / layout / name)
        time.sleep(8)
        _shoot(f"http://127.0.0.1:{port}", password, args.out)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
    print(args.out)


def _shoot(station: str, password: str, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1100,720",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(station)
        driver.find_element(By.ID, "username").send_keys("admin")
        driver.find_element(By.ID, "password").send_keys(password, Keys.ENTER)
        time.sleep(2)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
