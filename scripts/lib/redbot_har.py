"""REDbot's `redbot -o har URL`, for many URLs in one process: each URL is checked exactly as the
CLI checks it (redbot.cli.main: an HttpResource with local access enabled, the "har" formatter),
but all of them concurrently in one event loop, so the interpreter and REDbot are loaded once
instead of once per URL (about 0.4 s of CPU each). Used by scripts/suites/redbot.sh.

    python redbot_har.py OUTDIR DEADLINE_SECONDS < jobs     # jobs: lines "ID URL"

Writes OUTDIR/ID.har (the CLI's exact output) for each job; exits 1 naming the jobs that did not
finish before the deadline.
"""

import sys
from configparser import ConfigParser

import thor
from redbot.formatter import find_formatter
from redbot.resource import HttpResource


def main() -> int:
    outdir, deadline = sys.argv[1], float(sys.argv[2])
    jobs = [line.split(None, 1) for line in sys.stdin.read().splitlines() if line.strip()]
    parser = ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})  # as the CLI: 127.0.0.1 allowed
    config = parser["redbot"]
    pending = {job_id for job_id, _ in jobs}

    def check(job_id: str, url: str) -> None:
        chunks: list = []
        resource = HttpResource(config, descend=False)
        resource.set_request(url)
        formatter = find_formatter("har", "text", False)(
            config, resource, chunks.append, {"tty_out": False, "descend": False}
        )
        formatter.bind_resource(resource)

        def formatter_done() -> None:
            with open(f"{outdir}/{job_id}.har", "w") as f:
                f.write("".join(chunks))
            pending.discard(job_id)
            if not pending:
                thor.stop()

        formatter.on("formatter_done", formatter_done)
        resource.check()

    for job_id, url in jobs:
        check(job_id, url)
    thor.schedule(deadline, thor.stop)
    if pending:
        thor.run()
    if pending:
        print(f"redbot_har: unfinished after {deadline:.0f} s: {sorted(pending)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
