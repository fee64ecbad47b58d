"""The review station over real HTTP: the JSON API, leases between reviewers, the blind audit, and its security."""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from digits import reviewers
from digits.reviews import decided, id_of
from digits.settings import Settings
from review.app import create_app
from review.throttle import ADDRESS_FAILURES
from tests.conftest import LEASE_SECONDS, PASSWORD, digits_command, free_port, wait_until

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


def timed(action, *args) -> float:
    """Seconds ``action(*args)`` took."""
    started = time.monotonic()
    action(*args)
    return time.monotonic() - started


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


def test_a_login_answers_only_the_right_password_in_json_and_a_session_ends_with_logout_or_a_new_password(fresh):
    fresh.reviewer("bea")
    client = httpx.Client(base_url=fresh.url, timeout=30)
    assert client.post("/api/login", json={"username": "bea", "password": "not it"}).status_code == 401
    assert client.post("/api/login", json={"username": "nobody", "password": PASSWORD}).status_code == 401
    form = client.post("/api/login", content=f'{{"username": "bea", "password": "{PASSWORD}"}}',
                       headers={"Content-Type": "text/plain"})  # fmt: skip
    assert form.status_code == 415, "an ordinary form on another site cannot log anyone in"
    answer = client.post("/api/login", json={"username": "bea", "password": PASSWORD})
    assert answer.status_code == 200 and answer.json()["csrf"]
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    saved = dict(client.cookies)
    assert client.post("/api/logout", headers={"X-CSRF-Token": answer.json()["csrf"]}, json={}).status_code == 200
    assert httpx.get(fresh.url + "/api/stats", cookies=saved).status_code == 401, "a saved cookie is dead after logout"

    again = fresh.reviewer("bea")
    assert again.get("/api/stats").status_code == 200
    reviewers.add(fresh.redis, "bea", "a new password")
    assert again.get("/api/stats").status_code == 401, "a new password ends the sessions of the old one"


def test_decisions_racing_on_one_item_give_one_200_and_the_export_agrees_with_redis(fresh):
    rows = fresh.submit([str(n) for n in range(20, 40)], "race")
    ann, bob = fresh.reviewer("ann"), fresh.reviewer("bob")
    accepted = []
    while (answer := ann.get("/api/next")).status_code == 200:
        item = answer.json()
        start = threading.Barrier(3)

        def post(client: httpx.Client, digits: str, item=item, start=start) -> None:
            start.wait()
            accepted.append((item["id"], digits, client.post(f"/api/items/{item['id']}", json={"digits": digits})))

        racing = [threading.Thread(target=post, args=args) for args in ((ann, "1"), (ann, "2"), (bob, "3"))]
        for thread in racing:
            thread.start()
        for thread in racing:
            thread.join(30)
    by_item: dict[str, list] = {}
    for item, digits, answer in accepted:
        by_item.setdefault(item, []).append((digits, answer.status_code))
    assert len(by_item) == len(rows) and all(len(tries) == 3 for tries in by_item.values())
    for tries in by_item.values():
        assert sorted(code for _, code in tries) == [200, 409, 409], tries
        assert ("3", 409) in tries, "only the reviewer holding an item decides it"
    standing = {item: next(d for d, code in tries if code == 200) for item, tries in by_item.items()}
    in_redis = {item: decision.digits for item, decision in decided(fresh.redis, list(standing)).items()}
    assert in_redis == standing
    done = digits_command(fresh.stack, "export", "--job", rows[0]["job_id"])
    exported = {id_of(row): row["digits"] for row in csv.DictReader(io.StringIO(done.stdout))}
    assert exported == standing, "the export and Redis agree on every item"
    assert ann.get("/api/stats").json()["decided"] == len(rows)


