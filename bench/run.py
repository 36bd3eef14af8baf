"""The whole benchmark suite (``make bench``): every figure beside its reference, as markdown and JSON.

    .venv/bin/python bench/run.py [--quick] [--only decoding,registry,...] [--profile]

Runs, each in its own process (so that one's memory, caches or pinning cannot colour another's):
decoding, registry, labels, http_load, image_latency, lookup_cache and, unless --quick, national.
Writes bench/results/YYYY-MM-DD.md and bench/results/YYYY-MM-DD.json, prints the markdown.
PostgreSQL figures use scratch databases on 127.0.0.1 (bench, bench_http, bench_national),
dropped afterwards. --quick skips national scale and shortens every run (about 5 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
sys.path.insert(0, str(BENCH))

from http_load import drop_database, pg_url, recreate_database  # noqa: E402

ORDER = ("decoding", "registry", "labels", "http_load", "image_latency", "lookup_cache", "national")


def commands(quick: bool, tmp: Path, profile: bool) -> dict[str, list[str]]:
    def out(name: str) -> list[str]:
        return ["--json", str(tmp / f"{name}.json")]

    return {
        "decoding": [PY, str(BENCH / "decoding.py"), "--photos", "8" if quick else "20"] + out("decoding"),
        "registry": [PY, str(BENCH / "registry.py"), "--postgres", pg_url("bench")] + out("registry"),
        "labels": [PY, str(BENCH / "labels.py")] + (["--codes", "100"] if quick else []) + out("labels"),
        "http_load": [PY, str(BENCH / "http_load.py")] + (["--quick"] if quick else [])
        + (["--profile"] if profile else []) + out("http_load"),
        "image_latency": [PY, str(BENCH / "image_latency.py")] + (["--quick"] if quick else []) + out("image_latency"),
        "lookup_cache": [PY, str(BENCH / "lookup_cache.py"), "--postgres", pg_url("bench")]
        + (["--no-rss"] if quick else []) + out("lookup_cache"),
        "national": [PY, str(BENCH / "national.py")] + out("national"),
    }


def run_one(name: str, cmd: list[str], tmp: Path, timeout: float) -> dict:
    print(f"== {name}: {' '.join(Path(c).name if c.startswith('/') else c for c in cmd)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    log = tmp / f"{name}.log"
    try:
        with open(log, "w") as fh:
            done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=fh, text=True, timeout=timeout)
        rc, stdout = done.returncode, done.stdout
    except subprocess.TimeoutExpired as exc:
        rc, stdout = "timeout", exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    seconds = time.perf_counter() - started
    print(f"   {name}: rc {rc} in {seconds:.0f} s", file=sys.stderr, flush=True)
    result: dict = {"rc": rc, "seconds": round(seconds, 1), "stdout": stdout}
    path = tmp / f"{name}.json"
    if path.exists():
        result["figures"] = json.loads(path.read_text())
    if rc != 0:
        lines = [l for l in log.read_text(errors="replace").splitlines() if " INFO " not in l]
        result["error_tail"] = "\n".join(lines[-15:])
    return result


# -- the report ---------------------------------------------------------------------------------
def section_decoding(r: dict) -> list[str]:
    f = r["figures"]
    rows = f["rows"]
    out = [f"Per image, bytes to codes, {f['pinned']}. Reference: the best single decoder on each set.\n",
           "| set | decoder | decoded | phone QR | median ms | p95 ms |", "|---|---|---|---|---|---|"]
    totals: dict[str, list[int]] = {}
    for row in rows:
        qr = f"{row['qr_found']}/{row['total']}" if row["set"].startswith("phone-") else ""
        out.append(f"| {row['set']} | {row['decoder']} | {row['decoded']}/{row['total']} | {qr} | "
                   f"{row['median_ms']:.1f} | {row['p95_ms']:.1f} |")
        if not row["set"].startswith("phone-"):
            t = totals.setdefault(row["decoder"], [0, 0])
            t[0] += row["decoded"]
            t[1] += row["total"]
    # targets: cascade >= best single decoder on every set; >= 95 % overall; nothing on empty images
    worse, phone_worse = [], []
    for s in sorted({row["set"] for row in rows}):
        by = {row["decoder"]: row["decoded"] for row in rows if row["set"] == s}
        best_single = max(v for k, v in by.items() if k in ("zxing-cpp", "pyzbar", "opencv"))
        if by.get("cascade", 0) < best_single:
            (phone_worse if s.startswith("phone-") else worse).append(f"{s} ({by.get('cascade')} < {best_single})")
    out.append("\n| decoder | decoded, sample sets (not phone) | share |")
    out.append("|---|---|---|")
    for k, (d, t) in totals.items():
        out.append(f"| {k} | {d}/{t} | {100 * d / t:.1f} % |")
    cascade = totals.get("cascade", [0, 1])
    fp = [row for row in rows if row["set"].startswith("falsepositives") and row["decoder"] == "cascade"]
    fp_ok = all(row["decoded"] == row["total"] for row in fp)
    out.append(f"\nTargets: cascade ≥ best single decoder on every set: {'✅' if not worse else '❌ ' + ', '.join(worse)}; "
               f"≥ 95 % overall: {'✅' if cascade[0] / cascade[1] >= 0.95 else '❌'} ({100 * cascade[0] / cascade[1]:.1f} %); "
               f"no code on images without one: {'✅' if fp_ok else '❌'}.")
    if phone_worse:
        out.append(f"Phone photos (every code on the label, QR and EAN-13): the cascade finds fewer than a single "
                   f"decoder on {', '.join(phone_worse)}.")
    worst = f.get("worst_cases") or []
    if worst:
        bounds = f.get("bounds") or {}
        out.append("\nWorst cases, no code in the image (one decode each, seconds of one core): with the cascade's "
                   f"bounds (second pass at most {bounds.get('second_pass_max_pixels', 0) / 1e6:g} MP, no stage begun "
                   f"after {bounds.get('time_budget_s', 0):g} s) and without them.\n")
        out += ["| image | MiB | bounded s | unbounded s | codes reported |", "|---|---|---|---|---|"]
        for name in dict.fromkeys(row["image"] for row in worst):
            pair = {row["bounded"]: row for row in worst if row["image"] == name}
            out.append(f"| {name} | {pair[True]['mb']} | {pair[True]['seconds']:.1f} | "
                       f"{pair[False]['seconds']:.1f} | {pair[True]['codes']} / {pair[False]['codes']} |")
    return out


def section_registry(r: dict) -> list[str]:
    f = r["figures"]
    sign = f["ed25519"]["sign_per_s"]
    out = [f"Reference: raw Ed25519 signing {sign:,.0f}/s (pyca/cryptography, one core, same process).\n",
           "| database | registrations/s (one per commit) | serials/s (100,000 in one request) | serials / raw signing | target ≥ 0.5 |",
           "|---|---|---|---|---|"]
    for db in ("sqlite", "postgresql"):
        if db in f:
            x = f[db]
            ratio = x["serials_per_s"] / sign
            out.append(f"| {db} | {x['registrations_per_s']:,.0f} | {x['serials_per_s']:,.0f} | {ratio:.2f} | "
                       f"{'✅' if ratio >= 0.5 else '❌'} |")
    return out


def section_labels(r: dict) -> list[str]:
    f = r["figures"]
    pdf = f["pdf"]
    qr = f["qr_codes_per_second"]
    out = ["| figure | value | reference |", "|---|---|---|",
           f"| PNG labels/s (scale 8) | {f['png_labels_per_second']:,.0f} | SVG labels/s {f['svg_labels_per_second']:,.0f} |",
           f"| QR codes/s, labels.qr_matrix | {qr.get('labels.qr_matrix', 0):,.0f} | segno with mask search "
           f"{qr.get('segno default (mask search, M)', 0):,.0f}, qrcode {qr.get('qrcode default (mask search, M)', 0):,.0f} |",
           f"| {pdf['labels']:,}-label PDF ({pdf['stock']}, {pdf['pages']} pages, {pdf['bytes'] / 1e6:.1f} MB) | "
           f"{pdf['seconds']:.1f} s, peak RSS {pdf['peak_rss_mb']:.0f} MB | target < 60 s "
           f"{'✅' if pdf['seconds'] < 60 else '❌'}, < 500 MB {'✅' if pdf['peak_rss_mb'] < 500 else '❌'} |"]
    out.append("\n| QR encoder | codes/s |")
    out.append("|---|---|")
    for k, v in qr.items():
        out.append(f"| {k} | {v:,.0f} |")
    return out


def section_from_stdout(r: dict, start_marker: str) -> list[str]:
    lines = r["stdout"].splitlines()
    for i, line in enumerate(lines):
        if line.startswith(start_marker):
            return lines[i:]
    return lines


def markdown(report: dict) -> str:
    out = [f"# Benchmark report {report['date']}", "",
           f"{report['mode']} run, {report['started']} UTC, {report['machine']}. Every figure stands beside a "
           "reference measured in the same run on the same machine; these machines are shared and noisy, so "
           "read the ratios first. Produced by `make bench` (`bench/run.py`); see bench/README.md.", ""]
    titles = {"decoding": "Decoding (verification.decoding)", "registry": "Registration and serial issuance",
              "labels": "Labels", "http_load": "GET /api/v1/verify under load (gunicorn + wrk)",
              "image_latency": "POST /api/v1/verify/image (1600×1200 phone photos)",
              "lookup_cache": "The lookup cache over a worker's life (misses, memory, restarts)",
              "national": "National scale (PostgreSQL, 100,000 batches, 10 million scan events)"}
    for name in ORDER:
        r = report["results"].get(name)
        if r is None:
            continue
        out.append(f"## {titles[name]}\n")
        if r["rc"] != 0 or "figures" not in r:
            out.append(f"**Failed** (rc {r['rc']} after {r['seconds']} s):\n\n```\n{r.get('error_tail', '')}\n```\n")
            continue
        try:
            if name == "decoding":
                body = section_decoding(r)
            elif name == "registry":
                body = section_registry(r)
            elif name == "labels":
                body = section_labels(r)
            elif name == "http_load":
                body = section_from_stdout(r, "Reference:")
            elif name == "image_latency":
                body = section_from_stdout(r, f"{r['figures']['requests']} sequential requests")
            elif name == "lookup_cache":
                body = section_from_stdout(r, "GET /api/v1/verify of batch codes")
            else:
                body = section_from_stdout(r, f"{r['figures']['batches']:,} batches")
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            body = [f"(could not format: {exc!r}; figures are in the JSON)"]
        out.extend(body)
        out.append(f"\n_{r['seconds']:.0f} s._\n")
    return "\n".join(out)


def _sections(text: str) -> tuple[str, dict[str, str]]:
    """A report's markdown as its header and its "## " sections by title."""
    head, *parts = text.split("\n## ")
    return head, {part.split("\n", 1)[0]: "## " + part for part in parts}


