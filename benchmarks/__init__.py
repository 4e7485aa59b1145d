"""Benchmarks of both halves: the shortener under load (wrk on loopback) and the alerting against its bounds (`make bench`)."""
