# The corpus's suites are data for the oracle, run in copies by test_conformance.py.
collect_ignore = ["suites"]
