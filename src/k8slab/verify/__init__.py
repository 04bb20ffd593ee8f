"""Verification: facts read from a lab, traceroute parsing, the checks, and the diagnosis of failures."""
