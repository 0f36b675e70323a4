"""Cold start: import time of each handler module, next to a bare `import boto3`.

Each figure is the median of several fresh interpreters, in an environment shaped like
Lambda's (LAMBDA_TASK_ROOT and friends set, so powertools behaves as it does there).
`import boto3` is the floor no Python function that talks to AWS can go under; the
target is at most 1.3x that floor.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from messenger.contract import AUTHORIZER, ROUTES

RUNS = 7
TARGET_RATIO = 1.3
PROBE = (
    "import time, importlib, sys; t = time.perf_counter(); "
    "[importlib.import_module(m) for m in sys.argv[1:]]; print(time.perf_counter() - t)"
)
# The libraries the functions import before a line of ours runs: powertools' Logger and
# Metrics, and pynacl (the authorizer's only). No tracing SDK: Lambda's active tracing.
CHOSEN_STACK = [
    "boto3",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "nacl.signing",
]


def lambda_like_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LAMBDA_TASK_ROOT": "/var/task",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "USERS_TABLE": "bench-users",
            "QUEUE_TABLE": "bench-queue",
            "POWERTOOLS_SERVICE_NAME": "messenger",
            "POWERTOOLS_METRICS_NAMESPACE": "Messenger",
        }
    )
    return env


def import_seconds(modules: list[str], env: dict[str, str]) -> float:
    """Median time to import `modules` in a fresh interpreter."""
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, *modules],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        samples.append(float(out.strip().splitlines()[-1]))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    env = lambda_like_environment()
    modules = [AUTHORIZER.handler] + [route.handler for route in ROUTES]
    modules = list(dict.fromkeys(handler.rsplit(".", 1)[0] for handler in modules))
    floor = import_seconds(["boto3"], env)
    stack = import_seconds(CHOSEN_STACK, env)
    print(f"median of {RUNS} fresh interpreters, Lambda-like environment")
    print(f"{'import boto3 (floor)':<44} {floor * 1000:7.0f} ms   1.00x")
    print(
        f"{'boto3 + powertools (Logger, Metrics) + pynacl':<44} {stack * 1000:7.0f} ms   "
        f"{stack / floor:.2f}x   (the libraries alone)"
    )
    worst = 0.0
    for module in modules:
        seconds = import_seconds([module], env)
        ratio = seconds / floor
        worst = max(worst, ratio)
        print(f"{module:<44} {seconds * 1000:7.0f} ms   {ratio:.2f}x")
    verdict = "met" if worst <= TARGET_RATIO else "NOT met"
    print(f"\nworst handler: {worst:.2f}x the floor; target <= {TARGET_RATIO}x: {verdict}")
    print(f"the chosen libraries alone are {stack / floor:.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
