#!/usr/bin/env python3
"""Cold start of a Lambda bootstrap: time from exec to its first poll of the runtime API, and its peak RSS.

Usage: bench/cold_start.py BINARY [BINARY ...] [--runs N]

A fake runtime API on a loopback port accepts the first request (GET .../invocation/next), which marks the end of
init; the process is then killed. Prints the median and p90 over N runs per binary. A benchmark, not a test: it
prints figures and asserts nothing.
"""
import os, signal, socket, statistics, subprocess, sys, time

def one_run(binary):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="AKIDBENCH", AWS_SECRET_ACCESS_KEY="bench", AWS_LAMBDA_FUNCTION_NAME="bench",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_EC2_METADATA_DISABLED="true", AWS_LAMBDA_LOG_FORMAT="JSON")
    env.pop("IDEMPOTENCY_TABLE", None)
    start = time.perf_counter()
    child = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn, _ = server.accept()
    elapsed = time.perf_counter() - start
    conn.close(); server.close()
    child.send_signal(signal.SIGKILL)
    _, _, usage = os.wait4(child.pid, 0)
    return elapsed * 1000, usage.ru_maxrss / 1024

def main():
    args = sys.argv[1:]
    runs = 30
    if "--runs" in args:
        i = args.index("--runs"); runs = int(args[i + 1]); del args[i:i + 2]
    print(f"{'binary':<40} {'size MB':>8} {'init ms p50':>12} {'p90':>7} {'RSS MB':>7}")
    for binary in args:
        samples = [one_run(binary) for _ in range(runs)]
        ms = sorted(s[0] for s in samples)
        rss = max(s[1] for s in samples)
        # target/lambda/<function>/bootstrap: the function's name says more than `bootstrap`.
        name = os.path.basename(binary)
        if name == "bootstrap":
            name = os.path.basename(os.path.dirname(os.path.abspath(binary)))
        print(f"{name:<40} {os.path.getsize(binary)/1e6:>8.1f} {statistics.median(ms):>12.2f} "
              f"{ms[int(len(ms) * 0.9) - 1]:>7.2f} {rss:>7.1f}")

if __name__ == "__main__":
    main()
