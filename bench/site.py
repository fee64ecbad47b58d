"""A simulated site: from its own cheques, through the service and the review station, to a fine-tuned model.

Half of ORAND-CAR-A's training amounts are held back as "the site's cheques"
(``digits.training.data.site_split``), and a string model is trained on the
other half only (about 30 minutes on 2 cores; kept in ``--work`` and reused).
Then, as a site would:

1. the site's cheques are dropped into the inbox of ``digits up``, whose
   workers read with the shipped digit models and that string model;
2. a reviewer keys every item the station offers (the ``review`` rows and the
   audit's draw of ``ok`` rows) through its JSON API, from the true labels;
3. ``digits corrections --snapshot`` gathers the decisions;
4. the string model is fine-tuned on them (``digits.training.finetune``), with the
   other half of the amounts as its usual real data;
5. ``digits models promote`` compares it with the model in use and rolls it out
   if the gate passes.

Both models are then measured on ORAND's held-out amounts, which neither saw:
accuracy, the share read ``ok`` at the service's threshold and the error among
those, and the read rate at the promised error (at most 0.5% among ``ok``).

With ``--shipped``, the shipped string models are fine-tuned instead, with every
real training amount as a correction (no service: the labels are the keying),
and measured the same way.

    python -m bench.site --data ../shared/data --work .digits/site --out bench/results
    python -m bench.site --shipped --data ../shared/data --work .digits/site --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from bench.drop import free_port
from bench.review import all_rows, key_items, login, wait_for_login
from digits.recognition.choice import CHOICE_FILE
from digits.settings import PROMISED_ERROR, Settings

DIGIT_MODELS = Settings.model_fields["model"].default
"""The shipped digit models (they saw the site's digits cut singly; the string model never saw its amounts)."""

SITE_MODEL = "digits-crnn-site"
"""Name of the string model that never saw the site's cheques."""

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DIGITS_DATA", "../shared/data")))
    parser.add_argument("--work", type=Path, default=Path(".digits/site"), help="store, service folders, logs")
    parser.add_argument("--limit", type=int, default=300, help="files per held-out digit set read by the gate")
    parser.add_argument(
        "--shipped", action="store_true", help="fine-tune the shipped string models on every real amount"
    )
    parser.add_argument("--out", type=Path, help="folder for site.json (shipped.json with --shipped)")
    args = parser.parse_args()
    if args.shipped:
        report, name = shipped(args.data.resolve(), args.work.resolve()), "shipped.json"
    else:
        report, name = run(args.data.resolve(), args.work.resolve(), args.limit), "site.json"
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / name).write_text(json.dumps(report, indent=2) + "\n")


def run(data: Path, work: Path, limit: int) -> dict:
    from digits.training.data import orand_split, site_split

    kept, site = site_split(orand_split(data)[0])
    store = work / "store"
    before = site_model(data, store, kept)
    service = work / "service"
    shutil.rmtree(service, ignore_errors=True)
    (service / "inbox").mkdir(parents=True)
    env = dict(os.environ, DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DIGITS_MODEL_STORE=str(store),
               DIGITS_MODEL=DIGIT_MODELS, DIGITS_STRING_MODEL=before, DIGITS_REVIEW_PORT=str(free_port()),
               DIGITS_METRICS_PORT="0", DIGITS_DATA=str(data))  # fmt: skip
    truth = {f"cheque-{i:04d}.png": label for i, label in enumerate(site.labels)}
    log = open(service / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "digits.cli", "up", "--workers", "2"], cwd=service, env=env,
                          stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        password = wait_for_login(service, timeout=300)
        for name, image in zip(truth, site.images, strict=True):
            cv2.imwrite(str(service / "inbox" / name), image)
        rows = all_rows(service, set(truth))
        time.sleep(3)  # the last rows' items reach the queue
        keyed = key_all(f"http://127.0.0.1:{env['DIGITS_REVIEW_PORT']}", password, truth)
        snapshot = command(env, service, "corrections", "--snapshot").stdout
        tuned = fine_tune_site(env, service, store, data, kept, before)
        promoted = command(env, service, "models", "promote", tuned, "--limit", str(limit), check=False)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(180)
    return {
        "site_cheques": len(site.images),
        "model_before": before,
        "model_after": tuned,
        "service": {status: sum(r["status"] == status for r in rows) for status in ("ok", "review", "empty", "error")},
        "keyed": keyed,
        "snapshot": snapshot.strip().splitlines()[-2],
        "promote": {"exit": promoted.returncode, "stdout": promoted.stdout, "said": _said(promoted.stderr)},
        "held_out": measure(data, store, [before, tuned]),
    }


SHIPPED_STRING_MODELS = Settings.model_fields["string_model"].default
"""The shipped string models, which ``shipped`` fine-tunes on every real training amount."""


