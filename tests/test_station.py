"""The review station over real HTTP: the JSON API, leases between reviewers, the blind audit, and its security."""

from __future__ import annotations

import csv
import io
import threading
import time
from pathlib import Path

import httpx
import pytest

from digits.settings import Settings
from tests.conftest import LEASE_SECONDS, PASSWORD, digits_command

pytestmark = pytest.mark.processes


def drain(client: httpx.Client, kind: str | None = None) -> list[dict]:
    """Key every item the client is given (the machine's reading, or a 1 where it is blind) until none is left."""
    keyed = []
    while (answer := client.get("/api/next", params={"kind": kind} if kind else None)).status_code == 200:
        item = answer.json()
        decided = client.post(f"/api/items/{item['id']}", json={"digits": item["digits"] or "1"})
        assert decided.status_code == 200, decided.text
        keyed.append(item)
    assert answer.status_code == 204
    return keyed


def test_every_route_but_login_wants_a_session_and_every_change_a_csrf_token(fresh):
    rows = fresh.submit(["42", "7"], "guard")
    assert {row["status"] for row in rows} <= {"review", "ok"}
    anonymous = httpx.Client(base_url=fresh.url)
    for method, path in [("GET", "/"), ("GET", "/group"), ("GET", "/stats"), ("GET", "/api/next"),
                         ("GET", "/api/stats"), ("GET", "/api/group"), ("POST", "/api/items/x"),
                         ("POST", "/api/items/x/undo"), ("POST", "/api/items/x/skip"), ("GET", "/api/items/x/image"),
                         ("POST", "/api/group"), ("POST", "/api/logout")]:  # fmt: skip
        assert anonymous.request(method, path).status_code == 401, path
    ann = fresh.reviewer("ann")
    item = ann.get("/api/next").json()
    no_token = httpx.Client(base_url=fresh.url, cookies=ann.cookies)
    assert no_token.post(f"/api/items/{item['id']}", json={"digits": "42"}).status_code == 403
    wrong_token = httpx.Client(base_url=fresh.url, cookies=ann.cookies, headers={"X-CSRF-Token": "guess"})
    assert wrong_token.post(f"/api/items/{item['id']}", json={"digits": "42"}).status_code == 403
    assert ann.post(f"/api/items/{item['id']}", json={"digits": "4x"}).status_code == 400
    assert ann.post(f"/api/items/{item['id']}", json={"digits": item["digits"]}).json()["verdict"] == "confirmed"
    assert ann.post(f"/api/items/{item['id']}", json={"digits": "1"}).status_code == 409, "decided already"


def test_a_login_answers_only_the_right_password_and_answers_wrong_ones_slowly(fresh):
    fresh.reviewer("bea")
    client = httpx.Client(base_url=fresh.url, timeout=30)
    started = time.monotonic()
    assert client.post("/api/login", json={"username": "bea", "password": "not it"}).status_code == 401
    assert client.post("/api/login", json={"username": "nobody", "password": PASSWORD}).status_code == 401
    assert time.monotonic() - started >= 1.5, "failed logins are slowed down (0.5 s, then 1 s)"
    answer = client.post("/api/login", json={"username": "bea", "password": PASSWORD})
    assert answer.status_code == 200 and answer.json()["csrf"]
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie


