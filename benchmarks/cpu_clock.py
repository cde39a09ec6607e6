"""Run a benchmark script with its clock replaced by this process's CPU time.

    OMP_NUM_THREADS=1 python benchmarks/cpu_clock.py benchmarks/train_throughput.py --threads 1 ...

On a shared CPU the wall clock measures the neighbours as much as the code. With one thread, the process's
CPU time is the work itself, so "images per CPU-second" compares two implementations fairly while other
jobs run. ``time.perf_counter`` is patched to ``time.process_time`` before the script runs (any script that
times itself with ``perf_counter``, the official-step harness script included); use one thread only: with
several, OpenMP threads that spin while waiting for a descheduled sibling burn CPU time that is not work.
"""

import runpy
import sys
import time

if __name__ == "__main__":
    time.perf_counter = time.process_time
    script, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
