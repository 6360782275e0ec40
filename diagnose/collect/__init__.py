"""Collectors: thin I/O that hands back raw readings (diagnose.readings) or a CollectorIssue, never raises."""
