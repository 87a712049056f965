"""How long `mailgitops check` takes on 100 providers against local servers, and how the
timeout bounds a run against servers that never answer.

    python bench/check.py [--providers 100] [--runs 5] [--silent 16] [--timeout 1]

Starts the same servers as tests/test_check.py (Dovecot with an implicit-TLS and a STARTTLS
listener, aiosmtpd with the same two kinds; tests/mailservers.py, with certificates made for
the run), writes a config with N providers that alternate between the two kinds, and times
`python -m mailgitops check` as a child process, round-robin with `--jobs 8` (the default)
and `--jobs 1` (the baseline: one provider at a time), then with `--login` for one mailbox
per provider. Then the timeout: `--silent` providers whose servers accept the connection and
never say a word, with `--timeout S`. Prints the median and every time. Writes only to a
temporary directory. Needs dovecot (apt-get install dovecot-imapd) and the test extras.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from mailservers import (  # noqa: E402 (the test servers live with the tests)
    PASSWORD,
    USER,
    Hostile,
    Servers,
    make_certs,
    start_dovecot,
    start_smtpd,
)


def write_config(root: Path, ports: list[tuple[int, str, int, str]]) -> None:
    (root / "providers.d").mkdir(parents=True)
    (root / "mailboxes.d").mkdir()
    mailboxes = ["mailboxes:"]
    for i, (imap_port, imap_sec, smtp_port, smtp_sec) in enumerate(ports):
        name = f"p{i:04d}"
        (root / "providers.d" / f"{name}.yaml").write_text(
            f"name: {name}\ndomains: [{name}.example]\nlogin_format: manual\n"
            f"imap:\n  host: 127.0.0.1\n  port: {imap_port}\n  security: {imap_sec}\n"
            f"smtp:\n  host: 127.0.0.1\n  port: {smtp_port}\n  security: {smtp_sec}\n"
        )
        mailboxes += [
            f"  - address: user@{name}.example",
            f"    owner: u{i}",
            f"    login: {USER}",
            "    password: {env: BENCH_PW}",
        ]
    (root / "mailboxes.d" / "all.yaml").write_text("\n".join(mailboxes) + "\n")


def timed(argv: list[str], env: dict[str, str], expect: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != expect:
        sys.exit(f"unexpected exit {done.returncode} from {argv}:\n{done.stdout[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--silent", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mailgitops-bench-check-"))
    certs = make_certs(work)
    servers = Servers(certs)
    silent = Hostile(None)
    try:
        start_dovecot(servers, "imap", tls=True)
        start_smtpd(
            servers,
            {
                "smtp-tls": ("ssl_tls", certs.good, ["PLAIN", "LOGIN"]),
                "smtp-starttls": ("starttls", certs.good, ["PLAIN", "LOGIN"]),
            },
        )
        p = servers.ports
        kinds = [
            (p["imap-tls"], "ssl_tls", p["smtp-tls"], "ssl_tls"),
            (p["imap-starttls"], "starttls", p["smtp-starttls"], "starttls"),
        ]
        root = work / "config"
        write_config(root, [kinds[i % 2] for i in range(args.providers)])
        quiet = work / "silent"
        write_config(quiet, [(silent.port, "ssl_tls", silent.port, "starttls")] * args.silent)

        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "BENCH_PW": PASSWORD}
        check = [sys.executable, "-m", "mailgitops", "check", "--ca-file", certs.ca]
        contenders = {
            "jobs 8 (default)": [*check, "-C", str(root)],
            "jobs 1 (baseline)": [*check, "-C", str(root), "--jobs", "1"],
            "jobs 8 --login": [*check, "-C", str(root), "--login"],
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for round_ in range(args.runs):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                times[name].append(timed(contenders[name], env, 0))
        silent_argv = [*check, "-C", str(quiet), "--timeout", str(args.timeout)]
        silent_times = [timed(silent_argv, env, 1) for _ in range(max(1, args.runs // 2))]
    finally:
        silent.close()
        servers.stop()

    print(
        f"check of {args.providers} providers (IMAP + SMTP each), {args.runs} runs, "
        f"{os.cpu_count()} CPUs"
    )
    for name, values in times.items():
        print(
            f"  {name:<20} median {statistics.median(values):6.2f} s   "
            + " ".join(f"{v:.2f}" for v in values)
        )
    print(
        f"{args.silent} silent providers (2 servers each), --timeout {args.timeout:g}, jobs 8: "
        f"median {statistics.median(silent_times):.2f} s   "
        + " ".join(f"{v:.2f}" for v in silent_times)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