def shipped(data: Path, work: Path) -> dict:
    """The shipped string models fine-tuned on every real training amount as a correction, before and after."""
    import hashlib

    from digits.corrections import HELD_OUT, LINE, TRAIN, Example, split_of, write_snapshot
    from digits.training.data import ORAND_DIR, split_indices
    from digits.training.finetune import fine_tune

    store = work / "shipped-store"
    shipped_store(store, SHIPPED_STRING_MODELS)
    labels = json.loads((data / ORAND_DIR / "labels.json").read_text())
    names = sorted(labels)
    entries = []
    for i in sorted(split_indices(len(names))[1]):  # the training amounts only
        raw = (data / ORAND_DIR / "images" / names[i]).read_bytes()
        _, png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE))
        sha = hashlib.sha256(raw).hexdigest()
        example = Example(f"crops/{hashlib.sha256(png.tobytes()).hexdigest()}.png", labels[names[i]], LINE,
                          split_of(sha), sha, "orand-car-a", "confirmed", "")  # fmt: skip
        entries.append((png.tobytes(), example))
    snapshot = write_snapshot(work, sorted(entries, key=lambda e: e[1].crop), work / "shipped-snapshot")
    tuned = fine_tune(snapshot, data, store, DIGIT_MODELS, SHIPPED_STRING_MODELS)
    after = ",".join(ref.label for ref in tuned.string_models)
    return {
        "corrections": {
            "hash": snapshot.hash,
            "learnt": len(snapshot.of(TRAIN)),
            "held_out": len(snapshot.of(HELD_OUT)),
        },
        "model_after": after,
        "held_out": measure(data, store, [SHIPPED_STRING_MODELS, after]),
    }


def shipped_store(store: Path, string_models: str) -> None:
    """Copy the shipped digit models, ``string_models`` and the reading choice into ``store``."""
    store.mkdir(parents=True, exist_ok=True)
    members = [*DIGIT_MODELS.split(","), *filter(None, string_models.split(","))]
    for name in [f"{member}{suffix}" for member in members for suffix in (".keras", ".json")] + [CHOICE_FILE]:
        shutil.copy(REPO / "model_store" / name, store)


def site_model(data: Path, store: Path, kept) -> str:
    """The string model that never saw the site's cheques (trained into ``store`` if absent), with the shipped ones."""
    from digits.store import list_models

    shipped_store(store, "")
    trained = [ref for ref in list_models(store) if ref.name == SITE_MODEL and not ref.metadata().get("corrections")]
    if trained:
        return trained[0].label
    from digits.training.strings import train_strings

    print(f"training {SITE_MODEL} on {len(kept.images)} real amounts (the site's held back): about 30 minutes")
    return train_strings(data, store, name=SITE_MODEL, seed=3, real_lines=kept).label


def key_all(station: str, password: str, truth: dict[str, str]) -> dict:
    """Key every item the station offers, as a reviewer who reads each cheque right; what was keyed."""
    times: list[float] = []
    done = threading.Event()
    done.set()  # key until the queue is empty: every row is in already
    key_items(station, "admin", password, truth, times, done)
    return login(station, "admin", password).get("/api/stats").json()


def fine_tune_site(env: dict, service: Path, store: Path, data: Path, kept, before: str) -> str:
    """Fine-tune the site's string model on the snapshot just written; the new version's label."""
    from digits.corrections import latest_snapshot
    from digits.training.finetune import fine_tune

    snapshot = latest_snapshot(service / "results")
    tuned = fine_tune(snapshot, data, store, DIGIT_MODELS, before, real_lines=kept)
    return tuned.string_models[0].label


def measure(data: Path, store: Path, string_models: list[str]) -> dict:
    """Each string model (with the shipped digit models) on ORAND's held-out amounts."""
    from digits.recognition.model import get_models
    from digits.settings import Settings
    from digits.training.evaluate import judge_set, load_samples

    settings = Settings(model_store=store, model=DIGIT_MODELS)
    held = load_samples(data)["orand-held-out"]
    out = {}
    for spec in string_models:
        models = get_models(settings.model_copy(update={"string_model": spec}))
        report, _ = judge_set("orand-held-out", held, models, settings.review_threshold)
        met = report.curve.meeting(PROMISED_ERROR)
        out[spec] = {
            "amounts": report.files,
            "accuracy": round(report.accuracy, 4),
            "ok_share": round(report.ok_rows / report.files, 4),
            "error_among_ok": round(report.ok_error_rate, 4),
            "read_rate_at_0.5pct": round(met[1], 4) if met else 0.0,
            "threshold_for_0.5pct": round(met[0], 4) if met else None,
        }
    return out


def _said(stderr: str) -> list[str]:
    """What a command said on stderr, without TensorFlow's start-up lines."""
    noise = ("I0000", "E0000", "W0000", "WARNING: All log")
    return [line for line in stderr.splitlines() if not line.startswith(noise)]


def command(env: dict, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "digits.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=3600)  # fmt: skip
    if check and done.returncode:
        raise RuntimeError(f"digits {' '.join(args)} failed: {done.stderr}")
    return done


if __name__ == "__main__":
    main()
