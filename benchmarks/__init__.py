"""Load benchmarks of the shortener, run with wrk on loopback (`make bench`)."""