def test_group_confirms_only_the_review_items_of_its_group_and_refuses_malformed_bodies(fresh):
    ann = fresh.reviewer("ann")
    empty = ann.get("/api/group")
    assert empty.status_code == 200 and empty.json() == {"digit": None, "items": []}, "nothing waiting"
    fresh.submit([*"0123456789", "3", "3"], "grouped")
    audit = ann.get("/api/next", params={"kind": "audit"})
    assert audit.status_code == 200, "sure single digits are ok, and every ok row is audited here"
    audit_id = audit.json()["id"]
    assert ann.post("/api/group", json={"confirm": [audit_id]}).status_code == 409
    assert ann.get("/api/stats").json()["audit"]["checked"] == 0, "the blind audit is passed only by keying"
    group = ann.get("/api/group").json()["items"]
    assert group and all(item["kind"] == "review" for item in group)
    for malformed, status in [({"confirm": 5}, 400), ({"confirm": [{"id": 1}]}, 400), ({"wrong": "x"}, 400),
                              ({"confirm": ["no-such-item"]}, 404), ({"confirm": [audit_id]}, 409)]:  # fmt: skip
        assert ann.post("/api/group", json=malformed).status_code == status, malformed
    assert ann.post("/api/group", content=b'{"confirm": []}', headers={"Content-Type": "text/plain"}).status_code == 415
    deep = ann.post("/api/group", content=b"[" * 5_000 + b"]" * 5_000, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and "error" in deep.json()
    answer = ann.post("/api/group", json={"confirm": [i["id"] for i in group]})
    assert answer.status_code == 200 and answer.json()["confirmed"] == len(group)


def test_bodies_past_the_limit_get_413_before_they_are_read_and_every_error_is_json_with_the_headers(fresh):
    big = b"x" * (20 * 1024 * 1024)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", int(fresh.url.rsplit(":", 1)[1])), timeout=10) as raw:
        raw.sendall(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(big) + big[:65536])  # fmt: skip
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 2, answer[:200]
    assert b"content-security-policy" in answer.lower()

    def chunked():
        for _ in range(20):
            yield b"x" * (1024 * 1024)

    unsized = httpx.post(fresh.url + "/api/login", content=chunked(), headers={"Content-Type": "application/json"})
    assert unsized.status_code == 413 and "larger than 64 KB" in unsized.json()["error"]
    for answer in (httpx.get(fresh.url + "/no/such/page"), httpx.put(fresh.url + "/api/login")):
        assert answer.status_code in (404, 405) and answer.json()["error"]
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_flood_of_wrong_logins_locks_that_account_only_and_never_stalls_other_reviewers(fresh):
    fresh.reviewer("ann")
    bob = fresh.reviewer("bob")
    guesses: list[int] = []
    waits: list[int] = []
    slowest = 0.0
    check = min(timed(reviewers.check, fresh.redis, "ann", "guess") for _ in range(3))

    # One client, made before the flood: making sixty (an SSL context each) would stall this process, not the station.
    attacker = httpx.Client(base_url=fresh.url, timeout=30, limits=httpx.Limits(max_connections=60))

    def guess() -> None:
        answer = attacker.post("/api/login", json={"username": "ann", "password": "guess"})
        guesses.append(answer.status_code)
        if answer.status_code == 429:
            waits.append(int(answer.headers["retry-after"]))

    threads = [threading.Thread(target=guess) for _ in range(60)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        started = time.monotonic()
        assert bob.get("/api/stats").status_code == 200
        slowest = max(slowest, time.monotonic() - started)
    attacker.close()
    assert guesses.count(401) == 10 and guesses.count(429) == 50, sorted(guesses)
    assert min(waits) > 60, "a locked account is told to wait for the window, not a moment"
    # The flood's ten checks run one after another: a reviewer served behind them would wait for several.
    assert slowest < 5 * check, f"another reviewer waited {slowest:.2f} s, {slowest / check:.1f} password checks"
    locked = httpx.post(fresh.url + "/api/login", json={"username": "ann", "password": PASSWORD})
    assert locked.status_code == 429, "locked, whatever the password"
    assert httpx.post(fresh.url + "/api/login", json={"username": "bob", "password": PASSWORD}).status_code == 200


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


def test_proxy_headers_count_only_from_trusted_proxies_and_only_allowed_host_names_are_answered(fresh):
    # The fixture's station trusts no proxy: an X-Forwarded-For of anyone's choosing changes nothing...
    fresh.reviewer("cal")
    for n in range(ADDRESS_FAILURES.amount):
        httpx.post(fresh.url + "/api/login", json={"username": f"nobody-{n}", "password": "guess"},
                   headers={"X-Forwarded-For": f"10.0.0.{n}"})  # fmt: skip
    refused = httpx.post(fresh.url + "/api/login", json={"username": "cal", "password": PASSWORD},
                         headers={"X-Forwarded-For": "10.9.9.9"})  # fmt: skip
    assert refused.status_code == 429, "every guess counted against this machine's address"
    fresh.empty_queue()  # the windows go with the queue's keys

    # ...and a station told to trust the proxy on this machine counts each forwarded address apart.
    port = free_port()
    settings = Settings(redis_url=fresh.stack.redis_url, results=fresh.stack.results,
                        review_trusted_proxies="127.0.0.1", review_hosts="review.example.test, 127.0.0.1")  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 20, "the second station")
        url = f"http://127.0.0.1:{port}"
        for n in range(ADDRESS_FAILURES.amount):
            httpx.post(url + "/api/login", json={"username": f"nobody-{n}", "password": "guess"},
                       headers={"X-Forwarded-For": "10.0.0.1"})  # fmt: skip
        login = {"username": "cal", "password": PASSWORD}
        assert httpx.post(url + "/api/login", json=login, headers={"X-Forwarded-For": "10.0.0.1"}).status_code == 429
        assert httpx.post(url + "/api/login", json=login, headers={"X-Forwarded-For": "10.0.0.2"}).status_code == 200
        stranger = httpx.get(url + "/api/stats", headers={"Host": "evil.example"})
        assert stranger.status_code == 400 and "DIGITS_REVIEW_HOSTS" in stranger.json()["error"]
        assert httpx.get(url + "/api/stats", headers={"Host": "review.example.test"}).status_code == 401
    finally:
        server.should_exit = True
        thread.join(10)