def test_pictures_are_never_cached_and_no_request_names_a_file(fresh):
    fresh.submit(["305"], "pictures")
    ann = fresh.reviewer("ann")
    item = ann.get("/api/next").json()
    for url in (item["image"], item["page_image"]):
        answer = ann.get(url)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert answer.headers["cache-control"] == "no-store" and answer.content.startswith(b"\x89PNG")
    for sneaky in ("/api/items/..%2F..%2Fetc%2Fpasswd/image", "/api/items/%2Fetc%2Fpasswd/page", "/static/../app.py"):
        answer = ann.get(sneaky)
        assert answer.status_code == 404 and b"root:" not in answer.content, sneaky
    page = ann.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_two_reviewers_at_once_never_get_the_same_item(fresh):
    rows = fresh.submit([str(n) for n in range(10, 40)], "pair")
    ann, bob = fresh.reviewer("ann"), fresh.reviewer("bob")
    keyed: dict[str, list[dict]] = {}
    threads = [threading.Thread(target=lambda c, n: keyed.__setitem__(n, drain(c)), args=(c, n)) for c, n in
               ((ann, "ann"), (bob, "bob"))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    ids = [item["id"] for items in keyed.values() for item in items]
    assert len(ids) == len(set(ids)) == len(rows), "each row served exactly once"
    assert keyed["ann"] and keyed["bob"], "both reviewers worked"
    stats = ann.get("/api/stats").json()
    assert stats["decided"] == len(rows) and stats["pending"] == 0
    assert stats["per_reviewer"] == {"ann": len(keyed["ann"]), "bob": len(keyed["bob"])}


def test_a_lapsed_lease_returns_its_item_and_its_holder_can_no_longer_decide_it(fresh):
    fresh.submit(["58"], "lapse")
    ann, bob = fresh.reviewer("ann"), fresh.reviewer("bob")
    held = ann.get("/api/next").json()
    assert bob.get("/api/next").status_code == 204, "held by ann"
    time.sleep(LEASE_SECONDS + 1.5)  # ann closed her tab
    again = bob.get("/api/next").json()
    assert again["id"] == held["id"]
    assert ann.post(f"/api/items/{held['id']}", json={"digits": "58"}).status_code == 409
    assert bob.post(f"/api/items/{held['id']}", json={"digits": "58"}).status_code == 200


def test_audit_items_come_blind_and_measure_the_error_rate_among_ok_rows(fresh):
    rows = fresh.submit(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], "audit")
    ok = [row for row in rows if row["status"] == "ok"]
    assert ok, "sure single digits are ok (and drawn: every ok row is audited here)"
    ann = fresh.reviewer("ann")
    seen = []
    while (answer := ann.get("/api/next", params={"kind": "audit"})).status_code == 200:
        item = answer.json()
        assert item["kind"] == "audit" and item["digits"] is None and item["confidences"] is None, "blind"
        truth = item["source"].split("-")[-1].removesuffix(".png")
        wrong = "9" if len(seen) == 0 and truth != "9" else truth  # one reading keyed as a machine error
        ann.post(f"/api/items/{item['id']}", json={"digits": wrong})
        seen.append(item)
    assert len(seen) == len(ok)
    audit = ann.get("/api/stats").json()["audit"]
    assert audit["checked"] == len(ok) and audit["wrong"] == 1
    low, high = audit["ci95"]
    assert audit["error_rate"] == pytest.approx(1 / len(ok))
    assert low <= audit["error_rate"] <= high and high - low > 0.1, "few checks, a wide interval"


def test_digits_export_gives_every_row_with_the_persons_reading(fresh):
    rows = fresh.submit(["314", "27"], "export")
    keyed = drain(fresh.reviewer("ann"))
    assert len(keyed) == len(rows)
    done = digits_command(fresh.stack, "export", "--job", rows[0]["job_id"])
    assert done.returncode == 0, done.stderr
    exported = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [row["source"] for row in exported] == [row["source"] for row in rows]
    assert list(exported[0])[-3:] == ["machine_digits", "reviewer", "reviewed_at"]
    assert all(row["status"] == "verified" and row["reviewer"] == "ann" for row in exported)
    assert [row["machine_digits"] for row in exported] == [row["digits"] for row in rows]


def test_the_station_listens_on_this_machine_only_unless_told(fresh):
    assert Settings().review_host == "127.0.0.1"
    port = int(fresh.url.rsplit(":", 1)[1])
    listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    local = [fields[1] for fields in listening if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port]
    assert local == [f"0100007F:{port:04X}"], "bound to 127.0.0.1 alone"


def test_reviewers_are_managed_from_the_command_line(fresh):
    added = digits_command(fresh.stack, "users", "add", "cli-reviewer", "--password-stdin", stdin="long enough\n")
    assert added.returncode == 0, added.stderr
    assert "cli-reviewer" in digits_command(fresh.stack, "users", "list").stdout.split()
    client = httpx.Client(base_url=fresh.url)
    assert client.post("/api/login", json={"username": "cli-reviewer", "password": "long enough"}).status_code == 200
    assert digits_command(fresh.stack, "users", "remove", "cli-reviewer").returncode == 0
    assert client.get("/api/stats").status_code == 401, "a removed reviewer's session ends"
    short = digits_command(fresh.stack, "users", "add", "x", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
