"""End-to-end benchmark; the same as ``brokerflow bench`` (see docs/benchmarks.md)."""

from brokerflow.app.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
