"""Jobs from Python and from the command line, against a real worker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from digits.results import read_rows
from ingest import Job, submit
from tests.conftest import free_port
from tests.synth import draw_digits, encode


def test_submit_paths_and_bytes_then_wait_and_read_rows(client, served, tmp_path):
    path = tmp_path / "amount-1500.png"
    path.write_bytes(encode(draw_digits("1500")))
    job = submit([path, ("account-29.jpg", encode(draw_digits("29"), ".jpg"))], celery=client)

    job.wait(timeout=60)
    status = job.status()
    assert (status.pending, status.done, status.failed) == (0, 2, 0)
    rows = job.rows()
    assert [(r["source"], r["digits"]) for r in rows] == [(path.as_posix(), "1500"), ("account-29.jpg", "29")]
    assert {r["job_id"] for r in rows} == {job.id}
    assert job.csv_path == served.results / "jobs" / f"{job.id}.csv"
    assert sorted(r["digits"] for r in read_rows(job.csv_path)) == ["1500", "29"]


def test_a_bad_file_counts_as_failed_with_its_reason(client):
    job = submit([("memo.png", b"not really a picture")], celery=client).wait(timeout=60)
    assert job.status().failed == 1
    [row] = job.rows()
    assert row["status"] == "error" and "memo.png" in row["error"] and "not an image" in row["error"]


def test_a_job_can_be_followed_from_another_process(client):
    job = submit([("later-8.png", encode(draw_digits("8")))], celery=client)
    again = Job.load(job.id, celery=client)
    assert again.task_ids == job.task_ids and again.sources == ["later-8.png"]
    assert again.wait(timeout=60).rows()[0]["digits"] == "8"
    with pytest.raises(KeyError, match="no job"):
        Job.load("no-such-job", celery=client)


def test_cli_submit_waits_with_progress_and_prints_the_csv_path(served, tmp_path):
    files = []
    for digits in ("64", "905"):
        files.append(tmp_path / f"cli-{digits}.png")
        files[-1].write_bytes(encode(draw_digits(digits)))
    done = subprocess.run(
        [sys.executable, "-m", "digits.cli", "submit", *map(str, files), "--wait", "--timeout", "60"],
        env=served.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    csv_path = done.stdout.strip().splitlines()[-1]
    assert csv_path.startswith(str(served.results / "jobs"))
    assert sorted(r["digits"] for r in read_rows(csv_path)) == ["64", "905"]
    assert "2 done, 0 failed" in done.stderr


def submit_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digits.cli", "submit", *args], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_cli_submit_exits_non_zero_when_a_file_failed_and_says_why(served, tmp_path):
    good, bad = tmp_path / "fine-3.png", tmp_path / "memo.png"
    good.write_bytes(encode(draw_digits("3")))
    bad.write_bytes(b"not a scan at all")
    done = submit_command(served.env(), str(good), str(bad), "--wait", "--timeout", "60")
    assert done.returncode == 3, done.stderr
    assert "1 done, 1 failed" in done.stderr and "memo.png: not an image" in done.stderr
    assert done.stdout.strip().endswith(".csv"), "the CSV is named all the same"


def test_cli_submit_says_when_redis_is_away_and_queues_nothing(tmp_path):
    scan = tmp_path / "away-1.png"
    scan.write_bytes(encode(draw_digits("1")))
    done = submit_command(dict(os.environ, DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"), str(scan))
    assert done.returncode == 1
    assert "cannot reach Redis at redis://127.0.0.1:" in done.stderr and "digits up" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_submit_documents_its_exit_status():
    done = submit_command(dict(os.environ), "--help")
    assert done.returncode == 0 and "Exit status:" in done.stdout
    assert all(f"  {code}  " in done.stdout for code in range(5))


def test_queueing_never_imports_tensorflow(served):
    script = (
        "import sys\n"
        "from ingest import submit\n"
        "from digits.cli import main\n"
        "job = submit([('light-1.png', open(sys.argv[1], 'rb').read())])\n"
        "job.wait(timeout=60)\n"
        "assert job.rows()[0]['digits'] == '1'\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print('heavy modules:', heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    image = served.root / "light-1.png"
    image.write_bytes(encode(draw_digits("1")))
    done = subprocess.run([sys.executable, "-c", script, str(image)], env=served.env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_job_id_that_is_no_plain_file_name_is_refused(client):
    with pytest.raises(ValueError, match="plain token"):
        submit([("x.png", b"")], job_id="../../etc/passwd", celery=client)
