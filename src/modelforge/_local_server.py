"""Child-process entry point that serves a GGUF model through llama.cpp (``xllamacpp``) on 127.0.0.1.

Run by ``modelforge.local_model``; not a public interface. It prints one JSON line with the server's URL
on stdout, then serves until its stdin closes (the parent exited or stopped it), so a crashed parent never
leaves a model server behind. llama.cpp's own log lines go to stderr, which the parent sends to a file.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelforge._local_server")
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--alias", default="smollm2")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args(argv)

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}  # a set of names in llama.cpp
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.use_jinja = True
    server = xllamacpp.Server(params)
    print(json.dumps({"url": server.listening_address}), flush=True)
    sys.stdin.read()  # returns when the parent closes the pipe
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
