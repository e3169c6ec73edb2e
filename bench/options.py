"""The command line of ``python -m bench`` (its usage is the docstring of ``bench/__main__``)."""

from __future__ import annotations

import argparse

__all__ = ["parse_args"]


def parse_args(description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--jobs", type=int, default=300, help="jobs submitted at once for throughput"
    )
    parser.add_argument(
        "--clients", type=int, default=50, help="concurrent clients for submit latency"
    )
    parser.add_argument(
        "--history", type=int, default=0, help="finished jobs to put in history first"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="Prefect server on PostgreSQL (127.0.0.1:5432)"
    )
    parser.add_argument(
        "--slots", type=int, default=8, help="fast worker slots (OAPIP_WORKER_SLOTS)"
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="measurements to skip: e2e latency throughput memory; purge (--only housekeeping)",
    )
    parser.add_argument(
        "--only",
        choices=["transfer", "wes", "sandbox", "submit", "housekeeping", "fairshare"],
        help="run one measurement alone: transfer (stage-in/stage-out vs raw boto3, no stack); "
        "wes (an HPC site, Slurm + Toil WES, is started too); sandbox (echo with "
        "OAPIP_SANDBOX=containers vs off, two stacks); submit (a burst of jobs from "
        "--clients clients while earlier jobs run: latency, throughput, bench/submit.py); "
        "housekeeping (submissions while expired jobs are housekept); fairshare (a burst of "
        "jobs of several users with per-user limits on, against limits off)",
    )
    parser.add_argument(
        "--transfer-mib", type=int, default=200, help="file size of the transfer benchmark, MiB"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the transfer benchmark")
    parser.add_argument(
        "--s3-endpoint", help="S3 endpoint for the transfer benchmark (default: a moto_server)"
    )
    parser.add_argument(
        "--sandbox-runs", type=int, default=10, help="echo jobs on each stack for --only sandbox"
    )
    parser.add_argument(
        "--expired", type=int, default=10000, help="expired jobs for --only housekeeping"
    )
    parser.add_argument("--wes-runs", type=int, default=5, help="runs each way for --only wes")
    parser.add_argument(
        "--wes-workflows",
        nargs="+",
        default=["two-steps", "echo"],
        choices=["two-steps", "echo"],
        help="workflows measured by --only wes",
    )
    return parser.parse_args()