def merged(out: Path, day: str, text: str, figures: dict) -> tuple[str, dict]:
    """Today's report with the sections just run put in place of the same sections of the earlier
    run, which keeps the others; the header says which sections were re-run, and when."""
    old_figures = json.loads((out / f"{day}.json").read_text())
    old_head, old_sections = _sections((out / f"{day}.md").read_text().rstrip("\n"))
    _, new_sections = _sections(text)
    sections = {**old_sections, **new_sections}
    replaced = [title for title in new_sections if title in old_sections]
    added = [title for title in new_sections if title not in old_sections]
    note = f"Re-run at {figures['started']} UTC: " + "; ".join(
        part for part in (f"replacing the earlier run's sections: {', '.join(replaced)}" if replaced else "",
                          f"adding: {', '.join(added)}" if added else "") if part) + "."
    text = "\n".join([old_head.rstrip("\n"), "", note, ""] + [sections[t].rstrip("\n") + "\n" for t in sections])
    old_figures["results"].update(figures["results"])
    old_figures.setdefault("reruns", []).append({"started": figures["started"], "sections": list(figures["results"])})
    return text.rstrip("\n"), old_figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip national scale, shorter runs")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--profile", action="store_true", help="py-spy the verify path (needs py-spy in .venv)")
    parser.add_argument("--out", default=str(BENCH / "results"), help="where the report goes")
    parser.add_argument("--merge", action="store_true",
                        help="with --only: replace those sections in today's report, keep the others")
    args = parser.parse_args(argv)
    names = [n for n in ORDER if not (args.quick and n == "national")]
    if args.only:
        names = [n for n in args.only.split(",") if n in ORDER]
    tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
    started = datetime.now(timezone.utc)
    cmds = commands(args.quick, tmp, args.profile)
    report: dict = {"date": date.today().isoformat(), "started": started.strftime("%Y-%m-%d %H:%M"),
                    "mode": "quick" if args.quick else "full",
                    "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}",
                    "results": {}}
    recreate_database("bench")
    try:
        for name in names:
            timeout = 2400 if name == "national" else 1500
            report["results"][name] = run_one(name, cmds[name], tmp, timeout)
    finally:
        drop_database("bench")
    report["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
    text = markdown(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"date": report["date"], "started": report["started"], "mode": report["mode"],
               "machine": report["machine"], "seconds": report["seconds"],
               "results": {k: {kk: vv for kk, vv in v.items() if kk != "stdout"} for k, v in report["results"].items()}}
    if args.merge and (out / f"{report['date']}.json").exists():
        text, figures = merged(out, report["date"], text, figures)
    (out / f"{report['date']}.md").write_text(text + "\n")
    (out / f"{report['date']}.json").write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    print(text)
    print(f"\nwritten: {out / (report['date'] + '.md')} and .json ({report['seconds'] / 60:.1f} min)", file=sys.stderr)
    return 0 if all(r["rc"] == 0 for r in report["results"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
