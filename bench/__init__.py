"""Benchmarks that print their figures; run with `./dev bench [outbox|sync|memory|all]`. Never run as tests."""
